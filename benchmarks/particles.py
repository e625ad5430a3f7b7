"""Particle simulator speed: fpsolver vs a plain numpy loop vs Brian2 (same model).

Model: the ``tanh`` scenario of MODEL §5 (mean-field, tanh gains, tau = sigma = 1):

    dv_e = [-v_e + sqrt(n) (A_e - C_ei <tanh v_i>)] dt + dW_e,
    dv_i = [-v_i + sqrt(n) (C_ie <tanh v_e> - C_ii <tanh v_i>)] dt + dW_i,

<.> the mean over the n pairs, v(0) = vbar(0) + N(0, diag(1, 2)). Reported figure:
neuron-steps per second (2 neurons per pair and step; wall time of the time loop only,
compilation and setup excluded). All in one run, so the ratios are meaningful even on a
loaded machine (absolute numbers are not); the load average is printed.

- fpsolver: linearly implicit Euler-Maruyama, ``dt = scenario.dt`` (1e-3), any n.
- numpy: plain explicit Euler-Maruyama loop. Explicit is stable only for
  dt sqrt(n) |eig(DPhi)| < ~1 (|eig| ~ 1 here), so it uses dt = 0.25 / sqrt(n) to reach
  comparable accuracy (1e-3 at n = 1e5 is already at the edge: dt sqrt(n) = 0.32;
  n = 1e6 needs dt = 2.5e-4). Its rate per step is reported and also the cost of the same
  simulated time.
- Brian2: the idiomatic model (the means as summed variables of a 1-neuron group, linked
  back), explicit Euler at the numpy loop's dt, on every code target that works:
  ``cpp_standalone`` (gcc, OpenMP on all cores; loop time as measured by the compiled
  program), runtime ``cython`` and ``numpy`` (after a warm-up run that compiles). Brian2
  needs numpy < 2.4, so it runs in its own environment: ``make bench-brian`` (creates
  ``.venv-brian``); each target runs in a fresh process (``--brian TARGET``).

Usage: ``python benchmarks/particles.py [--n 100000 1000000] [--t-end 0.5] [--quick]``
(``--quick``: a smoke run, n = 2e4 and T = 0.02).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

A_E, C_EI, C_IE, C_II = 0.1, 1.0, 1.0, 0.5  # tanh scenario (MODEL §5)
TARGETS = ("cpp_standalone", "cython", "numpy")


def bench_fpsolver(n: int, t_end: float) -> dict:
    from fpsolver import load_scenario
    from fpsolver.particles import run_particles

    sc = load_scenario("tanh", [f"n={n}", f"t_end={t_end}", f"record.every={t_end}"])
    warm = load_scenario("tanh", [f"n={n}", "t_end=0.002", "kinetic.dt=0.001",
                                  "record.every=0.002"])
    run_particles(warm, progress=False)  # compile / warm up
    r = run_particles(sc, progress=False)
    return {"rate": r.info["neuron_steps_per_second"], "dt": r.info["dt"],
            "loop_time": r.info["loop_time"], "threads": r.info["threads"],
            "v0": r.vbar[0, 0].tolist(), "vbar": r.vbar[-1, 0].tolist()}


def bench_numpy(n: int, t_end: float, dt: float, v0) -> dict:
    """Plain explicit Euler-Maruyama, the same model, vectorised numpy."""
    rng = np.random.default_rng(1)
    v = np.asarray(v0) + rng.standard_normal((n, 2)) * np.sqrt([1.0, 2.0])
    steps = max(1, int(round(t_end / dt)))
    sq, sqn = np.sqrt(dt), np.sqrt(n)
    start = time.perf_counter()
    for _ in range(steps):
        g = np.tanh(v).mean(axis=0)
        I_e = A_E - C_EI * g[1]
        I_i = C_IE * g[0] - C_II * g[1]
        v += dt * (-v + sqn * np.array([I_e, I_i])) + sq * rng.standard_normal((n, 2))
    elapsed = time.perf_counter() - start
    return {"rate": 2 * n * steps / elapsed, "dt": dt, "loop_time": elapsed,
            "vbar": v.mean(axis=0).tolist()}


def bench_brian(target: str, n: int, t_end: float, dt: float, v0) -> dict:
    """Brian2 on one code target: n pairs, a 1-neuron group summing tanh through Synapses.

    The ``cpp_standalone`` project is generated, built and run in a temporary folder,
    removed afterwards (Brian2's default, ``output/`` in the working directory, would
    litter the repository).
    """
    with tempfile.TemporaryDirectory(prefix="fpsolver-brian-") as project:
        return _bench_brian(target, n, t_end, dt, v0, project)


def _bench_brian(target: str, n: int, t_end: float, dt: float, v0, project: str) -> dict:
    import brian2 as b2

    threads = os.cpu_count() or 1
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False, directory=project)
        b2.prefs.devices.cpp_standalone.openmp_threads = threads
    else:
        b2.prefs.codegen.target = target
        threads = 1
    b2.defaultclock.dt = dt * b2.second
    eqs = """
    dv_e/dt = (-v_e + sqrt(N) * (A_e - C_ei * ti_mean)) / tau + xi_e * tau**-0.5 : 1
    dv_i/dt = (-v_i + sqrt(N) * (C_ie * te_mean - C_ii * ti_mean)) / tau + xi_i * tau**-0.5 : 1
    te_mean : 1 (linked)
    ti_mean : 1 (linked)
    """
    pairs = b2.NeuronGroup(n, eqs, method="euler",
                           namespace=dict(N=n, A_e=A_E, C_ei=C_EI, C_ie=C_IE, C_ii=C_II,
                                          tau=1 * b2.second))
    pop = b2.NeuronGroup(1, "te_sum : 1\nti_sum : 1")
    syn = b2.Synapses(pairs, pop, """te_sum_post = tanh(v_e_pre) / N_incoming : 1 (summed)
                                    ti_sum_post = tanh(v_i_pre) / N_incoming : 1 (summed)""")
    syn.connect()
    pairs.te_mean = b2.linked_var(pop, "te_sum", index=np.zeros(n, dtype=int))
    pairs.ti_mean = b2.linked_var(pop, "ti_sum", index=np.zeros(n, dtype=int))
    pairs.v_e = f"{v0[0]!r} + randn()"
    pairs.v_i = f"{v0[1]!r} + sqrt(2) * randn()"
    net = b2.Network(pairs, pop, syn)
    steps = max(1, int(round(t_end / dt)))
    build = time.perf_counter()
    if target == "cpp_standalone":
        net.run(t_end * b2.second)
        b2.device.build(directory=project, run=False)
        build = time.perf_counter() - build
        b2.device.run()
        elapsed = b2.device._last_run_time  # the network's run, timed by the program
    else:
        net.run(3 * dt * b2.second)  # generates and compiles the code
        build = time.perf_counter() - build
        start = time.perf_counter()
        net.run(t_end * b2.second)
        elapsed = time.perf_counter() - start
    return {"rate": 2 * n * steps / elapsed, "dt": dt, "loop_time": elapsed,
            "target": target, "threads": threads, "build_time": build,
            "vbar": [float(np.mean(pairs.v_e[:])), float(np.mean(pairs.v_i[:]))]}


def explicit_dt(n: int) -> float:
    return 0.25 / np.sqrt(n)


def brian_python() -> str | None:
    """A Python that imports brian2: .venv-brian, else this one, else None."""
    py = Path(__file__).resolve().parents[1] / ".venv-brian" / "bin" / "python"
    for cand in (str(py), sys.executable):
        if Path(cand).exists() and subprocess.run(
                [cand, "-c", "import brian2"], capture_output=True).returncode == 0:
            return cand
    return None


def run_brian(py: str, target: str, n: int, t_end: float, v0) -> dict | str:
    """One Brian2 target in a fresh process: its figures, or the reason it failed."""
    cmd = [py, __file__, "--brian", target, "--t-end", str(t_end), "--n", str(n),
           "--v0", *map(repr, v0)]
    with tempfile.TemporaryDirectory(prefix="fpsolver-brian-cwd-") as cwd:  # no stray files
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="particle simulator speed, side by side")
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--t-end", type=float, default=0.5, help="simulated time per run")
    p.add_argument("--quick", action="store_true", help="smoke run: n = 2e4, T = 0.02")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS,
                   help="Brian2 code targets to measure")
    p.add_argument("--brian", choices=TARGETS, help=argparse.SUPPRESS)
    p.add_argument("--v0", type=float, nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.t_end = [20_000], 0.02
    if args.brian:  # inside a Brian2 environment, one target, one n
        n = args.n[0]
        print(json.dumps(bench_brian(args.brian, n, args.t_end, explicit_dt(n), args.v0)))
        return 0
    py = brian_python()
    print(f"tanh scenario, T = {args.t_end} per run; M neuron-steps/s (2 per pair and step); "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    for n in args.n:
        fp = bench_fpsolver(n, args.t_end)
        dt_ex = explicit_dt(n)
        npy = bench_numpy(n, args.t_end, dt_ex, fp["v0"])
        print(f"\nn = {n:>9,d} pairs")
        print(f"  fpsolver (implicit, dt = {fp['dt']:.1e}, {fp['threads']} thread(s)): "
              f"{fp['rate'] / 1e6:8.1f}  [{fp['loop_time']:.2f} s for T]  "
              f"vbar(T) = {np.round(fp['vbar'], 4).tolist()}")
        _line(f"numpy    (explicit, dt = {dt_ex:.1e})", npy, fp)
        best = None
        for target in args.targets if py else []:
            b = run_brian(py, target, n, args.t_end, fp["v0"])
            if isinstance(b, str):
                print(f"  brian2 {target}: not available ({b})")
                continue
            _line(f"brian2 {target} (explicit, {b['threads']} thread(s), build "
                  f"{b['build_time']:.0f} s)", b, fp)
            best = b if best is None or b["rate"] > best["rate"] else best
        if best:
            print(f"  fpsolver / best Brian2 ({best['target']}): "
                  f"{fp['rate'] / best['rate']:.1f}x per neuron-step")
    if not py:
        print("\nBrian2: not available (needs numpy < 2.4). Get it with `make bench-brian` "
              "(creates .venv-brian with numpy<2.4 brian2).")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


def _line(label: str, other: dict, fp: dict) -> None:
    print(f"  {label}: {other['rate'] / 1e6:8.1f}  [{other['loop_time']:.2f} s for T]  "
          f"vbar(T) = {np.round(other['vbar'], 4).tolist()}")
    print(f"    ratio fpsolver / it: {fp['rate'] / other['rate']:.1f}x per neuron-step, "
          f"{other['loop_time'] / fp['loop_time']:.1f}x per simulated time")


if __name__ == "__main__":
    sys.exit(main())

"""Particle simulator speed: fpsolver vs a plain numpy loop vs Brian2 (same model).

Model: the ``tanh`` scenario of MODEL §5 (mean-field, tanh gains). Reported figure:
neuron-steps per second (2 neurons per pair and step; CPU wall time of the time loop,
compilation and setup excluded). All in one run, so the ratios are meaningful even on a
loaded machine (absolute numbers are not).

- fpsolver: linearly implicit Euler-Maruyama, ``dt = scenario.dt`` (1e-3), any n.
- numpy: plain explicit Euler-Maruyama loop. Explicit is stable only for
  dt sqrt(n) |eig(DPhi)| < ~1 (|eig| ~ 1 here), so it uses dt = 0.25 / sqrt(n) to reach
  comparable accuracy (1e-3 at n = 1e5 is already at the edge: dt sqrt(n) = 0.32;
  n = 1e6 needs dt = 2.5e-4). Its rate per step is reported and also the cost of the same
  simulated time.
- Brian2 (``cpp_standalone`` if it builds, else runtime): the idiomatic model of
  NOTES-peers (summed variables through a 1-neuron population group), explicit Euler at
  the numpy loop's dt. Brian2 needs numpy < 2.4, so it runs in its own environment:
  ``make bench-brian`` (creates ``.venv-brian``) or ``python benchmarks/particles.py
  --brian-only`` inside such an environment.

Usage: ``python benchmarks/particles.py [--n 100000 1000000] [--t-end 0.5]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

A_E, C_EI, C_IE, C_II = 0.1, 1.0, 1.0, 0.5  # tanh scenario (MODEL §5)


def bench_fpsolver(n: int, t_end: float) -> dict:
    from fpsolver import load_scenario
    from fpsolver.particles import run_particles

    sc = load_scenario("tanh", [f"n={n}", f"t_end={t_end}", f"record.every={t_end}"])
    warm = load_scenario("tanh", [f"n={n}", "t_end=0.002", "kinetic.dt=0.001",
                                  "record.every=0.002"])
    run_particles(warm, progress=False)  # compile / warm up
    r = run_particles(sc, progress=False)
    return {"rate": r.info["neuron_steps_per_second"], "dt": r.info["dt"],
            "loop_time": r.info["loop_time"], "vbar": r.vbar[-1, 0].tolist()}


def bench_numpy(n: int, t_end: float, dt: float) -> dict:
    """Plain explicit Euler-Maruyama, the same model, vectorised numpy."""
    rng = np.random.default_rng(1)
    v = np.column_stack([0.0826 + rng.standard_normal(n), 0.2089 + np.sqrt(2) *
                         rng.standard_normal(n)])
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


def bench_brian(n: int, t_end: float, dt: float) -> dict:
    """Brian2: one group of n pairs, a 1-neuron 'population' summing tanh through Synapses."""
    import brian2 as b2

    b2.prefs.codegen.target = "numpy"
    try:
        b2.set_device("cpp_standalone", build_on_run=False, directory=None)
        device = "cpp_standalone"
    except Exception:  # noqa: BLE001 - fall back to runtime mode
        device = "runtime"
    b2.start_scope()
    b2.defaultclock.dt = dt * b2.second
    tau = 1 * b2.second
    eqs = """
    dv_e/dt = (-v_e + sqrt(N) * (A_e - C_ei * ti_mean)) / tau + xi_e * tau**-0.5 : 1
    dv_i/dt = (-v_i + sqrt(N) * (C_ie * te_mean - C_ii * ti_mean)) / tau + xi_i * tau**-0.5 : 1
    te_mean : 1 (linked)
    ti_mean : 1 (linked)
    """
    pairs = b2.NeuronGroup(n, eqs, method="euler",
                           namespace=dict(N=n, A_e=A_E, C_ei=C_EI, C_ie=C_IE, C_ii=C_II,
                                          tau=tau))
    pop = b2.NeuronGroup(1, "te_sum : 1\nti_sum : 1")
    syn = b2.Synapses(pairs, pop, """te_sum_post = tanh(v_e_pre) / N_incoming : 1 (summed)
                                    ti_sum_post = tanh(v_i_pre) / N_incoming : 1 (summed)""")
    syn.connect()
    pairs.te_mean = b2.linked_var(pop, "te_sum", index=np.zeros(n, dtype=int))
    pairs.ti_mean = b2.linked_var(pop, "ti_sum", index=np.zeros(n, dtype=int))
    pairs.v_e = "0.0826 + randn()"
    pairs.v_i = "0.2089 + sqrt(2) * randn()"
    net = b2.Network(pairs, pop, syn)
    steps = max(1, int(round(t_end / dt)))
    start = time.perf_counter()
    net.run(t_end * b2.second)
    if device == "cpp_standalone":
        b2.device.build(run=False)
        build = time.perf_counter() - start
        start = time.perf_counter()
        b2.device.run()
        elapsed = time.perf_counter() - start
    else:
        build, elapsed = 0.0, time.perf_counter() - start
    return {"rate": 2 * n * steps / elapsed, "dt": dt, "loop_time": elapsed,
            "device": device, "build_time": build,
            "vbar": [float(np.mean(pairs.v_e[:])), float(np.mean(pairs.v_i[:]))]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="particle simulator speed, side by side")
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--t-end", type=float, default=0.5, help="simulated time per run")
    p.add_argument("--brian-only", action="store_true",
                   help="run only Brian2 and print JSON (inside .venv-brian)")
    args = p.parse_args(argv)
    if args.brian_only:
        out = {n: bench_brian(n, args.t_end, 0.25 / np.sqrt(n)) for n in args.n}
        print(json.dumps(out))
        return 0
    brian = _brian_results(args)
    print(f"tanh scenario, T = {args.t_end} per run; M neuron-steps/s (2 per pair and step)")
    for n in args.n:
        fp = bench_fpsolver(n, args.t_end)
        dt_ex = 0.25 / np.sqrt(n)
        npy = bench_numpy(n, args.t_end, dt_ex)
        cost = (fp["loop_time"], npy["loop_time"])
        print(f"\nn = {n:>9,d} pairs")
        print(f"  fpsolver (implicit, dt = {fp['dt']:.1e}): {fp['rate'] / 1e6:8.1f}  "
              f"[{cost[0]:.2f} s for T]  vbar(T) = {np.round(fp['vbar'], 4).tolist()}")
        print(f"  numpy    (explicit, dt = {dt_ex:.1e}): {npy['rate'] / 1e6:8.1f}  "
              f"[{cost[1]:.2f} s for T]  vbar(T) = {np.round(npy['vbar'], 4).tolist()}")
        print(f"  ratio fpsolver / numpy: {fp['rate'] / npy['rate']:.1f}x per neuron-step, "
              f"{cost[1] / cost[0]:.1f}x per simulated time")
        b = brian.get(str(n)) if brian else None
        if b:
            print(f"  brian2 {b['device']} (explicit, dt = {b['dt']:.1e}): "
                  f"{b['rate'] / 1e6:8.1f}  [{b['loop_time']:.2f} s, build "
                  f"{b['build_time']:.1f} s]  ratio fpsolver / brian2: "
                  f"{fp['rate'] / b['rate']:.1f}x per neuron-step, "
                  f"{b['loop_time'] / cost[0]:.1f}x per simulated time")
    if not brian:
        print("\nBrian2: not available (needs numpy < 2.4). Get it with `make bench-brian` "
              "(creates .venv-brian with numpy<2.4 brian2).")
    return 0


def _brian_results(args) -> dict | None:
    """Brian2 figures: here if importable, else from .venv-brian if it exists."""
    try:
        import brian2  # noqa: F401
        return {str(n): bench_brian(n, args.t_end, 0.25 / np.sqrt(n)) for n in args.n}
    except Exception:  # noqa: BLE001 - brian2 fails at import with numpy >= 2.4
        pass
    py = Path(__file__).resolve().parents[1] / ".venv-brian" / "bin" / "python"
    if not py.exists():
        return None
    cmd = [str(py), __file__, "--brian-only", "--t-end", str(args.t_end),
           "--n", *map(str, args.n)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(f"Brian2 run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())

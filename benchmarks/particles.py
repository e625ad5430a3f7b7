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

Roofline (``--roofline``, on by default): why the rate is what it is, at the largest n,
on all threads, each part timed alone in the same numba setting as the stepper: the whole
pass (:func:`fpsolver.particles.kernels.bins_pass`), the normals alone, tanh and its
derivative alone, and the pass's memory traffic alone (read w and the bin, write w); the
STREAM-like bandwidth of this machine (numpy copy and triad on one thread, a numba triad
on all threads, arrays of 3 x 80 MB).

Usage: ``python benchmarks/particles.py [--n 100000 1000000] [--t-end 0.5] [--quick]``
(``--quick``: a smoke run, n = 2e4 and T = 0.02). Results: ``benchmarks/results/
particles.json`` (:mod:`evidence`); a ``--quick`` run writes a temporary file instead.
Before each n the run waits (up to 3 x 60 s) while the 1-minute load is above 2.5.
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
            "brian2": b2.__version__, "numpy": np.__version__,
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


def _numba_parts():
    """Return the pass's parts as numba kernels (compiled on first use).

    Normals alone, tanh alone, memory traffic alone, a triad; the same blocks and prange
    as the stepper.
    """
    import numba as nb

    from fpsolver.particles.kernels import _tanh
    from fpsolver.particles.noise import normal

    @nb.njit(parallel=True, nogil=True)
    def normals(state, block, n):
        acc = np.zeros(state.shape[0])
        for blk in nb.prange(state.shape[0]):
            a, b, c, k = state[blk, 0], state[blk, 1], state[blk, 2], state[blk, 3]
            s = 0.0
            for _ in range(blk * block, min(n, (blk + 1) * block)):
                x, a, b, c, k = normal(a, b, c, k)
                y, a, b, c, k = normal(a, b, c, k)
                s += x + y
            acc[blk] = s
            state[blk, 0], state[blk, 1], state[blk, 2], state[blk, 3] = a, b, c, k
        return acc.sum()

    @nb.njit(parallel=True, nogil=True)
    def tanhs(w, block):
        n = w.shape[0]
        blocks = (n + block - 1) // block
        acc = np.zeros(blocks)
        for blk in nb.prange(blocks):
            s = 0.0
            for j in range(blk * block, min(n, (blk + 1) * block)):
                g, gp = _tanh(w[j, 0])
                h, hp = _tanh(w[j, 1])
                s += g + gp + h + hp
            acc[blk] = s
        return acc.sum()

    @nb.njit(parallel=True, nogil=True)
    def memory(w, bins, Y, block):
        n = w.shape[0]
        blocks = (n + block - 1) // block
        acc = np.zeros(blocks)
        for blk in nb.prange(blocks):
            s = 0.0
            for j in range(blk * block, min(n, (blk + 1) * block)):
                q = bins[j]
                ve = w[j, 0] + Y[0, q]
                vi = w[j, 1] + Y[1, q]
                w[j, 0] = ve * 0.5
                w[j, 1] = vi * 0.5
                s += ve + vi
            acc[blk] = s
        return acc.sum()

    @nb.njit(parallel=True, nogil=True)
    def triad(a, b, c, s):
        for i in nb.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return normals, tanhs, memory, triad


def _best(f, reps: int) -> float:
    """The fastest of ``reps`` timed calls after one warm-up (s)."""
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def roofline(n: int) -> dict:
    """Return ns per neuron-step of the pass and of its parts alone, and the bandwidth.

    See the module docstring; the tanh scenario's pass (mean-field: one bin).
    """
    import numba

    from fpsolver.particles import kernels
    from fpsolver.particles.noise import NormalStream
    from fpsolver.particles.steppers import block_size

    normals, tanhs, memory, triad = _numba_parts()
    threads = numba.get_num_threads()
    block = block_size(n, 1)
    noise = NormalStream(n, 1, block)
    w = noise.draw()
    bins = np.zeros(n, dtype=np.int64)
    Y = np.zeros((2, 1))
    p = np.array([1e-3, np.sqrt(1e-3), 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0.0])
    partial = np.zeros((len(noise.state), kernels.BIN_STATS, 1))
    per = 1e9 / (2 * n)  # s per pass -> ns per neuron-step
    out = {"n": n, "threads": threads, "load_before": list(os.getloadavg())}
    out["pass_ns"] = per * _best(lambda: kernels.bins_pass(
        w, bins, Y, noise.state, p, 0, True, block, partial), 7)
    out["normal_ns"] = per * _best(lambda: normals(noise.state, block, n), 7)
    out["tanh_ns"] = per * _best(lambda: tanhs(w, block), 7)
    out["memory_ns"] = per * _best(lambda: memory(w, bins, Y, block), 7)
    # bytes per neuron-step of the pass: w read and written (8 + 8), the pair's int64 bin
    # read (8 per pair = 4 per neuron); write-allocate would add 8 more for w
    out["bytes_per_neuron_step"] = 8 + 8 + 4
    size = 10_000_000  # 80 MB per array, far beyond the 32 MB L3
    a, b, c = np.zeros(size), np.ones(size), np.full(size, 2.0)
    copy = _best(lambda: np.copyto(a, b), 5)
    tri1 = _best(lambda: np.add(b, np.multiply(c, 3.0, out=a), out=a), 5)
    tri = _best(lambda: triad(a, b, c, 3.0), 5)
    out["stream"] = {"array_bytes": 8 * size,
                     "numpy_copy_1thread_GBs": 16 * size / copy / 1e9,  # read b, write a
                     "numpy_triad_1thread_GBs": 24 * size / tri1 / 1e9,
                     "numba_triad_GBs": 24 * size / tri / 1e9,
                     "note": "bytes counted without write-allocate (STREAM convention)"}
    out["bandwidth_GBs"] = out["stream"]["numba_triad_GBs"]
    out["memory_floor_ns"] = out["bytes_per_neuron_step"] / out["bandwidth_GBs"]
    out["target_ns"] = 1e9 / 100e6
    out["load_after"] = list(os.getloadavg())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="particle simulator speed, side by side")
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--t-end", type=float, default=0.5, help="simulated time per run")
    p.add_argument("--quick", action="store_true", help="smoke run: n = 2e4, T = 0.02")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS,
                   help="Brian2 code targets to measure")
    p.add_argument("--no-roofline", dest="roofline", action="store_false",
                   help="skip the roofline measurement")
    p.add_argument("--out", help="write the results here (default: benchmarks/results/"
                   "particles.json; with --quick a temporary file)")
    p.add_argument("--brian", choices=TARGETS, help=argparse.SUPPRESS)
    p.add_argument("--v0", type=float, nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.t_end = [20_000], 0.02
    if args.brian:  # inside a Brian2 environment, one target, one n
        n = args.n[0]
        print(json.dumps(bench_brian(args.brian, n, args.t_end, explicit_dt(n), args.v0)))
        return 0
    from evidence import Record, settle

    record = Record("particles", argv, quick=args.quick)
    runs = []
    record.figures = {"scenario": "tanh", "t_end": args.t_end, "unit":
                      "rate: neuron-steps per second of the time loop (2 per pair and step)",
                      "runs": runs}
    py = brian_python()
    print(f"tanh scenario, T = {args.t_end} per run; M neuron-steps/s (2 per pair and step); "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    for n in args.n:
        load_before = list(os.getloadavg()) if args.quick else settle()
        fp = bench_fpsolver(n, args.t_end)
        dt_ex = explicit_dt(n)
        npy = bench_numpy(n, args.t_end, dt_ex, fp["v0"])
        print(f"\nn = {n:>9,d} pairs")
        print(f"  fpsolver (implicit, dt = {fp['dt']:.1e}, {fp['threads']} thread(s)): "
              f"{fp['rate'] / 1e6:8.1f}  [{fp['loop_time']:.2f} s for T]  "
              f"vbar(T) = {np.round(fp['vbar'], 4).tolist()}")
        _line(f"numpy    (explicit, dt = {dt_ex:.1e})", npy, fp)
        best = None
        run = {"n": n, "load_before": load_before, "fpsolver": fp, "numpy": npy,
               "brian2": {} if py else "not installed"}
        runs.append(run)
        for target in args.targets if py else []:
            b = run_brian(py, target, n, args.t_end, fp["v0"])
            run["brian2"][target] = b
            if isinstance(b, str):
                print(f"  brian2 {target}: not available ({b})")
                continue
            _line(f"brian2 {target} (explicit, {b['threads']} thread(s), build "
                  f"{b['build_time']:.0f} s)", b, fp)
            best = b if best is None or b["rate"] > best["rate"] else best
        if best:
            print(f"  fpsolver / best Brian2 ({best['target']}): "
                  f"{fp['rate'] / best['rate']:.1f}x per neuron-step")
            run["best_brian2"] = best["target"]
            run["ratio_best_brian2"] = fp["rate"] / best["rate"]
        run["load_after"] = list(os.getloadavg())
    if not py:
        print("\nBrian2: not available (needs numpy < 2.4). Get it with `make bench-brian` "
              "(creates .venv-brian with numpy<2.4 brian2).")
    if args.roofline:
        n = max(args.n)
        if not args.quick:
            settle()
        r = record.figures["roofline"] = roofline(n)
        print(f"\nroofline, n = {n:,d}, {r['threads']} thread(s), ns per neuron-step: pass "
              f"{r['pass_ns']:.2f}; alone: normal {r['normal_ns']:.2f}, tanh + derivative "
              f"{r['tanh_ns']:.2f}, memory traffic {r['memory_ns']:.2f} "
              f"({r['bytes_per_neuron_step']} B; at the numba triad's "
              f"{r['bandwidth_GBs']:.1f} GB/s: {r['memory_floor_ns']:.2f}); numpy copy / "
              f"triad on 1 thread {r['stream']['numpy_copy_1thread_GBs']:.1f} / "
              f"{r['stream']['numpy_triad_1thread_GBs']:.1f} GB/s; 100 M neuron-steps/s "
              f"= {r['target_ns']:.0f} ns")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    record.write(args.out)
    return 0


def _line(label: str, other: dict, fp: dict) -> None:
    print(f"  {label}: {other['rate'] / 1e6:8.1f}  [{other['loop_time']:.2f} s for T]  "
          f"vbar(T) = {np.round(other['vbar'], 4).tolist()}")
    print(f"    ratio fpsolver / it: {fp['rate'] / other['rate']:.1f}x per neuron-step, "
          f"{other['loop_time'] / fp['loop_time']:.1f}x per simulated time")


if __name__ == "__main__":
    sys.exit(main())

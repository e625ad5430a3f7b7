"""The ``fpsolver`` command line: one subcommand per solver, all sharing the scenario flags.

``main(argv=None) -> int`` keeps the CLI testable; ``python -m fpsolver`` calls it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from fpsolver.errors import FpsolverError
from fpsolver.scenario import load_scenario, scenario_names, to_toml

__all__ = ["main"]

logger = logging.getLogger("fpsolver")
MAX_EIGENVALUES = 200  # spectrum --count: the leading part, not the whole operator


def _scenario_args(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("scenario", help=f"a shipped scenario ({', '.join(scenario_names())}) "
                   "or the path of a TOML file; a shipped name wins over a same-named file "
                   "in the current directory (write ./NAME for the file)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set populations.e.tau=0.5 --set n=1000 "
                   "(values in TOML syntax; repeatable)")
    if out:
        p.add_argument("--out", type=Path, help="output directory (summary.json, "
                       "observables.nc, scenario.toml, manifest.json); it must not hold "
                       "another run")
        p.add_argument("--overwrite", action="store_true", help="replace the run already "
                       "in --out (its outputs, snapshots, checkpoint and stability output "
                       "are removed before the work starts)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpsolver", description="Kinetic limit of balanced E-I networks: particle "
        "simulator, finite-element Fokker-Planck solver, Gaussian reduction, stability.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every "
                        "failure (by default expected failures are one line with the fix)")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("particles", help="simulate the finite network (MODEL §1)")
    _scenario_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("gaussian", help="the Gaussian limit (MODEL §3): linear F only")
    _scenario_args(p)

    p = sub.add_parser("stability", help="stability of the balanced state (MODEL §4)")
    _scenario_args(p)
    p.add_argument("--time", type=float, default=0.0,
                   help="time of the balanced state to analyse (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("kinetic", help="the kinetic limit with finite elements (MODEL §2)")
    _scenario_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--snapshots", action="store_true",
                   help="write density snapshots (VTX, for ParaView) into OUT/snapshots")
    from fpsolver.runtime.cliargs import add_checkpoint_args
    add_checkpoint_args(p)

    p = sub.add_parser("steady", help="the stationary state of the kinetic limit (Newton)")
    _scenario_args(p)

    p = sub.add_parser("spectrum", help="leading eigenvalues of the kinetic limit at its "
                       "stationary state (slow time scale)")
    _scenario_args(p)
    p.add_argument("--count", type=int, default=10, help="eigenvalues wanted (default 10)")
    p.add_argument("--target", type=float, default=None,
                   help="shift: the eigenvalues nearest it are found (default just right of "
                   "0, i.e. the rightmost ones)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--vectors", action="store_true", help="also write the eigenfunctions "
                   "(OUT/eigenfunctions.nc: density and mean perturbations per site)")
    p.add_argument("--steady", type=Path, default=None, metavar="DIR",
                   help="start from the stationary state of `fpsolver steady SCENARIO --out "
                   "DIR` (the same scenario; read only): Newton on the spectrum's wider box "
                   "starts from its densities instead of the Gaussian closure")
    p.add_argument("--no-fourier", dest="fourier", action="store_false",
                   help="solve the whole operator even for a homogeneous state on a ring or "
                   "torus (default there: one spatial Fourier mode at a time; for checking)")

    p = sub.add_parser("continue", help="a branch of stationary states as a parameter "
                       "moves (folds, Hopf points, stability)")
    _scenario_args(p)
    p.add_argument("--param", required=True, metavar="KEY",
                   help="the numeric scenario field to move, e.g. populations.e.tau or "
                   "gains.ee")
    p.add_argument("--from", dest="p_from", type=float, required=True, metavar="A",
                   help="start value")
    p.add_argument("--to", dest="p_to", type=float, required=True, metavar="B",
                   help="end value")
    p.add_argument("--count", type=int, default=4,
                   help="leading eigenvalues computed at every point (default 4)")
    p.add_argument("--max-points", type=int, default=400, help="points at most (default 400)")

    p = sub.add_parser("scenarios", help="list the shipped scenarios")
    p = sub.add_parser("show", help="print the resolved scenario as TOML")
    _scenario_args(p, out=False)

    p = sub.add_parser("plot", help="standard figures of a run (PNGs in OUT_DIR/figures)")
    p.add_argument("out_dir", type=Path, help="a run's output directory")
    p.add_argument("--compare", type=Path, nargs="+", default=[], metavar="OTHER_DIR",
                   help="more output directories to overlay (e.g. particles vs kinetic)")

    p = sub.add_parser("demo", help="the main job on the default scenario, with figures")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the demo scenario after its quick grid (repeatable)")
    p.add_argument("--n", type=int, default=None, metavar="PAIRS",
                   help="pairs of the particle run (default 1000000)")
    return parser


def _version() -> str:
    from fpsolver import __version__
    return f"fpsolver {__version__}"


def _write(args, scenario, result, folder=None, status: str = "complete") -> dict | None:
    """Write the outputs into ``--out`` (if given), holding SIGTERM/SIGINT until done."""
    if args.out is None:
        return None
    from fpsolver.output import write_outputs
    from fpsolver.rundir import deferred_signals

    with deferred_signals() as held:
        paths = write_outputs(args.out, scenario, result, status=status,
                              run_id=folder.run_id if folder else None,
                              command=" ".join(sys.argv[1:]))
    if held:
        print(f"fpsolver: {', '.join(held)} arrived while the outputs were written; they "
              "are complete", file=sys.stderr)
    if status == "complete":
        print(f"wrote {paths['summary']} and {paths['observables']}")
    return paths


def _folder(args, keep=()):
    """The locked, checked ``--out`` folder of a run (a context manager), or a null one.

    Resuming from a checkpoint inside ``--out`` continues the run that folder holds: its
    files stay until the resumed run replaces them.
    """
    import contextlib

    from fpsolver.rundir import RunFolder

    if getattr(args, "out", None) is None:
        return contextlib.nullcontext()
    resume = getattr(args, "resume", None)
    continues = resume is not None and Path(resume).absolute().is_relative_to(
        Path(args.out).absolute())
    return RunFolder(args.out, overwrite=args.overwrite, keep=keep, continues=continues)


def _node_ranks(comm) -> int:
    """Ranks on this rank's node (collective): the share of the job on one machine."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    size = node.size
    node.Free()
    return size


def _preflight(args, scenario, solver, comm_size=1, node_ranks=None):
    from fpsolver.preflight import preflight

    return preflight(scenario, solver, out=getattr(args, "out", None), comm_size=comm_size,
                     node_ranks=node_ranks)


def _print_final(label: str, result, suffix: str) -> None:
    s = result.site_average()
    print(f"{label}, t = {s['t'][-1]:g}: vbar = ({s['vbar_e'][-1]:.6f}, {s['vbar_i'][-1]:.6f}),"
          f" K = ({s['K_ee'][-1]:.6f}, {s['K_ii'][-1]:.6f}); "
          f"{result.info.get('wall_time', 0):.1f} s{suffix}")
    if "peak_memory" in result.info:  # kinetic: measured beside the preflight estimate
        from fpsolver.preflight import memory_report

        print(memory_report(result.info))
    estimate = result.info.get("error_estimate")
    if estimate is not None:  # kinetic: the run's own error estimate against kinetic.tol
        verdict = "within" if estimate["within_tol"] else "EXCEEDS"
        print(f"estimated error: K {estimate['K']:.1e}, vbar {estimate['vbar']:.1e} "
              f"({verdict} kinetic.tol = {estimate['tol']:g})"
              + ("" if estimate["within_tol"] else f" -- {estimate['message']}"))


def _cmd_particles(args) -> int:
    from fpsolver.particles import run_particles
    from fpsolver.runtime import Interrupted

    scenario = load_scenario(args.scenario, args.overrides)
    with _folder(args) as folder:
        _preflight(args, scenario, "particles")
        try:
            result = run_particles(scenario, progress=False if args.quiet else None)
        except Interrupted as exc:
            return _particles_interrupted(args, scenario, exc, folder)
        _print_final(f"{scenario.name}: n = {scenario.n}", result, "")
        _write(args, scenario, result, folder)
    return 0


def _particles_interrupted(args, scenario, exc, folder=None) -> int:
    """Report an interrupted particle run; exit code 3.

    Writes the records it reached (``exc.result``, if ``--out``) marked ``interrupted`` and
    says so on stderr. The folder was claimed at the start, so this never replaces a
    complete result.
    """
    kept = f"the records up to t = {exc.result.t[-1]:.6g}"
    if args.out is None:
        saved = f"nothing written (no --out; {kept} are lost)"
    else:
        paths = _write(args, scenario, exc.result, folder, status="interrupted")
        saved = f"wrote {kept} to {paths['summary']} and {paths['observables']}"
    print(f"fpsolver: particle run interrupted by {exc.signal_name} at t = {exc.time:.6g} "
          f"(step {exc.step}); {saved}", file=sys.stderr)
    return 3


def _cmd_gaussian(args) -> int:
    from fpsolver.gaussian import run_gaussian

    scenario = load_scenario(args.scenario, args.overrides)
    with _folder(args) as folder:
        _preflight(args, scenario, "gaussian")
        result = run_gaussian(scenario)
        _print_gaussian(result)
        _write(args, scenario, result, folder)
    return 0


def _print_gaussian(result) -> None:
    s = result.site_average()
    print(f"{'t':>8} {'K_ee':>10} {'K_ii':>10} {'vbar_e':>10} {'vbar_i':>10}")
    stride = max(1, len(s["t"]) // 10)
    for k in list(range(0, len(s["t"]), stride)) + ([len(s["t"]) - 1]
                                                    if (len(s["t"]) - 1) % stride else []):
        print(f"{s['t'][k]:8.3f} {s['K_ee'][k]:10.6f} {s['K_ii'][k]:10.6f} "
              f"{s['vbar_e'][k]:10.6f} {s['vbar_i'][k]:10.6f}")


def _cmd_stability(args) -> int:
    from fpsolver.stability import analyse_stability

    scenario = load_scenario(args.scenario, args.overrides)
    if not math.isfinite(args.time) or args.time < 0:
        raise FpsolverError(f"--time must be a finite time >= 0, got {args.time} -- fix: "
                            "give e.g. --time 0")
    with _folder(args) as folder:
        _preflight(args, scenario, "stability")
        report = analyse_stability(scenario, time=args.time)
        if args.json:
            print(json.dumps({"scenario": scenario.name, **report.to_dict()}, indent=1))
        else:
            print(f"scenario {scenario.name}")
            print(report.text())
        if folder is not None:
            from fpsolver.output import atomic_write
            from fpsolver.rundir import deferred_signals, write_manifest

            body = {**report.to_dict(), "run_id": folder.run_id, "status": "complete"}
            toml = f"# fpsolver run {folder.run_id} (complete)\n" + to_toml(scenario)
            with deferred_signals():
                atomic_write(args.out / "stability.json",
                             lambda p: p.write_text(json.dumps(body, indent=1)))
                atomic_write(args.out / "scenario.toml", lambda p: p.write_text(toml))
                write_manifest(args.out, folder.run_id, ["stability.json", "scenario.toml"],
                               command=" ".join(sys.argv[1:]))
    return 0


def _cmd_kinetic(args) -> int:
    from mpi4py import MPI

    from fpsolver.runtime import Interrupted
    from fpsolver.runtime.parallel import abort_on_error, is_shared

    comm = MPI.COMM_WORLD
    with abort_on_error(comm):  # an error on some ranks only ends the job (no hang)
        try:
            return _run_kinetic(args, comm)
        except Interrupted as exc:  # SIGTERM/SIGINT: checkpoint written, every rank here
            if comm.rank == 0:
                print(f"fpsolver: {exc}", file=sys.stderr)
            return 3
        except FpsolverError as exc:
            if is_shared(exc) and comm.rank != 0:
                return 2  # raised on every rank together: rank 0 prints it
            raise


def _run_kinetic(args, comm) -> int:
    from fpsolver.kinetic import run_kinetic
    from fpsolver.runtime.cliargs import checkpoint_dir, run_control
    from fpsolver.runtime.parallel import run_shared

    scenario = load_scenario(args.scenario, args.overrides)
    keep = [p for p in (args.resume, args.checkpoint_dir) if p is not None]
    folder = _folder(args, keep=keep + [checkpoint_dir(args, scenario)]) if comm.rank == 0 \
        else None
    try:
        run_shared(comm, lambda: folder.__enter__() if folder is not None else None)
        local = _node_ranks(comm)
        est = run_shared(comm, lambda: comm.rank == 0 and _preflight(
            args, scenario, "kinetic", comm.size, local))
        snap = args.out / "snapshots" if (args.snapshots and args.out) else None
        with run_control(args, scenario, comm) as control:
            result = run_kinetic(scenario, comm=comm, progress=False if args.quiet else None,
                                 snapshot_dir=snap, control=control)
        if comm.rank == 0:
            result.info["memory_estimate"] = est.bytes
            _print_final(scenario.name, result, f" on {comm.size} rank(s)")
            _write(args, scenario, result, folder if args.out else None)
    finally:
        if folder is not None:
            folder.__exit__(None, None, None)
    return 0


def _on_all_ranks(run):
    """Run ``run(comm)`` on COMM_WORLD; an error on some ranks only ends the job."""
    from mpi4py import MPI

    from fpsolver.runtime.parallel import abort_on_error, is_shared

    comm = MPI.COMM_WORLD
    with abort_on_error(comm):
        try:
            return run(comm)
        except FpsolverError as exc:
            if is_shared(exc) and comm.rank != 0:
                return 2
            raise


def _cmd_steady(args) -> int:
    def run(comm):
        from fpsolver.runtime.parallel import run_shared
        from fpsolver.steady.run import run_steady, steady_result

        scenario = load_scenario(args.scenario, args.overrides)
        folder = _folder(args) if comm.rank == 0 else None
        try:
            run_shared(comm, lambda: folder.__enter__() if folder is not None else None)
            local = _node_ranks(comm)
            run_shared(comm, lambda: comm.rank == 0 and _preflight(
                args, scenario, "steady", comm.size, local))
            model, state = run_steady(scenario, comm=comm)
            result = steady_result(model, state, comm)
            if comm.rank == 0:
                r, avg = state.residuals, result.site_average()
                print(f"{scenario.name}, stationary state: vbar = ({avg['vbar_e'][0]:.6f}, "
                      f"{avg['vbar_i'][0]:.6f}), K = ({avg['K_ee'][0]:.6f}, "
                      f"{avg['K_ii'][0]:.6f}) (site averages); {state.info['wall_time']:.1f} s "
                      f"on {comm.size} rank(s)")
                print(f"residuals: Fokker-Planck {r['fokker_planck']:.1e} (relative), balance "
                      f"{r['balance']:.1e}, mass/mean {r['mass_mean']:.1e}; "
                      f"{state.info['newton_iterations']} Newton iterations, cells "
                      f"{tuple(state.info['cells'])}")
                _write(args, scenario, result, folder if args.out else None)
        finally:
            if folder is not None:
                folder.__exit__(None, None, None)
        return 0
    return _on_all_ranks(run)


def _cmd_spectrum(args) -> int:
    if not 1 <= args.count <= MAX_EIGENVALUES:
        raise FpsolverError(f"--count must be in [1, {MAX_EIGENVALUES}], got {args.count} -- "
                            "fix: e.g. --count 10")
    if args.target is not None and not math.isfinite(args.target):
        raise FpsolverError(f"--target must be finite, got {args.target} -- fix: e.g. "
                            "--target 0.01")
    if (args.steady is not None and args.out is not None
            and args.steady.resolve() == args.out.resolve()):
        raise FpsolverError(f"--steady {args.steady} is also --out: the stationary state is "
                            "read-only input -- fix: give the spectrum another --out")

    def run(comm):
        from fpsolver.runtime.parallel import run_shared
        from fpsolver.steady.run import run_spectrum

        scenario = load_scenario(args.scenario, args.overrides)
        folder = _folder(args) if comm.rank == 0 else None
        try:
            run_shared(comm, lambda: folder.__enter__() if folder is not None else None)
            local = _node_ranks(comm)
            run_shared(comm, lambda: comm.rank == 0 and _preflight(
                args, scenario, "spectrum", comm.size, local))
            start = None
            if args.steady is not None:
                from fpsolver.steady.run import read_steady_folder
                start = run_shared(comm, read_steady_folder, args.steady, scenario)
            model, state, spec, report = run_spectrum(
                scenario, comm=comm, count=args.count, target=args.target,
                vectors=args.vectors and args.out is not None, start=start,
                fourier=args.fourier)
            vectors = None
            if args.vectors and args.out is not None:
                from fpsolver.steady.run import eigenfunction_dataset
                vectors = eigenfunction_dataset(model, state, spec, comm, {
                    "run_id": folder.run_id if folder else "", "status": "complete"})
            if comm.rank == 0:
                print(json.dumps(report, indent=1) if args.json else _spectrum_text(report))
                if args.out is not None:
                    _write_report(args, scenario, folder, "spectrum.json", report,
                                  vectors=vectors)
        finally:
            if folder is not None:
                folder.__exit__(None, None, None)
        return 0
    return _on_all_ranks(run)


def _spectrum_text(report: dict) -> str:
    lines = [f"scenario {report['scenario']}: {report['verdict']} on the slow (O(1)) time "
             "scale of the kinetic limit (`fpsolver stability` is about the fast "
             "sqrt(n) scale)",
             f"{'#':>3} {'Re lambda':>14} {'Im lambda':>14} {'residual':>10} "
             f"{'error est.':>10}" + ("  mode k" if report["modes"] is not None else "")]
    modes = report["modes"] or [None] * len(report["eigenvalues"])
    for k, ((re, im), r, e, mode) in enumerate(zip(report["eigenvalues"], report["residuals"],
                                                   report["error_estimates"], modes)):
        flag = "  (not resolved)" if k in report["unresolved"] else ""
        where = "" if mode is None else "  " + ", ".join(map(str, mode))
        lines.append(f"{k:3d} {re:14.8f} {im:14.8f} {r:10.1e} {e:10.1e}{where}{flag}")
    if report["modes"] is not None:
        lines.append("mode k: the eigenfunction is e^{i k.x} times one site's perturbation "
                     "(solved one spatial Fourier mode at a time)")
    lines.append(f"neutral directions ({report['neutral']})")
    return "\n".join(lines)


def _cmd_continue(args) -> int:
    for name, value in (("--from", args.p_from), ("--to", args.p_to)):
        if not math.isfinite(value):
            raise FpsolverError(f"{name} must be finite, got {value} -- fix: give a number")
    if args.p_from == args.p_to:
        raise FpsolverError("--from and --to must differ -- fix: give the range to follow")
    if not 1 <= args.count <= MAX_EIGENVALUES or args.max_points < 2:
        raise FpsolverError(f"--count must be in [1, {MAX_EIGENVALUES}] and --max-points >= 2 "
                            "-- fix: e.g. --count 4 --max-points 400")
    value = _field(load_scenario(args.scenario, args.overrides), args.param)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FpsolverError(f"--param {args.param}: not a numeric scenario field -- fix: "
                            "name a number, e.g. populations.e.tau or gains.ee")
    scenario = load_scenario(args.scenario, args.overrides + [f"{args.param}={args.p_from!r}"])

    def run(comm):
        from fpsolver.runtime.parallel import run_shared
        from fpsolver.steady.run import run_continuation

        folder = _folder(args) if comm.rank == 0 else None
        try:
            run_shared(comm, lambda: folder.__enter__() if folder is not None else None)
            local = _node_ranks(comm)
            run_shared(comm, lambda: comm.rank == 0 and _preflight(
                args, scenario, "continue", comm.size, local))
            branch, dataset = run_continuation(
                args.scenario, args.overrides, args.param, args.p_from, args.p_to,
                comm=comm, count=args.count, max_points=args.max_points,
                run_id=folder.run_id if args.out is not None and folder else None)
            if comm.rank == 0:
                stable = branch.stable()
                print(f"{scenario.name}: {len(branch.p)} points, {args.param} from "
                      f"{min(branch.p):.6g} to {max(branch.p):.6g}; {int(stable.sum())} "
                      f"stable, {int((~stable).sum())} unstable; "
                      f"{branch.info['wall_time']:.1f} s")
                for sp in branch.special:
                    freq = (f", frequency {sp['frequency']:.6g}"
                            if sp["frequency"] is not None else "")
                    print(f"  {sp['kind']} at {args.param} = {sp['p']:.10g}{freq}")
                if "stopped" in branch.info:
                    print(f"  stopped early: {branch.info['stopped']}")
                if args.out is not None:
                    _write_branch(args, scenario, folder, dataset)
        finally:
            if folder is not None:
                folder.__exit__(None, None, None)
        return 0
    return _on_all_ranks(run)


def _field(scenario, key: str):
    obj = scenario
    for part in key.split("."):
        obj = getattr(obj, part, None)
    return obj


def _write_branch(args, scenario, folder, dataset) -> None:
    from fpsolver.output import NETCDF_ENGINE, atomic_write
    from fpsolver.rundir import deferred_signals, write_manifest
    from fpsolver.steady.branch_io import BRANCH_FILE

    toml = f"# fpsolver run {folder.run_id} (complete)\n" + to_toml(scenario)
    with deferred_signals():
        atomic_write(args.out / BRANCH_FILE,
                     lambda p: dataset.to_netcdf(p, engine=NETCDF_ENGINE))
        atomic_write(args.out / "scenario.toml", lambda p: p.write_text(toml))
        write_manifest(args.out, folder.run_id, [BRANCH_FILE, "scenario.toml"],
                       command=" ".join(sys.argv[1:]))
    print(f"wrote {args.out / BRANCH_FILE}")


def _write_report(args, scenario, folder, name: str, report: dict, vectors=None) -> None:
    """A JSON report, the scenario and the manifest into ``--out`` (signals held).

    ``vectors``: an eigenfunction Dataset, written as ``eigenfunctions.nc``.
    """
    from fpsolver.output import NETCDF_ENGINE, atomic_write
    from fpsolver.rundir import deferred_signals, write_manifest

    body = {**report, "run_id": folder.run_id, "status": "complete"}
    toml = f"# fpsolver run {folder.run_id} (complete)\n" + to_toml(scenario)
    files = [name, "scenario.toml"]
    with deferred_signals():
        atomic_write(args.out / name, lambda p: p.write_text(json.dumps(body, indent=1)))
        atomic_write(args.out / "scenario.toml", lambda p: p.write_text(toml))
        if vectors is not None:
            atomic_write(args.out / "eigenfunctions.nc",
                         lambda p: vectors.to_netcdf(p, engine=NETCDF_ENGINE))
            files.append("eigenfunctions.nc")
        write_manifest(args.out, folder.run_id, files, command=" ".join(sys.argv[1:]))
    print(f"wrote {args.out / name}")


def _cmd_scenarios(args) -> int:
    for name in scenario_names():
        print(f"{name:18s} {load_scenario(name).description}")
    return 0


def _cmd_show(args) -> int:
    print(to_toml(load_scenario(args.scenario, args.overrides)), end="")
    return 0


def _cmd_plot(args) -> int:
    from fpsolver.plotting import plot_run
    from fpsolver.rundir import verify_run_folder

    if (args.out_dir / "branch.nc").is_file():  # a continuation: the bifurcation diagram
        from fpsolver.plotting import plot_branch

        verify_run_folder(args.out_dir)
        for path in plot_branch(args.out_dir):
            print(f"wrote {path}")
        return 0
    for d in [args.out_dir, *args.compare]:
        if not (d / "observables.nc").is_file():
            print(f"fpsolver: error: {d} has no observables.nc -- fix: give the --out "
                  "directory of a run", file=sys.stderr)
            return 2
        verify_run_folder(d)  # complete, unaltered, one run
    for path in plot_run(args.out_dir, compare=args.compare):
        print(f"wrote {path}")
    return 0


def _cmd_demo(args) -> int:
    from fpsolver.demo import DEMO_OVERRIDES, DEMO_PARTICLES, run_demo

    run_demo(args.out, overrides=DEMO_OVERRIDES + args.overrides,
             n_particles=DEMO_PARTICLES if args.n is None else args.n)
    return 0


_COMMANDS = {"particles": _cmd_particles, "gaussian": _cmd_gaussian,
             "stability": _cmd_stability, "kinetic": _cmd_kinetic,
             "steady": _cmd_steady, "spectrum": _cmd_spectrum, "continue": _cmd_continue,
             "scenarios": _cmd_scenarios, "show": _cmd_show, "plot": _cmd_plot,
             "demo": _cmd_demo}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    0 ok, 2 bad input or failed run, 3 interrupted by SIGTERM/SIGINT after saving what it
    could (kinetic a checkpoint, particles the records reached). Expected failures
    (:mod:`fpsolver.failures`) are one line with the fix; ``--debug`` shows their traceback.
    """
    from fpsolver.failures import describe

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _COMMANDS[args.command](args)
    except Exception as exc:  # noqa: BLE001 - expected failures become one line
        found = describe(exc)
        if found is None or args.debug:
            raise
        print(f"fpsolver: error: {found[0]}", file=sys.stderr)
        return found[1]


if __name__ == "__main__":
    sys.exit(main())

"""The ``fpsolver`` command line: one subcommand per solver, all sharing the scenario flags.

``main(argv=None) -> int`` keeps the CLI testable; ``python -m fpsolver`` calls it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fpsolver.errors import FpsolverError
from fpsolver.scenario import load_scenario, scenario_names, to_toml

__all__ = ["main"]

logger = logging.getLogger("fpsolver")


def _scenario_args(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("scenario", help=f"a shipped scenario ({', '.join(scenario_names())}) "
                   "or the path of a TOML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set populations.e.tau=0.5 --set n=1000 "
                   "(values in TOML syntax; repeatable)")
    if out:
        p.add_argument("--out", type=Path, help="output directory (summary.json, "
                       "observables.nc, scenario.toml)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpsolver", description="Kinetic limit of balanced E-I networks: particle "
        "simulator, finite-element Fokker-Planck solver, Gaussian reduction, stability.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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


def _write(args, scenario, result) -> None:
    if args.out is None:
        return
    from fpsolver.output import write_outputs

    paths = write_outputs(args.out, scenario, result)
    print(f"wrote {paths['summary']} and {paths['observables']}")


def _print_final(label: str, result, suffix: str) -> None:
    s = result.site_average()
    print(f"{label}, t = {s['t'][-1]:g}: vbar = ({s['vbar_e'][-1]:.6f}, {s['vbar_i'][-1]:.6f}),"
          f" K = ({s['K_ee'][-1]:.6f}, {s['K_ii'][-1]:.6f}); "
          f"{result.info.get('wall_time', 0):.1f} s{suffix}")


def _cmd_particles(args) -> int:
    from fpsolver.particles import run_particles
    from fpsolver.runtime import Interrupted

    scenario = load_scenario(args.scenario, args.overrides)
    try:
        result = run_particles(scenario, progress=False if args.quiet else None)
    except Interrupted as exc:
        return _particles_interrupted(args, scenario, exc)
    _print_final(f"{scenario.name}: n = {scenario.n}", result, "")
    _write(args, scenario, result)
    return 0


def _particles_interrupted(args, scenario, exc) -> int:
    """Write the records an interrupted particle run reached (``exc.result``, if ``--out``),
    say so on stderr; exit code 3."""
    kept = f"the records up to t = {exc.result.t[-1]:.6g}"
    if args.out is None:
        saved = f"nothing written (no --out; {kept} are lost)"
    else:
        from fpsolver.output import write_outputs

        paths = write_outputs(args.out, scenario, exc.result)
        saved = f"wrote {kept} to {paths['summary']} and {paths['observables']}"
    print(f"fpsolver: particle run interrupted by {exc.signal_name} at t = {exc.time:.6g} "
          f"(step {exc.step}); {saved}", file=sys.stderr)
    return 3


def _cmd_gaussian(args) -> int:
    from fpsolver.gaussian import run_gaussian

    scenario = load_scenario(args.scenario, args.overrides)
    result = run_gaussian(scenario)
    s = result.site_average()
    print(f"{'t':>8} {'K_ee':>10} {'K_ii':>10} {'vbar_e':>10} {'vbar_i':>10}")
    stride = max(1, len(s["t"]) // 10)
    for k in list(range(0, len(s["t"]), stride)) + ([len(s["t"]) - 1]
                                                    if (len(s["t"]) - 1) % stride else []):
        print(f"{s['t'][k]:8.3f} {s['K_ee'][k]:10.6f} {s['K_ii'][k]:10.6f} "
              f"{s['vbar_e'][k]:10.6f} {s['vbar_i'][k]:10.6f}")
    _write(args, scenario, result)
    return 0


def _cmd_stability(args) -> int:
    from fpsolver.stability import analyse_stability

    scenario = load_scenario(args.scenario, args.overrides)
    report = analyse_stability(scenario, time=args.time)
    if args.json:
        print(json.dumps({"scenario": scenario.name, **report.to_dict()}, indent=1))
    else:
        print(f"scenario {scenario.name}")
        print(report.text())
    if args.out is not None:
        from fpsolver.output import atomic_write

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out / "stability.json",
                     lambda p: p.write_text(json.dumps(report.to_dict(), indent=1)))
        atomic_write(args.out / "scenario.toml", lambda p: p.write_text(to_toml(scenario)))
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
    from fpsolver.runtime.cliargs import run_control

    scenario = load_scenario(args.scenario, args.overrides)
    snap = args.out / "snapshots" if (args.snapshots and args.out) else None
    with run_control(args, scenario, comm) as control:
        result = run_kinetic(scenario, comm=comm, progress=False if args.quiet else None,
                             snapshot_dir=snap, control=control)
    if comm.rank == 0:
        _print_final(scenario.name, result, f" on {comm.size} rank(s)")
        _write(args, scenario, result)
    return 0


def _cmd_scenarios(args) -> int:
    for name in scenario_names():
        print(f"{name:18s} {load_scenario(name).description}")
    return 0


def _cmd_show(args) -> int:
    print(to_toml(load_scenario(args.scenario, args.overrides)), end="")
    return 0


def _cmd_plot(args) -> int:
    from fpsolver.plotting import plot_run

    for d in [args.out_dir, *args.compare]:
        if not (d / "observables.nc").is_file():
            print(f"fpsolver: error: {d} has no observables.nc -- fix: give the --out "
                  "directory of a run", file=sys.stderr)
            return 2
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
             "scenarios": _cmd_scenarios, "show": _cmd_show, "plot": _cmd_plot,
             "demo": _cmd_demo}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 bad input or failed run, 3 interrupted
    by SIGTERM/SIGINT after saving what it could: kinetic a checkpoint, particles the
    records reached)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _COMMANDS[args.command](args)
    except FpsolverError as exc:
        print(f"fpsolver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

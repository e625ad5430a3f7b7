"""A tiny two-level time loop using RunControl exactly as a solver would (test program).

Run serially or under mpirun; prints ``step k`` lines, writes the final field to --out.
Not part of the package: it exercises fpsolver.runtime on a cheap deterministic stepper
with scheme history (like BDF2) and a global reduction every step (like the balance
constraint).
"""

import argparse
import sys
import time

import numpy as np
from mpi4py import MPI

from fpsolver.errors import FpsolverError
from fpsolver.runtime import RunControl
from fpsolver.runtime.parallel import abort_on_error

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=200)
p.add_argument("--every", type=int, default=0)
p.add_argument("--dir")
p.add_argument("--resume")
p.add_argument("--out")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--nan-at", type=int, default=-1, help="inject a NaN at this step (rank 1 or 0)")
args = p.parse_args()

comm = MPI.COMM_WORLD
n_local = 50 + 7 * comm.rank
x = np.linspace(0, 1, n_local) + comm.rank
dt = 1e-3
toml = 'name = "toy"\nt_end = 1.0\n'

with abort_on_error(comm):
    try:
        with RunControl(toml, comm, checkpoint_dir=args.dir, every=args.every,
                        resume=args.resume, command="toy_loop.py",
                        layout={"n_local": n_local}) as ctl:
            saved = ctl.resume_state()
            if saved is None:
                u, u_prev, vbar, step = np.sin(3 * x), np.sin(3 * x), np.zeros(1), 0
            else:
                u, u_prev, vbar = (saved.arrays[k] for k in ("u", "u_prev", "vbar"))
                step = saved.step
            while step < args.steps:
                mean = comm.allreduce(u.sum()) / comm.allreduce(u.size)
                u_new = (4 * u - u_prev) / 3 + 2 / 3 * dt * (-u**3 + np.cos(x) * mean)
                u_prev, u = u, u_new
                vbar = vbar + dt * mean
                step += 1
                if step == args.nan_at and comm.rank == comm.size - 1:
                    u[3] = np.nan
                ctl.end_of_step(step, step * dt, {"u": u, "u_prev": u_prev, "vbar": vbar})
                if comm.rank == 0:
                    print(f"step {step}", flush=True)
                time.sleep(args.sleep)
            ctl.finish(step, step * dt, {"u": u, "u_prev": u_prev, "vbar": vbar})
    except FpsolverError as exc:
        if comm.rank == 0:
            print(f"toy: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)

full = comm.gather(np.concatenate([u, vbar]), root=0)
if comm.rank == 0 and args.out:
    np.save(args.out, np.concatenate(full))
    print("done", flush=True)

r"""Peak memory of one CNF training step: adjoint method against direct backpropagation.

Direct backpropagation through the solver keeps every function evaluation's activations (and,
in training, the graph of the divergence) until the backward pass, so its memory grows linearly
with the number of steps. The adjoint method (Chen et al. 2018) re-solves an augmented ODE
backwards and keeps only the current state: its memory should not depend on the step count.

Each configuration runs in a fresh subprocess, which reports the growth of its peak resident
set size (``resource.getrusage(...).ru_maxrss``) over one training step (forward, loss,
backward) beyond what import, model and data already used, and the estimate
:meth:`~tractable.continuous.CNF.direct_memory` makes of direct backpropagation's memory (the
rule behind ``adjoint="auto"``), for the same number of evaluations. Fixed-step solvers make
the number of function evaluations exact: ``rk4`` evaluates the field 4 times per step.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cnf_memory.py            # the full table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cnf_memory.py --steps 8 16 --batch 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 / 1024**2 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(args: argparse.Namespace) -> None:
    import torch

    from tractable.continuous import CNF
    from tractable.nn import ODEMLP

    torch.manual_seed(0)
    torch.set_num_threads(1)
    field = ODEMLP(args.features, hidden=tuple(args.hidden))
    cnf = CNF(
        field,
        solver=args.solver,
        steps=args.nsteps,
        adjoint=args.mode == "adjoint",
        divergence="hutchinson",
    ).train()
    x = torch.randn(args.batch, args.features)
    # Warm up on two rows: lazily loaded kernels and autograd's first-use setup should not count
    # towards the step's memory or time.
    z, ladj = cnf(x[:2])
    (z.sum() + ladj.sum()).backward()
    cnf.zero_grad(set_to_none=True)
    cnf.reset_nfe()
    # adjoint="auto"'s estimate of what direct backpropagation keeps, for this solve's own
    # evaluation count (the rule doubles the previous solve's count as a margin; undone here)
    estimate_mb = cnf.direct_memory(x) / 2 / 2**20
    before = _peak_rss_mb()
    start = time.perf_counter()
    z, ladj = cnf(x)
    loss = (0.5 * z.pow(2).sum(1) - ladj).mean()
    loss.backward()
    seconds = time.perf_counter() - start
    after = _peak_rss_mb()
    grad_norm = sum(float(p.grad.norm()) ** 2 for p in cnf.parameters()) ** 0.5
    result = {
        "mode": args.mode,
        "steps": args.nsteps,
        "peak_mb": after - before,
        "estimate_mb": estimate_mb,
        "baseline_mb": before,
        "seconds": seconds,
        "grad_norm": grad_norm,
        **{f"nfe_{k}": v for k, v in cnf.nfe().items()},
    }
    print(json.dumps(result))


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for steps in args.steps:
        for mode in ("adjoint", "direct"):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--mode",
                mode,
                "--nsteps",
                str(steps),
                "--solver",
                args.solver,
                "--batch",
                str(args.batch),
                "--features",
                str(args.features),
                "--hidden",
                *map(str, args.hidden),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {mode:7s} steps={steps:4d} done", file=sys.stderr)
    return results


def table(results: list[dict]) -> str:
    by = {(r["mode"], r["steps"]): r for r in results}
    lines = [
        "| steps | NFE fwd | adjoint: NFE bwd | adjoint: peak MB | adjoint: s "
        "| direct: peak MB | direct: s | direct: estimate MB | grad-norm rel. diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for steps in sorted({r["steps"] for r in results}):
        a, d = by[("adjoint", steps)], by[("direct", steps)]
        diff = abs(a["grad_norm"] - d["grad_norm"]) / d["grad_norm"]
        lines.append(
            f"| {steps} | {a['nfe_forward']} | {a['nfe_backward']} | {a['peak_mb']:.1f} "
            f"| {a['seconds']:.2f} | {d['peak_mb']:.1f} | {d['seconds']:.2f} "
            f"| {d['estimate_mb']:.1f} | {diff:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("adjoint", "direct"), help=argparse.SUPPRESS)
    parser.add_argument("--nsteps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--solver", default="rk4", choices=("rk4", "euler", "midpoint"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64])
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    results = run(args)
    print(
        f"CNF training step, {args.solver}, batch {args.batch}, D={args.features}, "
        f"hidden {tuple(args.hidden)}, float32, Hutchinson divergence; peak RSS growth over "
        "the step, one fresh process per cell.\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()

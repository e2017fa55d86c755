r"""Where the time goes: torch.profiler breakdown of one operation of one library's model.

    .venv/bin/python benchmarks/_profile.py maf 64 log_prob [--library zuko] [--threads 2]

Prints the share of CPU time spent in the matrix products (``addmm``, ``mm``, ``bmm``,
``linear``'s kernels) against everything else, and the top kernels. Used for the notes in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import build  # noqa: E402
from _throughput import Batches, _ops  # noqa: E402

MATMUL = {"aten::addmm", "aten::mm", "aten::bmm", "aten::matmul_out", "aten::_addmm_activation"}


def breakdown(library: str, family: str, D: int, op: str, calls: int = 5) -> dict[str, object]:
    r"""Self CPU time per kernel over ``calls`` calls of ``op``, after two warm-up calls."""
    bench = build(library, family, D)
    fn = _ops(bench, D, Batches(), family)[op]
    fn()
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    kernels = sum(e.count for e in events if e.key.startswith("aten::")) / calls
    return {
        "matmul_share": matmul / total,
        "aten_calls_per_op": kernels,
        "top": [(e.key, e.self_cpu_time_total / total, e.count // calls) for e in top],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("family")
    p.add_argument("D", type=int)
    p.add_argument("op", choices=("log_prob", "train", "sample"))
    p.add_argument("--library", default="tractable")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    out = breakdown(args.library, args.family, args.D, args.op)
    print(
        f"{args.library} {args.family} D={args.D} {args.op}: "
        f"{100 * out['matmul_share']:.0f}% of CPU time in matrix products, "
        f"{out['aten_calls_per_op']:.0f} aten calls per operation"
    )
    for key, share, count in out["top"]:
        print(f"  {key:40s} {100 * share:5.1f}%  x{count}")


if __name__ == "__main__":
    main()

r"""MAF with and without :meth:`tractable.flows.Flow.compile`, against the peers, side by side.

For each D: tractable's MAF eager (the default) and compiled (``torch.compile`` of the layer
stack, inductor, validation outside the compiled region), zuko, nflows and normflows, all the
architecture of ``benchmarks/flows.py`` (5 layers, hidden (128, 128), same seed). Reported:

* compile time (static shapes by default, ``--dynamic``): the first ``log_prob`` call (batch
  1024, under ``no_grad``) and the first training step (batch 256) of the compiled flow, each
  minus an eager call of the same kind;
* steady-state samples per second of ``log_prob`` and of a training step (zero_grad, mean NLL,
  backward, Adam), the five models interleaved repeat by repeat in one process (wall time and
  CPU time), and the ratios to the best peer;
* the crossover: the number of training steps after which compilation has paid for itself,
  ``compile seconds / (eager step - compiled step)``;
* with ``--profile``, the top kernels of the compiled and eager ``log_prob`` and training step.

    OMP_NUM_THREADS=1 python benchmarks/maf_compiled.py --out benchmarks/results/maf_compiled.json

Not part of the test suite; the peers are optional dependencies (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import Timer, machine  # noqa: E402
from _models import PEERS, build, version  # noqa: E402
from _throughput import Batches, _ops  # noqa: E402

COMPILED = "tractable-compiled"


def _first_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _profile(fn, calls: int = 5, top: int = 8) -> list[tuple[str, float, int]]:
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    best = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total / total, e.count // calls) for e in best]


def measure(D: int, args: argparse.Namespace) -> dict:
    repeats, target, profiles = args.repeats, args.target, args.profile
    batches = Batches()
    benches = {lib: build(lib, "maf", D) for lib in ("tractable", *PEERS)}
    compiled = build("tractable", "maf", D)
    compiled.module.load_state_dict(benches["tractable"].module.state_dict())
    benches[COMPILED] = compiled
    ops = {lib: _ops(b, D, batches, "maf") for lib, b in benches.items()}
    # compile time: the compiled flow's first call of each kind, minus a warm eager call
    eager_lp = _first_call(ops["tractable"]["log_prob"])
    eager_tr = _first_call(ops["tractable"]["train"])
    eager_lp = min(eager_lp, _first_call(ops["tractable"]["log_prob"]))
    eager_tr = min(eager_tr, _first_call(ops["tractable"]["train"]))
    dynamic = {"none": None, "true": True, "false": False}[args.dynamic]
    compiled.module.compile(backend=args.backend, dynamic=dynamic)
    first_lp = _first_call(ops[COMPILED]["log_prob"])
    first_tr = _first_call(ops[COMPILED]["train"])
    compile_seconds = {"log_prob": first_lp - eager_lp, "train": first_tr - eager_tr}
    print(f"D={D}: compile {compile_seconds}", file=sys.stderr, flush=True)
    with torch.no_grad():
        x = torch.randn(64, D, generator=torch.Generator().manual_seed(3))
        diff = float((compiled.log_prob(x) - benches["tractable"].log_prob(x)).abs().max())
    timer = Timer(target=target)
    for lib in benches:
        for op in ("log_prob", "train"):
            timer.add((lib, op), ops[lib][op])
    timer.run(repeats)
    rows = {}
    for lib in benches:
        row = {}
        for op in ("log_prob", "train"):
            n = getattr(batches, op)
            row[op] = n / timer.median((lib, op))
            row[f"{op}_cpu"] = n / timer.median((lib, op), cpu=True)
            row[f"{op}_spread"] = timer.spread((lib, op))
        rows[lib] = row
        print(
            f"D={D:4d} {lib:20s} log_prob {row['log_prob']:10,.0f}/s  train {row['train']:9,.0f}/s",
            file=sys.stderr,
            flush=True,
        )
    out: dict = {"D": D, "rows": rows, "compile_seconds": compile_seconds, "max_abs_diff": diff}
    ratios = {}
    for lib in ("tractable", COMPILED):
        for op in ("log_prob", "train"):
            for clock in ("", "_cpu"):
                best = max(rows[p][op + clock] for p in PEERS)
                ratios[f"{lib}/{op}{clock}"] = rows[lib][op + clock] / best
    out["ratio_to_best_peer"] = ratios
    # steps after which compiling has paid for itself (None when compiled is not faster)
    crossover = {}
    for op in ("log_prob", "train"):
        n = getattr(batches, op)
        saved = n / rows["tractable"][op] - n / rows[COMPILED][op]
        crossover[op] = compile_seconds[op] / saved if saved > 0 else None
    out["crossover_calls"] = crossover
    if profiles:
        out["profiles"] = {
            f"{lib}/{op}": _profile(ops[lib][op])
            for lib in ("tractable", COMPILED, "normflows")
            for op in ("log_prob", "train")
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 784])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--target", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="inductor")
    p.add_argument(
        "--dynamic",
        choices=("none", "true", "false"),
        default="false",
        help="torch.compile's dynamic: false compiles static shapes, once per batch size",
    )
    p.add_argument("--profile", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    root = Path(__file__).resolve().parent.parent
    versions = {lib: version(lib) for lib in ("torch", "zuko", "nflows", "normflows")}
    results = {
        "command": " ".join(sys.argv),
        "machine": machine(versions, root),
        "config": vars(args),
        "load_before": load_before,
        "dims": [measure(D, args) for D in args.dims],
        "load_after": os.getloadavg(),
    }
    for r in results["dims"]:
        print(f"D={r['D']}: compile {r['compile_seconds']}, crossover {r['crossover_calls']}")
        for key, value in r["ratio_to_best_peer"].items():
            print(f"  {key:36s} {value:.2f}x")
        for key, top in r.get("profiles", {}).items():
            print(f"  {key}:")
            for name, share, count in top:
                print(f"    {name[:60]:60s} {100 * share:5.1f}%  x{count}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

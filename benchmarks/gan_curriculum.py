"""Progressive growing at equal wall time: the same DCGAN on mnist5k through the command line,
with and without ``-o curriculum=...`` (Karras et al. 2018), each stopped by the same
``-t max_seconds`` budget and seed, then FID and KID in the project's feature space in one
``tractable compare``. The growing networks are the plain ones plus 1x1 heads for the lower
resolutions (``tractable.nn.growing``): at 28 x 28 the same layers, parameters and FLOPs, so
the budget buys the schedule, not a network size.

    python benchmarks/gan_curriculum.py --seconds 600 --curriculum "[400,1200]" --fade 200 \\
        --out benchmarks/results/gan_curriculum.json
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


def tractable(*args: str) -> str:
    cmd = [sys.executable, "-m", "tractable.cli", *args]
    print("$ tractable", " ".join(args), flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--curriculum", default="[400,1200]", help="steps at which 14x14, 28x28 start")
    p.add_argument("--fade", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=1000, help="samples for FID and KID")
    p.add_argument("--first", choices=("plain", "curriculum"), default="plain",
                   help="which arm trains first (the machine's load drifts)")  # fmt: skip
    p.add_argument("--root", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--out", default="benchmarks/results/gan_curriculum.json")
    args = p.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="gan-curriculum-"))
    common = ["--model", "gan", "--data", "mnist5k", "--data-option", "image=true",
              "--batch-size", str(args.batch_size), "--steps", "1000000", "--seed", str(args.seed),
              "-t", f"max_seconds={args.seconds}"]  # fmt: skip
    arms = {
        "plain": [],
        "curriculum": ["-o", f"curriculum={args.curriculum}", "-o", f"fade={args.fade}"],
    }
    if args.first == "curriculum":
        arms = dict(reversed(arms.items()))
    commands, rows = [], {}
    for name, extra in arms.items():
        out = root / name
        load = os.getloadavg()
        argv = ["train", *common, *extra, "--out", str(out)]
        started = time.perf_counter()
        tractable(*argv)
        seconds = time.perf_counter() - started
        commands.append("tractable " + " ".join(argv))
        evaluate = ["eval", str(out), "--metrics", "fid,kid", "--n", str(args.n),
                    "--seed", str(args.seed)]  # fmt: skip
        tractable(*evaluate)
        commands.append("tractable " + " ".join(evaluate))
        metrics = json.loads((out / "metrics.json").read_text())
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        rows[name] = {
            "load_average_before": load,
            "wall_seconds": round(seconds, 1),
            "steps": log[-1]["step"],
            "stop_reason": metrics.get("stop_reason"),
            "sample_metrics": metrics.get("sample_metrics"),
        }
        print(json.dumps({name: rows[name]}, default=str), flush=True)
    report = ["--out", str(root / "report.html")]  # not into the working directory
    compare = ["compare", *(str(root / name) for name in arms), "--no-plots", *report, "--json"]
    table = tractable(*compare)
    commands.append("tractable " + " ".join(compare))
    result = {"commands": commands, "root": str(root), "runs": rows, "compare": json.loads(table)}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(tractable("compare", *(str(root / name) for name in arms), "--no-plots", *report))


if __name__ == "__main__":
    main()

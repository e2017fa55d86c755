"""The default run from the shell: where its wall time goes, quiet and beside a busy process.

Each round runs the README's main job, ``tractable train`` with no arguments (MAF on moons,
2,000 steps of 256), as a fresh process, the way a user starts it, and reads three clocks:

* the shell's wall time and the process's CPU time (``getrusage`` of the child), imports
  included;
* the run's own split from ``metrics.json``: ``timing`` (torch's import of its compiler, set-up,
  training loop, final evaluation, plots, other), ``step_seconds`` (the optimisation steps
  alone), ``validation_seconds`` and ``checkpoint_seconds``;
* a baseline: the same model's 2,000 bare training steps (forward, backward, Adam, no
  validation, checkpoint or logging) in a plain loop in a fresh process, imports included.

``--busy`` runs every round twice, alone and beside one other busy process (a 2-thread torch
matrix-product loop, the situation of the issue), alternating, so that the ratio compares like
with like. The 1-minute load average before each round is recorded.

    python benchmarks/whole_run.py --rounds 3 --busy --out benchmarks/results/whole_run.json

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = """
import torch
torch.set_num_threads(2)
a = torch.randn(1024, 1024)
while True:
    a = torch.tanh(a @ a * 1e-3)
"""

# The default run's model and batches, trained bare: no validation, checkpoints, logs or plots.
BARE = """
import sys, time
started = time.perf_counter()
import torch
torch.set_num_threads(1)
from tractable.registry import build_model, model_config
from tractable.runs.setup import prepare
from tractable.train.schedule import make_optimizer
from tractable.train import TrainConfig
setup = prepare("maf", "moons")
train, _ = setup.training_data()
x = train if isinstance(train, torch.Tensor) else train[0]
torch.manual_seed(0)
model = build_model(setup.model_config)
opt = make_optimizer(model.parameters(), TrainConfig(lr=1e-3))
g = torch.Generator().manual_seed(0)
ready = time.perf_counter()
per_epoch = x.shape[0] // 256
for step in range(2000):
    if step % per_epoch == 0:
        order = torch.randperm(x.shape[0], generator=g)
    rows = order[(step % per_epoch) * 256 : (step % per_epoch + 1) * 256]
    opt.zero_grad(set_to_none=True)
    loss = model.loss(x[rows])
    loss.backward()
    opt.step()
done = time.perf_counter()
print(f"{ready - started:.3f} {done - ready:.3f}")
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    cpu0, t0 = _child_cpu(), time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, _child_cpu() - cpu0, out


def default_run(root: Path, tag: str, env: dict[str, str]) -> dict:
    out = root / tag
    wall, cpu, _ = _timed([sys.executable, "-m", "tractable", "train", "--out", str(out)], env)
    m = json.loads((out / "metrics.json").read_text())
    return {
        "wall": round(wall, 3), "cpu": round(cpu, 3), "timing": m["timing"],
        "step_seconds": m["step_seconds"], "validation_seconds": m["validation_seconds"],
        "checkpoint_seconds": m["checkpoint_seconds"], "threads": m["threads"],
        "threads_reason": m["threads_reason"], "test_nll": m["test_nll"],
    }  # fmt: skip


def bare_loop(env: dict[str, str]) -> dict:
    wall, cpu, out = _timed([sys.executable, "-c", BARE], env)
    ready, steps = (float(v) for v in out.split())
    return {"wall": round(wall, 3), "cpu": round(cpu, 3), "start": ready, "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", action="store_true", help="also beside one busy 2-thread process")
    p.add_argument("--out", default="benchmarks/results/whole_run.json")
    args = p.parse_args()
    # The user's environment: no OMP_NUM_THREADS, so the run chooses its own threads.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["MPLBACKEND"] = "Agg"
    root = Path(tempfile.mkdtemp(prefix="whole-run-"))
    rows = []
    for r in range(args.rounds):
        for busy in (False, True) if args.busy else (False,):
            load = os.getloadavg()[0]
            hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
            try:
                if hog is not None:
                    time.sleep(2.0)  # let it reach full speed
                row = {"round": r, "busy": busy, "load_before": round(load, 2)}
                row["run"] = default_run(root, f"r{r}-{'busy' if busy else 'quiet'}", env)
                row["bare"] = bare_loop(env)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            rows.append(row)
            run, bare = row["run"], row["bare"]
            print(
                f"round {r} {'busy ' if busy else 'quiet'} load {load:.2f}: run {run['wall']:.2f} s"
                f" wall ({run['cpu']:.2f} CPU), steps {run['step_seconds']:.2f}, overhead "
                f"{run['timing']['overhead_fraction']:.3f}; bare loop {bare['wall']:.2f} s "
                f"(steps {bare['steps']:.2f})",
                flush=True,
            )
    summary = {}
    for busy in (False, True) if args.busy else (False,):
        sel = [row for row in rows if row["busy"] == busy]
        summary["busy" if busy else "quiet"] = {
            "run_wall_median": statistics.median(r["run"]["wall"] for r in sel),
            "run_cpu_median": statistics.median(r["run"]["cpu"] for r in sel),
            "overhead_median": statistics.median(
                r["run"]["timing"]["overhead_fraction"] for r in sel
            ),
            "bare_wall_median": statistics.median(r["bare"]["wall"] for r in sel),
        }
    if args.busy:
        summary["busy_over_quiet"] = round(
            summary["busy"]["run_wall_median"] / summary["quiet"]["run_wall_median"], 3
        )
    result = {
        "command": "python benchmarks/whole_run.py " + " ".join(sys.argv[1:]),
        "rows": rows,
        "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

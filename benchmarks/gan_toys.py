"""GAN objectives on the mixture toys: modes covered, high-quality fraction, KL and JS.

Every loss trains through `tractable.runs.train_run` (the command line's path) with its
paper's settings (`tractable.gan.PAPER`; since the continuous-data defaults of
`tractable.gan.builders.run_defaults`, the minimax, non-saturating and hinge losses train
both players at 1e-3 on the toys unless `--option` sets a rate), the same MLPs and the same
number of trainer steps
(one batch each, so `n_critic = 5` means a fifth as many generator steps), then
`tractable eval RUN --metrics modes,kl` on 5,000 samples against the test split. KL and JS
are between the exact mixture density and a KDE of the samples (a GAN has no density).

    python benchmarks/gan_toys.py --steps 8000 --seeds 0 1 2 --out benchmarks/results/gan_toys.json

``--option KEY=VALUE`` passes a model option to every loss (``-o KEY=VALUE`` of the command
line, the value read as JSON), ``--loss-option LOSS:KEY=VALUE`` to one loss only; the rows
record the options each run had.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

LOSSES = ("minimax", "nonsaturating", "wgan-gp", "hinge")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", nargs="+", default=["8gaussians", "grid25"])
    p.add_argument("--losses", nargs="+", default=list(LOSSES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--hidden", default="[128,128,128]")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--loss-option", action="append", default=[], metavar="LOSS:KEY=VALUE")
    p.add_argument("--out", default="benchmarks/results/gan_toys.json")
    p.add_argument("--merge", action="store_true", help="add the rows to those already in --out")
    args = p.parse_args()
    common = dict(parse_option(o, "--option") for o in args.option)
    per_loss: dict[str, dict] = {}
    for o in args.loss_option:
        loss, sep, rest = o.partition(":")
        if not sep or loss not in LOSSES:
            p.error(f"--loss-option: expected LOSS:KEY=VALUE with LOSS in {LOSSES}, got {o!r}")
        per_loss.setdefault(loss, {}).update([parse_option(rest, "--loss-option")])
    import torch

    torch.set_num_threads(1)
    from tractable.runs import Run, evaluate_run, train_run

    rows = []
    root = Path(tempfile.mkdtemp(prefix="gan-toys-"))
    for data in args.data:
        for loss in args.losses:
            for seed in args.seeds:
                out = root / f"{data}-{loss}-{seed}"
                options = {"loss": loss, "hidden": json.loads(args.hidden), **common,
                           **per_loss.get(loss, {})}  # fmt: skip
                load = os.getloadavg()[0]
                started = time.perf_counter()
                train_run(
                    model="gan", data=data, steps=args.steps, batch_size=args.batch_size,
                    seed=seed, out=out, options=options, progress=False, plots=False,
                )  # fmt: skip
                seconds = time.perf_counter() - started
                m = evaluate_run(Run.load(out), "modes,kl", n=5000, seed=seed)
                row = {
                    "data": data, "loss": loss, "seed": seed, "steps": args.steps,
                    "batch_size": args.batch_size, "options": options,
                    "train_seconds": round(seconds, 1), "load_before": round(load, 2),
                    "modes": m["modes"]["modes_captured"], "n_modes": m["modes"]["n_modes"],
                    # PacGAN's count (Lin et al. 2018): a mode with fewer than 20 high-quality
                    # samples in 2,500 is lost; 40 in our 5,000
                    "modes_20_per_2500": sum(c >= 40 for c in m["modes"]["counts"]),
                    "high_quality": m["modes"]["fraction_high_quality"],
                    "data_high_quality": m["modes"]["data_fraction_high_quality"],
                    "kl_data_model": m["kl"]["kl_data_model"],
                    "kl_model_data": m["kl"]["kl_model_data"], "js": m["kl"]["js"],
                }  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    commands = [" ".join(sys.argv)]
    if args.merge and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text())
        rows = old["rows"] + rows
        commands = old.get("commands", [old.get("command")]) + commands
    summary = {"commands": commands, "load_average": os.getloadavg(), "rows": rows,
               "table": table(rows)}  # fmt: skip
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(summary["table"])


def parse_option(text: str, flag: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"{flag}: expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def table(rows: list[dict]) -> str:
    lines = [
        "| data | loss | modes (per seed) | modes, ≥ 20 per 2,500 | high-quality "
        "| KL(data‖model) | KL(model‖data) | JS |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["data"], r["loss"]) for r in rows}, key=lambda k: (k[0], LOSSES.index(k[1])))
    for data, loss in keys:
        rs = [r for r in rows if r["data"] == data and r["loss"] == loss]

        def mean(key: str, rs: list[dict] = rs) -> str:
            v = [r[key] for r in rs]
            if len(v) == 1:
                return f"{v[0]:.3f}"
            return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f} (sd)"

        modes = ", ".join(f"{r['modes']}/{r['n_modes']}" for r in rs)
        strict = ", ".join(f"{r.get('modes_20_per_2500', '—')}" for r in rs)
        lines.append(
            f"| {data} | {loss} | {modes} | {strict} | {mean('high_quality')} | "
            f"{mean('kl_data_model')} | {mean('kl_model_data')} | {mean('js')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

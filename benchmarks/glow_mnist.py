"""Glow on mnist5k: tractable against normflows' Glow with a matched architecture, same data,
same preprocessing (uniform dequantization, then logit space with lambda = 0.05 as the CLI's
default; ``--logit 0`` keeps [0, 1)), same optimiser, learning-rate schedule, batch and number
of steps, trained side by side in one process (interleaved steps, so both see the same machine
load). Reports parameters, wall time per model and test bits/dim on the 8-bit scale.

    python benchmarks/glow_mnist.py --steps 600 --depth 8 --hidden 64

The documented run trains ours through the CLI and the peer here with the same budget, then
reports both (see docs/image_flows.md):

    python benchmarks/glow_mnist.py --only normflows --steps 3000 --schedule cosine \
        --threads 1 --ours-run runs/glow-mnist5k --out benchmarks/results/glow_mnist.json

Not part of the test suite. normflows is an optional dependency (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

import tractable as tr


def normflows_glow(levels: int, depth: int, hidden: int, shape: tuple[int, int, int]):
    """normflows' Glow built from its public blocks, as in its documented Glow example:
    level i (0 = coarsest) runs `depth` GlowBlocks on the channels of that scale, then a
    Squeeze (depth-to-space in the generative direction); each level has its own learned
    Gaussian base (GlowBase)."""
    import normflows as nf

    c, h, w = shape
    q0, flows, merges = [], [], []
    for i in range(levels):
        ch = c * 2 ** (levels + 1 - i)
        flows.append(
            [nf.flows.GlowBlock(ch, hidden, split_mode="channel", scale=True) for _ in range(depth)]
            + [nf.flows.Squeeze()]
        )
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            latent = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def _log_prob(name: str, model: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    # normflows' MultiscaleFlow.log_prob takes the class labels as a required argument
    return model.log_prob(y, None) if name == "normflows" else model.log_prob(y)


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=0, help="residual blocks in our conditioner")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                    help="cosine: lr (1 + cos(pi t / steps)) / 2, the CLI's -t schedule=cosine")
    ap.add_argument("--logit", type=float, default=0.05,
                    help="logit-space lambda (0: stay in [0, 1))")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/glow_mnist.json")
    ap.add_argument("--time-only", action="store_true", help="time 3 steps of each and stop")
    ap.add_argument("--only", choices=("tractable", "normflows"),
                    help="train one library (e.g. ours through the CLI, the peer here)")
    ap.add_argument("--ours-run", help="a tractable run directory to report beside the peer")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    logit = {"logit": args.logit} if args.logit > 0 else {}
    ds = tr.data.load("mnist5k", image=True, seed=0, **logit)
    shape = ds.shape
    torch.manual_seed(args.seed)
    peer = normflows_glow(args.levels, args.depth, args.hidden, shape)

    def ours_with(hidden: int) -> torch.nn.Module:
        # blocks=0: conditioner 3x3 -> ReLU -> 3x3 (zero-init); normflows' GlowBlock has a
        # 1x1 hidden layer between, so ours gets the widest hidden (a multiple of 8) whose
        # parameter count does not exceed the peer's: a fair match of size.
        torch.manual_seed(args.seed)
        return tr.flows.Glow(
            shape=shape, levels=args.levels, depth=args.depth, hidden=hidden, blocks=args.blocks
        )

    width = 8
    while params(ours_with(width + 8)) <= params(peer):
        width += 8
    ours = ours_with(width)
    args.our_hidden = width
    models = {"tractable": ours, "normflows": peer}
    if args.only:
        models = {args.only: models[args.only]}
    opts = {k: torch.optim.Adam(m.parameters(), lr=args.lr) for k, m in models.items()}
    seconds = dict.fromkeys(models, 0.0)
    g = torch.Generator().manual_seed(args.seed)
    n = ds.train.shape[0]
    steps = 3 if args.time_only else args.steps
    with torch.no_grad():  # data-dependent ActNorm initialisation on the same first batch
        y0 = ds.preprocess.train_batch(ds.train[:512], g)
        for name, m in models.items():
            _log_prob(name, m, y0)
    for step in range(steps):
        idx = torch.randint(n, (args.batch_size,), generator=g)
        y = ds.preprocess.train_batch(ds.train[idx], g)
        if args.schedule == "cosine":
            for opt in opts.values():
                for group in opt.param_groups:
                    group["lr"] = args.lr * (1 + math.cos(math.pi * step / steps)) / 2
        for name, m in models.items():
            t = time.perf_counter()
            loss = -_log_prob(name, m, y).mean()
            opts[name].zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 100.0)
            opts[name].step()
            seconds[name] += time.perf_counter() - t
        if step % 50 == 0 or step == steps - 1:
            print(
                f"step {step}: "
                + ", ".join(f"{k} {seconds[k] / (step + 1):.2f} s/step" for k in models),
                flush=True,
            )
    results = {}
    from _measure import peak_bytes

    y_mem = ds.preprocess.train_batch(ds.train[: args.batch_size], g)

    def train_step(name: str, m: torch.nn.Module) -> None:
        m.zero_grad()
        (-_log_prob(name, m, y_mem).mean()).backward()

    # peak tensor memory of one training step (activations, gradients, temporaries) on a batch
    # of batch_size images, measured on the trained models (ActNorm initialised)
    memory = {
        name: peak_bytes(lambda name=name, m=m: train_step(name, m)) for name, m in models.items()
    }
    y_test, ladj = ds.preprocess.eval(ds.test, torch.Generator().manual_seed(1))
    for name, m in models.items():
        m.eval()
        with torch.no_grad():
            log_p = torch.cat([_log_prob(name, m, b) for b in y_test.split(250)])
        report = tr.data.nll_to_report(-log_p.double(), ladj.double(), ds)
        results[name] = {
            "params": params(m),
            "train_seconds": seconds[name],
            "seconds_per_step": seconds[name] / steps,
            "test_bpd": report["bpd"],
            "test_bpd_se": report["bpd_se"],
            "train_step_peak_mb": memory[name] / 2**20,
        }
    if args.ours_run:
        from pathlib import Path

        run = Path(args.ours_run)
        m = json.loads((run / "metrics.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        from tractable.runs import Run

        net = Run.load(run).model
        net.train()
        results["tractable (CLI run)"] = {
            "train_step_peak_mb": peak_bytes(lambda: train_step("cli", net)) / 2**20,
            "params": m["params"], "train_seconds": m["train_seconds"],
            "seconds_per_step": m["train_seconds"] / m["steps"], "test_bpd": m["test_bpd"],
            "test_bpd_se": m["test_bpd_se"], "run_dir": str(run), "model": cfg["model"],
        }
    summary = {
        "command": " ".join(sys.argv), "config": vars(args), "torch": torch.__version__,
        "results": results,
    }
    print(json.dumps(summary, indent=2))
    if not args.time_only:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
    for name, r in results.items():
        assert math.isfinite(r["test_bpd"]), name


if __name__ == "__main__":
    main()

r"""DDPM on mnist5k (issue 14): our U-Net DDPM against the peer diffusers (``UNet2DModel`` and
``DDPMScheduler``) at a matched parameter count, the same data, optimiser, batch and steps.

* ours: the model of the documented run (``docs/guide/four_families.md``): ``tractable train
  --model ddpm --data mnist5k --data-option image=true -o network=unet -o width=16`` (built by
  the CLI's own path, :func:`tractable.runs.setup.prepare`; linear schedule, :math:`T = 1000`,
  :math:`L_\text{simple}`), 177,809 parameters at width 16;
* diffusers: ``UNet2DModel`` (blocks of 16, 24, 24 channels, one ResNet layer per block, its
  default mid-block with one attention layer, a time embedding 80 wide: 175,601 parameters,
  1.2% fewer than ours) trained with ``DDPMScheduler.add_noise`` and the ε-MSE, the scheduler
  given our chain's :math:`\beta_t` (``trained_betas``) so that both learn the same forward
  process. (``--width`` and ``--blocks`` choose other sizes; the earlier 300-step comparison
  used width 32 against blocks of 32, 48, 48 with the default embedding.)

Both see the same batches: tractable's mnist5k training split (4,000 images), freshly
dequantized into [0, 1] by the run's preprocessing, then mapped to [-1, 1]; Adam with the
same learning rate and, as the documented run, its cosine decay to 0 over the steps (the
trainer's :class:`~tractable.train.LRSchedule`). Steps alternate between the two in one process
(one intra-op thread), so both see the same machine load; each model's clock counts only its
own steps. The weights evaluated are the last ones (the documented run restores the best by
validation loss). Reported: the training wall time, the validation :math:`L_\text{simple}` (500
images, the same noise and steps for both, several draws), and the variational bound in
bits/dim on test images computed by our :class:`~tractable.diffusion.DDPM` with each
ε-network plugged in (their network is called at its integer timestep :math:`t - 1`), with
``bound_terms`` stratified steps per image (an unbiased estimate; its standard error covers
the step sampling).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusion_mnist.py --steps 2000 \
        --out benchmarks/results/diffusion_mnist.json

Not part of the test suite; diffusers is an optional dependency (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tractable.diffusion import DDPM
from tractable.runs.limits import build_checked
from tractable.runs.setup import prepare
from tractable.train import LRSchedule, TrainConfig
from tractable.train.batches import permutation


class TheirEps(nn.Module):
    r"""diffusers' ``UNet2DModel`` as our ε-network ``net(y, s, c)``: our step
    :math:`t = sT \in 1..T` is their timestep :math:`t - 1` (their ``alphas_cumprod[k]`` is our
    :math:`\bar\alpha_{k+1}`)."""

    def __init__(self, unet: nn.Module, steps: int) -> None:
        super().__init__()
        self.unet, self.steps = unet, steps

    def forward(self, y: Tensor, s: Tensor, context: Tensor | None = None) -> Tensor:
        k = (s * self.steps).round().long() - 1
        return self.unet(y, k.expand(y.shape[0]) if k.dim() == 0 else k).sample


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def simple_loss(model: DDPM, y: Tensor, draws: int, seed: int) -> tuple[float, float | None]:
    r"""Mean and s.e. over ``draws`` seeded draws of :math:`L_\text{simple}` on ``y`` (model
    space), the same ``t`` and ε for every model given the same seed."""
    values = []
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for d in range(draws):
            torch.manual_seed(seed + d)
            total = 0.0
            for i in range(0, y.shape[0], 100):
                yb = y[i : i + 100]
                t = torch.randint(1, model.steps + 1, (yb.shape[0],))
                eps = torch.randn_like(yb)
                err = (model.eps(model.q_sample(yb, t, eps), t, None) - eps).pow(2)
                total += float(err.mean()) * yb.shape[0]
            values.append(total / y.shape[0])
    v = torch.tensor(values)
    return float(v.mean()), (float(v.std() / math.sqrt(draws)) if draws > 1 else None)


def bound_bpd(model: DDPM, x: Tensor, terms: int, seed: int) -> dict[str, float]:
    r"""The test bound in bits/dim from our :class:`DDPM` (Gaussian decoder on dequantized data
    scaled to [-1, 1], as the run reports it): :math:`-(\text{ELBO} - D \log 256) / (D \log
    2)` per image, with ``terms`` stratified steps."""
    model.bound_terms = terms
    model.eval()
    d = x[0].numel()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        elbo = torch.cat([model.estimate(x[i : i + 50]).values for i in range(0, len(x), 50)])
    bpd = -(elbo.double() - d * math.log(256)) / (d * math.log(2))
    return {"bpd": float(bpd.mean()), "bpd_se": float(bpd.std() / math.sqrt(len(bpd))),
            "images": len(bpd), "bound_terms": terms}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--width", type=int, default=16, help="our U-Net's width")
    p.add_argument("--blocks", default="16,24,24", help="diffusers' block_out_channels")
    p.add_argument("--time-embedding", type=int, default=80, help="diffusers' time_embedding_dim")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-draws", type=int, default=4)
    p.add_argument("--test-images", type=int, default=100)
    p.add_argument("--bound-terms", type=int, default=50)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    from diffusers import DDPMScheduler, UNet2DModel

    blocks = tuple(int(b) for b in args.blocks.split(","))
    setup = prepare("ddpm", "mnist5k", options={"network": "unet", "width": args.width},
                    data_options={"image": True})  # fmt: skip
    torch.manual_seed(args.seed)
    ours = build_checked(setup.model_config)
    assert isinstance(ours, DDPM) and ours.scale == 2.0 and ours.shift == -1.0
    T = ours.steps
    betas = (1.0 - ours.alpha_bar[1:] / ours.alpha_bar[:-1]).double()
    scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=betas.tolist())
    assert torch.allclose(scheduler.alphas_cumprod.double(), ours.alpha_bar[1:].double(),
                          rtol=1e-5)  # fmt: skip
    torch.manual_seed(args.seed)
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=blocks,
                       time_embedding_dim=args.time_embedding, layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                       norm_num_groups=8)  # fmt: skip
    theirs = DDPM(TheirEps(unet, T), (1, 28, 28), steps=T, schedule=ours.schedule,
                  variance=ours.variance, scale=2.0, shift=-1.0)  # fmt: skip
    params = {"tractable": count(ours), "diffusers": count(unet)}
    print("parameters", params, flush=True)

    ds, transform = setup.dataset, setup.batch_transform()
    train = ds.train
    noise = torch.Generator().manual_seed(args.seed)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=args.lr)
    opt_theirs = torch.optim.Adam(unet.parameters(), lr=args.lr)
    rates = LRSchedule(TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   schedule=args.schedule))  # fmt: skip
    clocks = {"tractable": 0.0, "diffusers": 0.0}
    losses: dict[str, list[float]] = {"tractable": [], "diffusers": []}
    per_epoch = train.shape[0] // args.batch_size
    before = load()
    ours.train()
    unet.train()
    for step in range(args.steps):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            order = permutation(train.shape[0], args.seed, epoch)
        x = transform(train[order[i * args.batch_size : (i + 1) * args.batch_size]], noise)
        y = 2.0 * x - 1.0  # [0, 1] -> [-1, 1], as our run's scale=2, shift=-1
        for opt in (opt_ours, opt_theirs):
            for group in opt.param_groups:
                group["lr"] = rates.rate(step)

        start = time.perf_counter()
        opt_ours.zero_grad(set_to_none=True)
        loss = ours.loss(x)  # maps x to y itself
        loss.backward()
        opt_ours.step()
        clocks["tractable"] += time.perf_counter() - start
        losses["tractable"].append(float(loss.detach()))

        start = time.perf_counter()
        opt_theirs.zero_grad(set_to_none=True)
        eps = torch.randn_like(y)
        k = torch.randint(0, T, (y.shape[0],))
        pred = unet(scheduler.add_noise(y, eps, k), k).sample
        loss = nn.functional.mse_loss(pred, eps)
        loss.backward()
        opt_theirs.step()
        clocks["diffusers"] += time.perf_counter() - start
        losses["diffusers"].append(float(loss.detach()))
        if (step + 1) % 25 == 0:
            print(f"step {step + 1}: " + ", ".join(
                f"{k} {sum(v[-25:]) / 25:.4f} ({clocks[k]:.0f} s)" for k, v in losses.items()
            ) + f"  load {load()}", flush=True)  # fmt: skip
    after = load()

    val_y = 2.0 * setup.model_space("val")[0] - 1.0
    test_x = setup.model_space("test")[0][: args.test_images]
    result: dict[str, Any] = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/diffusion_mnist.py "
        + " ".join(sys.argv[1:]),
        "tractable_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "torch": torch.__version__,
        "config": vars(args),
        "parameters": params,
        "diffusers_unet": {
            "block_out_channels": blocks,
            "layers_per_block": 1,
            "time_embedding_dim": args.time_embedding,
            "mid_block": "UNetMidBlock2D with attention (the default)",
            "blocks": "DownBlock2D/UpBlock2D x 3",
            "norm_num_groups": 8,
        },
        "load_before": before,
        "load_after_training": after,
        "models": {},
    }
    for name, model in (("tractable", ours), ("diffusers", theirs)):
        start = time.perf_counter()
        val, val_se = simple_loss(model, val_y, args.val_draws, seed=1000)
        bound = bound_bpd(model, test_x, args.bound_terms, seed=2000)
        result["models"][name] = {
            "train_seconds": clocks[name],
            "ms_per_step": 1e3 * clocks[name] / args.steps,
            "train_loss_last_50": sum(losses[name][-50:]) / len(losses[name][-50:]),
            "val_l_simple": val,
            "val_l_simple_se": val_se,
            "test_bound": bound,
            "eval_seconds": time.perf_counter() - start,
        }
        print(name, json.dumps(result["models"][name]), flush=True)
    result["load_end"] = load()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

"""VAE: tractable against the same network in plain PyTorch and in pythae.

The architecture is Burda et al.'s (2016) one-stochastic-layer VAE: a 784-200-200-50 tanh
encoder with a diagonal Gaussian posterior, a 50-200-200-784 tanh decoder with Bernoulli
pixels, a standard normal prior, the analytic KL and one posterior draw per example.

1. Step time: a bare training step (loss, backward, Adam 1e-3) on one batch of 100 binary
   images; the models alternate step by step in one process; median per model.
2. Training: mnist5k-binary-fixed (4,000 train / 500 test, binarized once with the seed), the
   same epochs of the same shuffled batches for every model (interleaved epoch by epoch in one
   process, so all see the same load), then the importance-sampling estimate of the test NLL
   with ``--k`` posterior draws per image: ours by ``model.estimate(method="importance")``,
   pythae by its ``get_nll``, plain PyTorch by the same formula written out
   (:math:`\\log \\frac1k \\sum_i p(x, z_i) / q(z_i \\mid x)`).

    OMP_NUM_THREADS=1 python benchmarks/vae.py --out benchmarks/results/vae.json

Not part of the test suite; pythae is an optional dependency (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tractable as tr
from tractable.vae import build_vae

LATENT, HIDDEN, D = 50, (200, 200), 784


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class Plain(nn.Module):
    """The VAE written directly in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(_mlp([D, *HIDDEN]), nn.Tanh())
        self.loc = nn.Linear(HIDDEN[-1], LATENT)
        self.log_scale = nn.Linear(HIDDEN[-1], LATENT)
        self.dec = _mlp([LATENT, *reversed(HIDDEN), D])

    def loss(self, x: Tensor) -> Tensor:
        h = self.enc(x)
        mu, ls = self.loc(h), self.log_scale(h)
        z = mu + ls.exp() * torch.randn_like(mu)
        rec = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + (2 * ls).exp() - 1 - 2 * ls).sum(1)
        return (kl - rec).mean()

    @torch.no_grad()
    def nll(self, x: Tensor, k: int) -> tuple[float, float]:
        values = []
        for xi in x.split(10):
            h = self.enc(xi)
            mu, ls = self.loc(h), self.log_scale(h)
            eps = torch.randn(k, *mu.shape)
            z = mu + ls.exp() * eps
            log_q = (-0.5 * eps.pow(2) - ls - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
            logits = self.dec(z)
            log_px = -F.binary_cross_entropy_with_logits(
                logits, xi.expand(k, *xi.shape), reduction="none"
            ).sum(-1)
            values.append(torch.logsumexp(log_px + log_pz - log_q, 0) - math.log(k))
        v = -torch.cat(values)
        return float(v.mean()), float(v.std() / math.sqrt(len(v)))


def pythae_vae() -> nn.Module:
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(_mlp([D, *HIDDEN]), nn.Tanh())
            self.loc = nn.Linear(HIDDEN[-1], LATENT)
            self.log_var = nn.Linear(HIDDEN[-1], LATENT)

        def forward(self, x: Tensor) -> ModelOutput:
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.loc(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp([LATENT, *reversed(HIDDEN), D])

        def forward(self, z: Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    config = VAEConfig(input_dim=(D,), latent_dim=LATENT, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder())


class Runner:
    def __init__(self, name: str, model: nn.Module) -> None:
        self.name, self.model = name, model
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.seconds = 0.0

    def loss(self, x: Tensor) -> Tensor:
        if self.name == "pythae":
            from pythae.data.datasets import DatasetOutput

            return self.model(DatasetOutput(data=x)).loss
        return self.model.loss(x)

    def step(self, x: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.loss(x).backward()
        self.opt.step()

    def nll(self, x: Tensor, k: int) -> tuple[float, float]:
        self.model.eval()
        if self.name == "ours":
            est = self.model.estimate(x, method="importance", k=k)
            return float(-est.values.mean()), float(est.values.std() / math.sqrt(len(x)))
        if self.name == "plain":
            return self.model.nll(x, k)
        with torch.no_grad():
            nll = -float(self.model.get_nll(x, n_samples=k, batch_size=100))  # it returns log p
        return nll, float("nan")  # pythae returns the mean only


def make(names: list[str], seed: int) -> list[Runner]:
    builders = {
        "ours": lambda: build_vae(D, latent=LATENT, hidden=HIDDEN),
        "plain": Plain,
        "pythae": pythae_vae,
    }
    runners = []
    for name in names:
        torch.manual_seed(seed)
        runners.append(Runner(name, builders[name]()))
    return runners


def step_times(
    names: list[str], reps: int, steps: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time (of this thread) of one training step per model, in
    ms; models alternate step by step, so that a change in the machine's load falls on all of
    them alike. With one intra-op thread the CPU time leaves out the time the thread waited for
    a core, which dominates the wall time on a shared machine."""
    runners = make(names, seed)
    x = torch.bernoulli(torch.full((100, D), 0.3))
    for r in runners:
        for _ in range(20):
            r.step(x)
    wall: dict[str, list[float]] = {r.name: [] for r in runners}
    cpu: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(reps * steps):
        for r in runners:
            start, start_cpu = time.perf_counter(), time.thread_time()
            r.step(x)
            cpu[r.name].append(1e3 * (time.thread_time() - start_cpu))
            wall[r.name].append(1e3 * (time.perf_counter() - start))
    median = statistics.median
    return {k: median(v) for k, v in wall.items()}, {k: median(v) for k, v in cpu.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["ours", "plain", "pythae"])
    p.add_argument("--epochs", type=int, default=100, help="0: step times only")
    p.add_argument("--k", type=int, default=1000, help="importance samples per test image")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ms, cpu = step_times(args.models, args.reps, 40, args.seed)
    for label, t in (("wall", ms), ("cpu", cpu)):
        ratio = {k: round(v / t["plain"], 3) for k, v in t.items()}
        print(f"{label} ms per step:", {k: round(v, 3) for k, v in t.items()}, "ratio:", ratio)
    ms = {"wall": ms, "cpu": cpu}

    if args.epochs == 0:  # step times only; keep the training rows of an earlier run
        keep = {}
        if args.out and os.path.isfile(args.out):
            with open(args.out) as f:
                keep = {k: v for k, v in json.load(f).items() if k.startswith("training")}
        write(args, load_before, ms, keep)
        return
    ds = tr.data.load("mnist5k-binary-fixed", seed=args.seed, dtype="float32")
    train, test = ds.train, ds.test
    runners = make(args.models, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=g)
        for r in runners:  # the same batches for every model
            torch.manual_seed(args.seed * 100_003 + epoch)
            r.model.train()
            start = time.perf_counter()
            for idx in order.split(100):
                r.step(train[idx])
            r.seconds += time.perf_counter() - start
    training = {}
    for r in runners:
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        nll, se = r.nll(test, args.k)
        training[r.name] = {
            "train_seconds": r.seconds,
            f"test_nll_is{args.k}": nll,
            "se": se,
            "eval_seconds": time.perf_counter() - start,
        }
        print(r.name, training[r.name], flush=True)
    config = {"epochs": args.epochs, "k": args.k, "threads": args.threads, "seed": args.seed}
    extra = {"training": training, "training_config": config, "training_load": os.getloadavg()}
    write(args, load_before, ms, extra)


def write(args: argparse.Namespace, load_before: tuple, ms: dict, training: dict) -> None:
    result = {
        "note": (
            "784-200-200-50 tanh, Bernoulli decoder, N(0, I) prior, analytic KL, one draw per "
            "example, Adam 1e-3, batch 100. Step time: median over steps alternating between "
            "the models on one batch, wall and thread CPU time. Training (training_config): "
            "mnist5k-binary-fixed, the same epochs of the same shuffled batches, interleaved "
            "epoch by epoch in one process; test NLL by importance sampling with k draws "
            "(nats; se over the 500 test images; pythae's get_nll gives no se). The step "
            "times and the training rows may come from separate runs (see the loads)."
        ),
        "config": vars(args),
        "torch": torch.__version__,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "ms_per_step": ms,
        "step_ratio_to_plain": {
            clock: {k: v / t["plain"] for k, v in t.items()} for clock, t in ms.items()
        },
        **training,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

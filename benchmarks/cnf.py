"""CNF on 8gaussians: tractable's FFJORD against zuko's CNF with the same hidden widths.

Both train on the same batches with Adam (lr 1e-3, batch 256), side by side in one process:
the steps interleave (one zuko step, then each arm of ours until its training clock catches up
with zuko's), so all see the same machine load. Evaluation time is excluded from the training
clocks. zuko trains as issue 16 defines it: plain Adam 1e-3 for ``--steps`` steps. Ours runs
one or more arms (``--arm``, default ``constant``), each a fresh model from the same seed:

* ``constant``: the same plain Adam loop as zuko's;
* ``cosine:STEPS``: the learning rate decays from 1e-3 to 0 over STEPS steps by
  1e-3 (1 + cos(pi t / STEPS)) / 2 (``TrainConfig``'s cosine schedule without warm-up), then the
  arm stops; STEPS should be a budget that ends within zuko's wall time (the result records
  whether it did: an arm that finishes early keeps its final weights until zuko's clock ends).

Reported:

* time per training step and function evaluations (NFE) per step, forward and backward;
* test NLL (nats, exact divergence) after the same number of steps;
* each arm's test NLL at zuko's wall time for ``--steps`` steps (equal wall time);
* for constant arms, the longer budget (up to ``--max-steps``) at which ours gets within
  ``--within`` nats of the true entropy 2.838 (8 Gaussians of standard deviation 0.5 / 1.414:
  log 8 + log(2 pi e sigma^2));
* the true mixture's own NLL on the same test points, the floor any model scores against.

    OMP_NUM_THREADS=1 python benchmarks/cnf.py --out benchmarks/results/cnf.json
    OMP_NUM_THREADS=1 python benchmarks/cnf.py --arm constant --arm cosine:2500 --out ...

Not part of the test suite; zuko is an optional dependency (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

import tractable as tr
from tractable.continuous import FFJORD, total_nfe
from tractable.evaluation.functions import MIXTURE_STD, mixture_log_density

SIGMA = MIXTURE_STD["8gaussians"]
ENTROPY = math.log(8) + math.log(2 * math.pi * math.e * SIGMA**2)


class Peer:
    """zuko's CNF with a counter of its network's evaluations."""

    def __init__(self, hidden: list[int]) -> None:
        import zuko

        self.flow = zuko.flows.CNF(2, hidden_features=hidden)
        self.calls = 0
        self.flow.transform.ode.register_forward_hook(lambda *_: self._count())

    def _count(self) -> None:
        self.calls += 1

    def parameters(self):
        return self.flow.parameters()

    def step(self, x: torch.Tensor, opt: torch.optim.Optimizer) -> tuple[float, int, int]:
        self.flow.train()
        opt.zero_grad(set_to_none=True)
        self.calls = 0
        loss = -self.flow().log_prob(x).mean()
        forward = self.calls
        loss.backward()
        opt.step()
        return float(loss.detach()), forward, self.calls - forward

    def test_nll(self, x: torch.Tensor) -> float:
        self.flow.eval()
        with torch.no_grad():
            return float(-self.flow().log_prob(x).mean())


class Ours:
    def __init__(self, hidden: list[int], options: dict | None = None) -> None:
        self.flow = FFJORD(2, hidden=tuple(hidden), **(options or {}))

    def parameters(self):
        return self.flow.parameters()

    def step(self, x: torch.Tensor, opt: torch.optim.Optimizer) -> tuple[float, int, int]:
        self.flow.train()
        opt.zero_grad(set_to_none=True)
        loss = self.flow.loss(x)
        loss.backward()
        opt.step()
        nfe = total_nfe(self.flow)
        return float(loss.detach()), nfe["forward"], nfe["backward"]

    def test_nll(self, x: torch.Tensor) -> float:
        self.flow.eval()
        with torch.no_grad():
            return float(-self.flow.log_prob(x).mean())


LR = 1e-3


class Record:
    def __init__(self, name: str, model: Peer | Ours, budget: int | None = None) -> None:
        self.name, self.model = name, model
        self.opt = torch.optim.Adam(model.parameters(), lr=LR)
        self.budget = budget  # a cosine decay over this many steps, then stop; None: constant
        self.finished_seconds: float | None = None
        self.seconds = 0.0
        self.steps = 0
        self.nfe = [0, 0]
        self.losses: list[float] = []
        self.test: dict[int, float] = {}

    @property
    def done(self) -> bool:
        return self.budget is not None and self.steps >= self.budget

    def step(self, x: torch.Tensor) -> None:
        if self.budget is not None:
            for group in self.opt.param_groups:
                group["lr"] = LR * (1 + math.cos(math.pi * self.steps / self.budget)) / 2
        start = time.perf_counter()
        loss, fwd, bwd = self.model.step(x, self.opt)
        self.seconds += time.perf_counter() - start
        self.steps += 1
        if self.done:
            self.finished_seconds = self.seconds
        self.nfe[0] += fwd
        self.nfe[1] += bwd
        self.losses.append(loss)

    def evaluate(self, test: torch.Tensor) -> float:
        nll = self.model.test_nll(test)
        self.test[self.steps] = nll
        print(
            f"{self.name:14s} step {self.steps:5d}  {self.seconds:7.1f} s  test NLL {nll:.4f}",
            flush=True,
        )
        return nll

    def summary(self) -> dict:
        n = max(self.steps, 1)
        return {
            "schedule": "constant" if self.budget is None else f"cosine over {self.budget} steps",
            "steps": self.steps,
            "train_seconds": self.seconds,
            "ms_per_step": 1e3 * self.seconds / n,
            "nfe_forward_per_step": self.nfe[0] / n,
            "nfe_backward_per_step": self.nfe[1] / n,
            "test_nll": {str(k): v for k, v in self.test.items()},
            "loss_every_50": [round(v, 4) for v in self.losses[::50]],
        }


def true_nll(x: torch.Tensor) -> float:
    """The mean NLL of ``x`` under the mixture 8gaussians samples from (equal weights)."""
    return float(-mixture_log_density("8gaussians", SIGMA)(x).mean())


def parse_arm(spec: str) -> tuple[str, int | None]:
    if spec == "constant":
        return "ours", None
    kind, _, steps = spec.partition(":")
    if kind != "cosine" or not steps.isdigit() or int(steps) < 1:
        raise SystemExit(f"--arm: expected 'constant' or 'cosine:STEPS', got {spec!r}")
    return f"ours_cosine{steps}", int(steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="zuko's training steps")
    p.add_argument("--max-steps", type=int, default=5000, help="our longest budget")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--within", type=float, default=0.03)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    p.add_argument(
        "--arm",
        action="append",
        default=None,
        metavar="SCHEDULE",
        help="an arm of ours: 'constant' or 'cosine:STEPS' (repeatable; default: constant)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an FFJORD option for ours (VALUE parsed as JSON), e.g. train_atol=1e-3",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    arms = [parse_arm(a) for a in (args.arm or ["constant"])]
    if len({name for name, _ in arms}) != len(arms):
        raise SystemExit("--arm: each arm at most once")

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ds = tr.data.load("8gaussians", seed=args.seed, dtype="float32")
    train, test = ds.train, ds.test
    g = torch.Generator().manual_seed(args.seed)
    # the same sequence of batches for every model: step i of each trains on batches[i]
    batches: list[torch.Tensor] = []

    def batch(i: int) -> torch.Tensor:
        while len(batches) <= i:
            batches.append(train[torch.randint(0, len(train), (args.batch_size,), generator=g)])
        return batches[i]

    torch.manual_seed(args.seed)
    zuko_rec = Record("zuko", Peer(args.hidden))
    ours = []
    for name, budget in arms:
        torch.manual_seed(args.seed)
        ours.append(Record(name, Ours(args.hidden, options), budget))

    def advance(rec: Record) -> None:
        rec.step(batch(rec.steps))
        if rec.steps % args.eval_every == 0 or rec.done:
            rec.evaluate(test)

    while zuko_rec.steps < args.steps:
        zuko_rec.step(batch(zuko_rec.steps))
        for rec in ours:
            while rec.seconds < zuko_rec.seconds and not rec.done:
                advance(rec)
        if zuko_rec.steps % args.eval_every == 0:
            zuko_rec.evaluate(test)
    if zuko_rec.steps not in zuko_rec.test:
        zuko_rec.evaluate(test)
    equal_wall = {}
    for rec in ours:
        nll = rec.test[rec.steps] if rec.steps in rec.test else rec.evaluate(test)
        equal_wall[rec.name] = {
            "steps": rec.steps,
            "seconds": rec.seconds,
            "test_nll": nll,
            "finished_seconds": rec.finished_seconds,
        }
    reached = {}
    for rec in ours:
        if rec.budget is not None:
            continue
        reached[rec.name] = None
        while rec.steps < args.max_steps:
            advance(rec)
            if rec.steps in rec.test and rec.test[rec.steps] <= ENTROPY + args.within:
                reached[rec.name] = {
                    "steps": rec.steps,
                    "seconds": rec.seconds,
                    "test_nll": rec.test[rec.steps],
                }
                break
    result = {
        "note": "8gaussians (20,000 train / 5,000 test), batch 256, Adam 1e-3, all networks "
        f"hidden {args.hidden}; steps interleaved in one process, {args.threads} thread(s); "
        "evaluation excluded from the training clocks; test NLL with the exact divergence. "
        "zuko: CNF defaults (ELU MLP, sin/cos time features, exact divergence, dopri5 atol "
        "1e-6 rtol 1e-5, adaptive checkpoint adjoint), constant lr. ours: FFJORD defaults"
        + (f" with {options}" if options else "")
        + "; arms: "
        + ", ".join(a for a in (args.arm or ["constant"]))
        + " (cosine:N decays lr to 0 over N steps, then stops).",
        "config": vars(args),
        "torch": torch.__version__,
        "entropy": ENTROPY,
        "true_test_nll": true_nll(test),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "zuko_seconds": zuko_rec.seconds,
        "results": {rec.name: rec.summary() for rec in (zuko_rec, *ours)},
        "at_zuko_wall_time": equal_wall,
        "within": reached,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "results"}, indent=1))
    for rec in (zuko_rec, *ours):
        s = rec.summary()
        print(
            f"{rec.name}: {s['ms_per_step']:.1f} ms/step, NFE {s['nfe_forward_per_step']:.1f} "
            f"+ {s['nfe_backward_per_step']:.1f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

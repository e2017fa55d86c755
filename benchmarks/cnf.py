"""CNF on 8gaussians: tractable's FFJORD against zuko's CNF with the same hidden widths.

Both train on the same batches with the same plain Adam loop (lr 1e-3, batch 256), side by
side in one process: the steps interleave (one zuko step, then ours until our training clock
catches up with zuko's), so both see the same machine load. Evaluation time is excluded from
the training clocks. Reported:

* time per training step and function evaluations (NFE) per step, forward and backward;
* test NLL (nats, exact divergence) after the same number of steps;
* our test NLL at zuko's wall time for ``--steps`` steps (equal wall time);
* the longer budget at which ours gets within ``--within`` nats of the true entropy 2.838
  (8 Gaussians of standard deviation 0.5 / 1.414: log 8 + log(2 pi e sigma^2)).

    OMP_NUM_THREADS=1 python benchmarks/cnf.py --out benchmarks/results/cnf.json

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

SIGMA = 0.5 / 1.414
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


class Record:
    def __init__(self, name: str, model: Peer | Ours) -> None:
        self.name, self.model = name, model
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.seconds = 0.0
        self.steps = 0
        self.nfe = [0, 0]
        self.losses: list[float] = []
        self.test: dict[int, float] = {}

    def step(self, x: torch.Tensor) -> None:
        start = time.perf_counter()
        loss, fwd, bwd = self.model.step(x, self.opt)
        self.seconds += time.perf_counter() - start
        self.steps += 1
        self.nfe[0] += fwd
        self.nfe[1] += bwd
        self.losses.append(loss)

    def evaluate(self, test: torch.Tensor) -> float:
        nll = self.model.test_nll(test)
        self.test[self.steps] = nll
        print(
            f"{self.name:5s} step {self.steps:5d}  {self.seconds:7.1f} s  test NLL {nll:.4f}",
            flush=True,
        )
        return nll

    def summary(self) -> dict:
        n = max(self.steps, 1)
        return {
            "steps": self.steps,
            "train_seconds": self.seconds,
            "ms_per_step": 1e3 * self.seconds / n,
            "nfe_forward_per_step": self.nfe[0] / n,
            "nfe_backward_per_step": self.nfe[1] / n,
            "test_nll": {str(k): v for k, v in self.test.items()},
            "loss_every_50": [round(v, 4) for v in self.losses[::50]],
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="zuko's training steps")
    p.add_argument("--max-steps", type=int, default=5000, help="our longest budget")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--within", type=float, default=0.03)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
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

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ds = tr.data.load("8gaussians", seed=args.seed, dtype="float32")
    train, test = ds.train, ds.test
    g = torch.Generator().manual_seed(args.seed)

    def batch() -> torch.Tensor:
        return train[torch.randint(0, len(train), (args.batch_size,), generator=g)]

    torch.manual_seed(args.seed)
    zuko_rec = Record("zuko", Peer(args.hidden))
    torch.manual_seed(args.seed)
    ours = Record("ours", Ours(args.hidden, options))
    # the same sequence of batches for both: ours replays zuko's, then draws its own beyond them
    batches: list[torch.Tensor] = []
    equal_wall = None
    while zuko_rec.steps < args.steps:
        batches.append(batch())
        zuko_rec.step(batches[zuko_rec.steps])
        while ours.seconds < zuko_rec.seconds:
            if ours.steps >= len(batches):
                batches.append(batch())
            ours.step(batches[ours.steps])
            if ours.steps % args.eval_every == 0:
                ours.evaluate(test)
        if zuko_rec.steps % args.eval_every == 0:
            zuko_rec.evaluate(test)
    equal_wall = {"steps": ours.steps, "seconds": ours.seconds, "test_nll": ours.evaluate(test)}
    reached = None
    while ours.steps < args.max_steps:
        ours.step(batch() if ours.steps >= len(batches) else batches[ours.steps])
        if ours.steps % args.eval_every == 0:
            if ours.evaluate(test) <= ENTROPY + args.within:
                reached = {
                    "steps": ours.steps,
                    "seconds": ours.seconds,
                    "test_nll": ours.test[ours.steps],
                }
                break
    result = {
        "note": "8gaussians (20,000 train / 5,000 test, seed 0), batch 256, Adam 1e-3, both "
        f"networks hidden {args.hidden}; steps interleaved in one process, {args.threads} "
        "thread(s); evaluation excluded from the training clocks; test NLL with the exact "
        "divergence. zuko: CNF defaults (ELU MLP, sin/cos time features, exact divergence, "
        "dopri5 atol 1e-6 rtol 1e-5, adaptive checkpoint adjoint). ours: FFJORD defaults"
        + (f" with {options}" if options else "")
        + ".",
        "config": vars(args),
        "torch": torch.__version__,
        "entropy": ENTROPY,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "results": {"zuko": zuko_rec.summary(), "ours": ours.summary()},
        "ours_at_zuko_wall_time": equal_wall,
        "ours_within": reached,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "results"}, indent=1))
    for rec in (zuko_rec, ours):
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

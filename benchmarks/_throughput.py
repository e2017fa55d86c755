r"""Side-by-side throughput and peak memory of the same flows in every library.

For each family and dimension all libraries' models are built (same seed, same architecture),
then ``log_prob`` (under ``torch.no_grad``), a training step (zero_grad, forward, backward, Adam
step) and ``sample`` (under ``torch.no_grad``) are timed, interleaved between libraries, on the
same data (standard normal draws, float32).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from _measure import Timer, peak_bytes
from _models import AUTOREGRESSIVE, Bench, build

OPS = ("log_prob", "train", "sample")


@dataclass
class Batches:
    r"""Batch sizes: one for ``log_prob``, one for a training step, and one for ``sample``
    (smaller for autoregressive sampling at large D, which costs D network passes per layer)."""

    log_prob: int = 1024
    train: int = 256
    sample: int = 1024
    sample_ar: dict[int, int] = field(default_factory=lambda: {64: 256, 784: 32})

    def for_sample(self, family: str, D: int) -> int:
        if family in AUTOREGRESSIVE:
            for limit in sorted(self.sample_ar, reverse=True):
                if D >= limit:
                    return self.sample_ar[limit]
        return self.sample


def _ops(bench: Bench, D: int, batches: Batches, family: str) -> dict[str, object]:
    g = torch.Generator().manual_seed(1)
    x_eval = torch.randn(batches.log_prob, D, generator=g)
    x_train = torch.randn(batches.train, D, generator=g)
    n_sample = batches.for_sample(family, D)
    # a small learning rate keeps the parameters near their start over many timed steps
    opt = torch.optim.Adam(bench.module.parameters(), lr=1e-5)

    def log_prob() -> object:
        with torch.no_grad():
            return bench.log_prob(x_eval)

    def train() -> object:
        opt.zero_grad(set_to_none=True)
        loss = bench.loss(x_train)
        loss.backward()
        opt.step()
        return loss

    def sample() -> object:
        with torch.no_grad():
            return bench.sample(n_sample)

    return {"log_prob": log_prob, "train": train, "sample": sample, "n_sample": n_sample}


def _check(bench: Bench, D: int) -> None:
    with torch.no_grad():
        x = bench.sample(8)
        lp = bench.log_prob(x)
    if x.shape != (8, D) or lp.shape != (8,) or not bool(torch.isfinite(lp).all()):
        raise RuntimeError(f"{bench.library} {bench.family} D={D}: bad sample or log_prob")


def run(
    families: tuple[str, ...],
    dims: tuple[int, ...],
    libraries: tuple[str, ...],
    repeats: int,
    target: float,
    batches: Batches,
    memory: bool = True,
) -> list[dict[str, object]]:
    r"""One row per (family, D, library) with samples/s of each operation and peak memory."""
    rows = []
    for family in families:
        for D in dims:
            timer = Timer(target=target)
            benches, sizes = {}, {}
            for lib in libraries:
                bench = build(lib, family, D)
                _check(bench, D)
                ops = _ops(bench, D, batches, family)
                benches[lib] = (bench, ops)
                sizes[lib] = {
                    "log_prob": batches.log_prob,
                    "train": batches.train,
                    "sample": ops["n_sample"],
                }
                for op in OPS:
                    timer.add((lib, op), ops[op])
            timer.run(repeats)
            for lib in libraries:
                bench, ops = benches[lib]
                row: dict[str, object] = {
                    "family": family,
                    "D": D,
                    "library": lib,
                    "params": bench.parameters(),
                    "batch": sizes[lib],
                }
                for op in OPS:
                    row[op] = sizes[lib][op] / timer.median((lib, op))
                    row[f"{op}_cpu"] = sizes[lib][op] / timer.median((lib, op), cpu=True)
                    row[f"{op}_repeats"] = len(timer.times[(lib, op)])
                    row[f"{op}_spread"] = timer.spread((lib, op))
                if memory:
                    row["mem_log_prob"] = peak_bytes(ops["log_prob"])
                    row["mem_train"] = peak_bytes(ops["train"])
                rows.append(row)
                print(
                    f"{family:8s} D={D:4d} {lib:16s} params={row['params']:9d} "
                    + " ".join(f"{op}={row[op]:12,.0f}/s" for op in OPS)
                    + (f" mem_train={row['mem_train'] / 2**20:8.1f} MiB" if memory else ""),
                    file=sys.stderr,
                    flush=True,
                )
    return rows

"""Tiny models and data for the trainer tests (also imported by the subprocess scripts)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Toy(nn.Module):
    """A learnable diagonal Gaussian whose loss is the mean NLL.

    Options exercise the trainer: ``context`` adds a linear conditioner on a context tensor,
    ``noisy`` draws noise from torch's global generator inside the loss (as a VAE does),
    ``data_init`` sets a persistent buffer from the first batch (as ActNorm does), ``nan_at``
    makes the loss NaN on these 1-based training calls, ``nan_grad_at`` makes only the gradient
    NaN, and ``bad_buffer_at`` writes NaN into a buffer while the loss stays finite.
    """

    def __init__(
        self,
        features: int = 2,
        context: int = 0,
        noisy: bool = False,
        data_init: bool = True,
    ) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.net = nn.Linear(context, features) if context else None
        self.noisy = noisy
        self.data_init = data_init
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("shift", torch.zeros(features))
        self.nan_at: set[int] = set()
        self.nan_grad_at: set[int] = set()
        self.bad_buffer_at: set[int] = set()
        self.calls = 0

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        loc = self.loc + self.shift
        if self.net is not None:
            loc = loc + self.net(context)
        u = (x - loc) * torch.exp(-self.log_scale)
        return (-0.5 * u**2 - self.log_scale - 0.5 * math.log(2 * math.pi)).sum(1)

    def loss(self, batch: Tensor | tuple[Tensor, ...]) -> Tensor:
        x, c = (batch, None) if isinstance(batch, Tensor) else (batch[0], batch[-1])
        if self.net is None:
            c = None
        if self.training and self.data_init and not bool(self.initialized):
            with torch.no_grad():
                self.shift.copy_(x.mean(0))
                self.initialized.fill_(True)
        if self.noisy:
            x = x + 0.01 * torch.randn_like(x)
        loss = -self.log_prob(x, c).mean()
        if self.training:
            self.calls += 1
            if self.calls in self.nan_at:
                loss = loss * float("nan")
            if self.calls in self.nan_grad_at:
                # sqrt at 0: a finite value with an infinite derivative, times 0 -> NaN grad
                loss = loss + torch.sqrt((self.loc * 0.0).abs()).sum()
            if self.calls in self.bad_buffer_at:
                self.shift.fill_(float("nan"))
        return loss

    def extra_log(self) -> dict[str, float]:
        return {"calls": float(self.calls)}


def gaussian_data(n: int = 96, features: int = 2, seed: int = 1, shift: float = 2.0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return shift + 0.7 * torch.randn(n, features, generator=gen, dtype=torch.float64)


def dequantize(x: Tensor, generator: torch.Generator) -> Tensor:
    """Uniform noise from the trainer's generator (a stand-in for dequantization)."""
    return x + 0.05 * torch.rand(x.shape, generator=generator, dtype=x.dtype)


def params_of(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), f"{k}: {a[k]} != {b[k]}"

"""Shared pieces of the CNF tests: a linear field with closed-form answers, and small random
fields scaled up so that the flow is far from the identity."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from tractable.nn import ODEMLP


class LinearField(nn.Module):
    r""":math:`f(z, t) = A z`: the solve is :math:`e^{tA} x` and the log-determinant
    :math:`t \operatorname{tr} A`."""

    def __init__(self, A: Tensor) -> None:
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def forward(self, t: Tensor, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z @ self.A.T


class ZeroField(nn.Module):
    r"""A field with parameters whose output is identically zero."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(features))

    def forward(self, t: Tensor, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z * self.w


@pytest.fixture
def linear_field() -> Callable[[Tensor], LinearField]:
    return LinearField


@pytest.fixture
def zero_field() -> Callable[[int], ZeroField]:
    return ZeroField


def _scaled(module: nn.Module, scale: float) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(scale)
    return module


@pytest.fixture
def random_field() -> Callable[..., ODEMLP]:
    r"""A small tanh ODEMLP with its weights tripled: its flow moves points by about 2 and has
    a log-determinant of about -0.4 +- 0.2, far from the identity at initialisation."""

    def make(
        features: int = 2,
        context: int = 0,
        hidden: tuple[int, ...] = (16, 16),
        scale: float = 3.0,
        layer: str = "concatsquash",
    ) -> ODEMLP:
        net = ODEMLP(features, context, hidden, layer=layer, activation="tanh")
        return _scaled(net, scale)

    return make


@pytest.fixture
def scale_params() -> Callable[[nn.Module, float], nn.Module]:
    return _scaled

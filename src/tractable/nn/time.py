r"""Networks that see a time: the sinusoidal time embedding and an MLP velocity/noise network.

The embedding is the transformer's positional encoding (Vaswani et al. 2017) applied to a
continuous time, as DDPM embeds its step (Ho et al. 2020):

.. math:: e(t)_{2i} = \sin(s t\, \omega_i), \quad e(t)_{2i+1} = \cos(s t\, \omega_i), \qquad
          \omega_i = 10000^{-i / (d/2 - 1)},

with ``scale`` :math:`s` (1000 by default, so that a time in :math:`[0, 1]` spreads over the
frequencies as DDPM's integer steps :math:`1..1000` do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from .layers import activation_factory
from .networks import MLP


class SinusoidalEmbedding(nn.Module):
    r"""The sinusoidal embedding of a time: ``(N,)`` or a scalar -> ``(N, dim)``.

    Example:
        >>> import torch
        >>> SinusoidalEmbedding(8)(torch.tensor([0.0, 0.5])).shape
        torch.Size([2, 8])
    """

    def __init__(self, dim: int = 32, scale: float = 1000.0) -> None:
        super().__init__()
        check_positive_int(dim, "dim", minimum=4)
        if dim % 2:
            raise ValueError(f"dim: expected an even int >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
        self.register_buffer("freqs", float(scale) * freqs, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        angles = t.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeMLP(nn.Module):
    r"""A field on vectors that sees a time and an optional context: ``(x, t, c) -> (N, D)``.

    The time's sinusoidal embedding goes through a small MLP (as in DDPM's time embedding,
    Ho et al. 2020) and is concatenated with ``x`` and the context at the input and added to
    every hidden layer, so that each layer can change with the time.

    Args:
        features: :math:`D`.
        context: the context's width (0: none).
        hidden: the hidden widths (all equal, since the time embedding is added to each).
        embedding: the width of the sinusoidal embedding.
        activation: an activation name of :mod:`tractable.nn.layers`.
        scale: the embedding's time scale (see the module docstring); an ODE solver needs
            fewer steps with a smaller one, whose field changes more slowly with time.

    Example:
        >>> import torch
        >>> net = TimeMLP(2, hidden=(16, 16))
        >>> x = torch.randn(5, 2)
        >>> net(x, torch.rand(5)).shape, net(x, torch.tensor(0.3)).shape
        (torch.Size([5, 2]), torch.Size([5, 2]))
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        hidden: Sequence[int] = (128, 128, 128),
        embedding: int = 32,
        activation: str = "silu",
        scale: float = 1000.0,
    ) -> None:
        super().__init__()
        self.features = check_positive_int(features, "features")
        self.context = check_positive_int(context, "context", minimum=0)
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        if (
            not hidden
            or len(set(hidden)) != 1
            or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
        ):
            raise ValueError(f"hidden: expected equal positive widths, got {hidden!r}")
        width = hidden[0]
        act = activation_factory(activation)
        self.embed = nn.Sequential(
            SinusoidalEmbedding(embedding, scale), MLP(embedding, width, (width,), activation)
        )
        self.inp = nn.Linear(features + context + width, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in hidden[1:])
        self.act = act()
        self.out = nn.Linear(width, features)

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        n = x.shape[0]
        e = self.embed(t.to(x).expand(n) if t.dim() == 0 else t.to(x))
        parts = [x, e] if context is None else [x, e, context.to(x)]
        h = self.act(self.inp(torch.cat(parts, dim=1)))
        for layer in self.layers:
            h = self.act(layer(h) + e)
        return self.out(h)


class FlatField(nn.Module):
    r"""A field on flattened events: ``net`` on ``(N, prod(event))``, ``(N, *event)`` in and
    out (an MLP field on images).

    Example:
        >>> import torch
        >>> net = FlatField(TimeMLP(4, hidden=(8,)), (1, 2, 2))
        >>> net(torch.randn(3, 1, 2, 2), torch.rand(3)).shape
        torch.Size([3, 1, 2, 2])
    """

    def __init__(self, net: nn.Module, event: Sequence[int]) -> None:
        super().__init__()
        self.net, self.event = net, tuple(int(s) for s in event)

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1), t, context).reshape(x.shape)


def time_mlp(
    event: Sequence[int],
    context: int = 0,
    hidden: Sequence[int] = (128, 128, 128),
    embedding: int = 32,
    activation: str = "silu",
    scale: float = 1000.0,
) -> nn.Module:
    r"""A :class:`TimeMLP` for events of shape ``event``, flattened by :class:`FlatField` when
    they are not vectors."""
    event = tuple(int(s) for s in event)
    net = TimeMLP(math.prod(event), context, hidden, embedding, activation, scale)
    return net if len(event) == 1 else FlatField(net, event)


__all__ = ["FlatField", "SinusoidalEmbedding", "TimeMLP", "time_mlp"]

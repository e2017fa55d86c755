r"""Dynamics networks for continuous normalizing flows: MLPs that see time and a context.

A CNF integrates :math:`\mathrm{d}z/\mathrm{d}t = f(z, t, c)`. The networks here compute
:math:`f` with the signature ``dynamics(t, z, context) -> dz/dt``: ``t`` a scalar tensor,
``z`` of shape ``(N, D)``, ``context`` of shape ``(N, C)`` or ``None``; the result has the
shape of ``z``.

Every layer treats the rows of the batch independently (no batch statistics), which the exact
divergence of :class:`~tractable.continuous.CNF` relies on. Activations are smooth because the
divergence is itself differentiated during training and adaptive solvers need a smooth field.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from .layers import ACTIVATIONS

# smooth activations only: the ODE solver and the exact divergence need a smooth field
_ACTIVATIONS = {k: ACTIVATIONS[k] for k in ("softplus", "tanh", "elu", "silu")}

_LAYERS = ("concatsquash", "concat")


def _time_and_context(t: Tensor, h: Tensor, c: Tensor | None) -> Tensor:
    r"""The conditioning input of one layer, :math:`[t, c]`: ``(N, 1 + C)``."""
    tt = torch.as_tensor(t, dtype=h.dtype, device=h.device).reshape(1, 1).expand(h.shape[0], 1)
    return tt if c is None else torch.cat([tt, c], dim=1)


class ConcatLinear(nn.Module):
    r"""A linear layer that sees time and the context by concatenation.

    .. math:: h' = W \, [h, t, c] + b

    Shapes: ``h`` ``(N, in_features)``, ``c`` ``(N, context)`` or ``None``, result
    ``(N, out_features)``.

    Example:
        >>> import torch
        >>> from tractable.nn import ConcatLinear
        >>> ConcatLinear(2, 5)(torch.tensor(0.5), torch.zeros(3, 2), None).shape
        torch.Size([3, 5])
    """

    def __init__(self, in_features: int, out_features: int, context: int = 0) -> None:
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        check_positive_int(context, "context", minimum=0)
        self.linear = nn.Linear(in_features + 1 + context, out_features)

    def forward(self, t: Tensor, h: Tensor, c: Tensor | None = None) -> Tensor:
        return self.linear(torch.cat([h, _time_and_context(t, h, c)], dim=1))


class ConcatSquashLinear(nn.Module):
    r"""A linear layer whose output is gated and shifted by time and the context.

    The "concatsquash" layer of FFJORD (Grathwohl et al. 2019, "FFJORD: Free-form Continuous
    Dynamics for Scalable Reversible Generative Models"), here conditioned on
    :math:`s = [t, c]`:

    .. math:: h' = (W h + b) \odot \sigma(G s + g) + B s

    Shapes: ``h`` ``(N, in_features)``, ``c`` ``(N, context)`` or ``None``, result
    ``(N, out_features)``.

    Example:
        >>> import torch
        >>> from tractable.nn import ConcatSquashLinear
        >>> layer = ConcatSquashLinear(2, 4, context=1)
        >>> layer(torch.tensor(0.0), torch.zeros(3, 2), torch.ones(3, 1)).shape
        torch.Size([3, 4])
    """

    def __init__(self, in_features: int, out_features: int, context: int = 0) -> None:
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        check_positive_int(context, "context", minimum=0)
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(1 + context, out_features)
        self.shift = nn.Linear(1 + context, out_features, bias=False)

    def forward(self, t: Tensor, h: Tensor, c: Tensor | None = None) -> Tensor:
        s = _time_and_context(t, h, c)
        return self.linear(h) * torch.sigmoid(self.gate(s)) + self.shift(s)


class ODEMLP(nn.Module):
    r"""A time-dependent (and optionally conditional) MLP for the vector field of a CNF.

    .. math:: f(z, t, c) = L_K(t, c) \circ a \circ L_{K-1}(t, c) \circ \dots \circ a
              \circ L_1(t, c)(z)

    with every layer :math:`L_k` a :class:`ConcatLinear` (``layer="concat"``, the default) or a
    :class:`ConcatSquashLinear` (``layer="concatsquash"``), and :math:`a` a smooth activation
    (``tanh`` by default). The defaults start training fastest on the 2-D toy densities
    (``benchmarks/cnf.py``): at initialisation each concatsquash layer's sigmoid gate is about
    1/2, and softplus has slope 1/2 at 0, so a deep concatsquash-softplus field starts with a
    Jacobian far smaller than the plain tanh MLP's and learns the data's scale slowly.

    Args:
        features: the dimension ``D`` of the state ``z``.
        context: the number of context features ``C`` (0 for an unconditional field).
        hidden: the widths of the hidden layers.
        layer: ``"concatsquash"`` or ``"concat"``.
        activation: ``"softplus"``, ``"tanh"``, ``"elu"`` or ``"silu"``.

    Shapes: ``t`` scalar, ``z`` ``(N, D)``, ``context`` ``(N, C)`` or ``None``; the result is
    ``(N, D)``.

    Example:
        >>> import torch
        >>> from tractable.nn import ODEMLP
        >>> f = ODEMLP(2, context=3, hidden=(8, 8))
        >>> f(torch.tensor(0.0), torch.zeros(4, 2), torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        hidden: Sequence[int] = (64, 64),
        layer: str = "concat",
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        check_positive_int(features, "features")
        check_positive_int(context, "context", minimum=0)
        if isinstance(hidden, int) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden: expected a sequence of ints, got {hidden!r}")
        for i, h in enumerate(hidden):
            check_positive_int(h, f"hidden[{i}]")
        if layer not in _LAYERS:
            raise ValueError(f"layer: expected one of {_LAYERS}, got {layer!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {tuple(_ACTIVATIONS)}, got {activation!r}"
            )
        self.features = features
        self.context_features = context
        kind = ConcatSquashLinear if layer == "concatsquash" else ConcatLinear
        widths = [features, *hidden, features]
        self.layers = nn.ModuleList(
            kind(a, b, context) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, t: Tensor, z: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_features == 0 and context is not None:
            raise ValueError("context: this dynamics network is unconditional but got a context")
        if self.context_features > 0 and context is None:
            raise ValueError(f"context: expected shape (N, {self.context_features}), got None")
        h = z
        for k, layer in enumerate(self.layers):
            h = layer(t, h, context)
            if k < len(self.layers) - 1:
                h = self.activation(h)
        return h

    def extra_repr(self) -> str:
        return f"features={self.features}, context={self.context_features}"


__all__ = ["ConcatLinear", "ConcatSquashLinear", "ODEMLP"]

r"""Masked autoregressive transforms (Papamakarios et al. 2017, MAF; Kingma et al. 2016, IAF;
Durkan et al. 2019, autoregressive neural spline flows).

Feature :math:`i` of the output is an elementwise bijection of :math:`x_i` whose parameters come
from a MADE that sees only the features before :math:`i` in the layer's order, and the context:

.. math:: z_i = g(x_i; \theta_i(x_{<i}, c)), \qquad
          \log|\det J| = \sum_i \log g'(x_i; \theta_i(x_{<i}, c)).

The normalizing direction is one network pass; the inverse needs :math:`D` passes, each fixing
one more feature. Wrap a layer in :class:`~tractable.transforms.Inverse` to swap the costs (IAF).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from ..nn import MADE
from .base import Transform, sum_except_batch
from .maps import Affine, ElementwiseMap, RQSpline


class MaskedAutoregressive(Transform):
    r"""A masked autoregressive layer with any elementwise map.

    ``zero_init`` zeroes the MADE's output layer, so the layer starts as the identity;
    otherwise it keeps PyTorch's default initialisation.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.MaskedAutoregressive(3, tr.transforms.Affine())
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x)
        True
    """

    def __init__(
        self,
        features: int,
        elementwise: ElementwiseMap,
        context: int = 0,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        activation: str | Callable[[], nn.Module] = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int(features, "features")
        if not callable(elementwise) or not hasattr(elementwise, "params"):
            raise TypeError(f"elementwise: expected an elementwise map, got {elementwise!r}")
        self.features = features
        self.elementwise = elementwise
        self.made = MADE(
            features, elementwise.params, hidden, context, order, activation, zero_init
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, logd = self.elementwise(x, self.made(x, context), False)
        return z, sum_except_batch(logd)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(z)
        # the masked weights and the context's share of the first layer, formed once
        prepared = self.made.prepare(context)
        # After pass k the first k features in the order are exact, so D passes suffice; the
        # last pass's log-derivatives are those at the exact x.
        for _ in range(self.features):
            x, logd = self.elementwise(z, self.made(x, prepared=prepared), True)
        return x, sum_except_batch(logd)

    def extra_repr(self) -> str:
        return f"features={self.features}, elementwise={self.elementwise!r}"


def MaskedAffineAutoregressive(  # noqa: N802
    features: int, scale_bound: float = 3.0, **options: object
) -> MaskedAutoregressive:
    r"""The MAF layer: :math:`z_i = x_i e^{s_i(x_{<i}, c)} + t_i(x_{<i}, c)`.

    Example:
        >>> import torch, tractable as tr
        >>> tr.transforms.MaskedAffineAutoregressive(3)(torch.randn(4, 3))[1].shape
        torch.Size([4])
    """
    return MaskedAutoregressive(features, Affine(scale_bound), **options)


def MaskedSplineAutoregressive(  # noqa: N802
    features: int, bins: int = 8, bound: float = 5.0, **options: object
) -> MaskedAutoregressive:
    r"""The autoregressive rational-quadratic spline layer (Durkan et al. 2019, RQ-NSF (AR))."""
    return MaskedAutoregressive(features, RQSpline(bins, bound), **options)

r"""Coupling layers: one part of the input passes unchanged and parameterises an elementwise
bijection of the other part (Dinh et al. 2015, 2017; Durkan et al. 2019).

For a mask splitting :math:`x` into :math:`(x_a, x_b)`, :math:`z_a = x_a` and
:math:`z_b = g(x_b; \theta(x_a, c))`. The Jacobian is block-triangular, so

.. math:: \log|\det J| = \sum_{i \in b} \log g'(x_i; \theta(x_a, c)),

and both directions cost one network pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from ..nn import MLP
from .base import Transform, sum_except_batch
from .maps import Affine, ElementwiseMap, RQSpline, Shift


def coupling_mask(features: int, mask: Sequence[bool] | Tensor | str) -> Tensor:
    r"""A boolean mask of the features kept unchanged: ``"half"``, ``"half-flip"``, ``"even"``,
    ``"odd"``, or an explicit boolean sequence."""
    if isinstance(mask, str):
        idx = torch.arange(features)
        table = {
            "half": idx < features // 2,
            "half-flip": idx >= features // 2,
            "even": idx % 2 == 0,
            "odd": idx % 2 == 1,
        }
        if mask not in table:
            raise ValueError(
                f"mask: expected one of {sorted(table)} or a boolean mask, got {mask!r}"
            )
        m = table[mask]
    else:
        m = torch.as_tensor(mask, dtype=torch.bool)
    if m.shape != (features,):
        raise ValueError(f"mask: expected shape ({features},), got {tuple(m.shape)}")
    if bool(m.all()) or not bool(m.any()):
        raise ValueError("mask: expected both kept (True) and transformed (False) features")
    return m


def _refresh_halves(module: nn.Module, keys: object) -> None:
    # a module-level function (not a lambda), so that modules stay picklable
    module._find_halves()


class Coupling(Transform):
    r"""A coupling layer with any elementwise map (:class:`~tractable.transforms.maps.Shift`,
    :class:`~tractable.transforms.maps.Affine`, :class:`~tractable.transforms.maps.RQSpline`)
    whose parameters come from an MLP of the kept features and the context. The MLP's last layer
    is zero-initialised, so the layer starts as the identity.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.Coupling(4, tr.transforms.Affine(), context=2)
        >>> z, ladj = t(torch.randn(3, 4), torch.randn(3, 2))
        >>> z.shape, ladj.shape
        (torch.Size([3, 4]), torch.Size([3]))
    """

    def __init__(
        self,
        features: int,
        elementwise: ElementwiseMap,
        mask: Sequence[bool] | Tensor | str = "half",
        context: int = 0,
        hidden: Sequence[int] = (64, 64),
        activation: str | Callable[[], nn.Module] = "relu",
    ) -> None:
        super().__init__()
        check_positive_int(features, "features")
        if features < 2:
            raise ValueError(
                f"features: a coupling layer needs at least 2 features, got {features}"
            )
        if not callable(elementwise) or not hasattr(elementwise, "params"):
            raise TypeError(f"elementwise: expected an elementwise map, got {elementwise!r}")
        m = coupling_mask(features, mask)
        self.register_buffer("kept", torch.nonzero(m).flatten())
        self.register_buffer("changed", torch.nonzero(~m).flatten())
        self._find_halves()
        # the mask is loaded with the weights: derive the fast path from the loaded one
        self.register_load_state_dict_post_hook(_refresh_halves)
        self.elementwise = elementwise
        self.net = MLP(
            len(self.kept) + context,
            len(self.changed) * elementwise.params,
            hidden,
            activation,
            zero_init=True,
        )

    def _find_halves(self) -> None:
        # "half" masks: the two parts are contiguous slices, read without a copy. True when
        # the kept features come first, False when they come last, None otherwise.
        k, D = len(self.kept), len(self.kept) + len(self.changed)
        kept = self.kept.tolist()
        if kept == list(range(k)):
            self._kept_first: bool | None = True
        elif kept == list(range(D - k, D)):
            self._kept_first = False
        else:
            self._kept_first = None

    def _run(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        k, first = len(self.kept), self._kept_first
        if first is None:
            xa, xb = x[:, self.kept], x[:, self.changed]
        else:
            xa, xb = (x[:, :k], x[:, k:]) if first else (x[:, -k:], x[:, :-k])
        h = xa if context is None else torch.cat([xa, context], dim=1)
        # laid out as (params, features), like MADE's output: contiguous per parameter
        p = self.net(h).view(x.shape[0], self.elementwise.params, xb.shape[1]).transpose(1, 2)
        zb, logd = self.elementwise(xb, p, inverse)
        if first is None:
            z = x.clone()
            z[:, self.changed] = zb
        else:
            z = torch.cat([xa, zb] if first else [zb, xa], dim=1)
        return z, sum_except_batch(logd)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(z, context, inverse=True)

    def extra_repr(self) -> str:
        return f"elementwise={self.elementwise!r}"


def AdditiveCoupling(features: int, **options: object) -> Coupling:  # noqa: N802
    r"""Additive coupling (NICE, Dinh et al. 2015): :math:`z_b = x_b + t(x_a, c)`, volume-
    preserving.

    Example:
        >>> import torch, tractable as tr
        >>> tr.transforms.AdditiveCoupling(4)(torch.randn(3, 4))[1].tolist()
        [0.0, 0.0, 0.0]
    """
    return Coupling(features, Shift(), **options)


def AffineCoupling(features: int, scale_bound: float = 3.0, **options: object) -> Coupling:  # noqa: N802
    r"""Affine coupling (RealNVP, Dinh et al. 2017): :math:`z_b = x_b e^{s(x_a, c)} + t(x_a, c)`,
    with the log-scale softly bounded to :math:`(-B, B)`."""
    return Coupling(features, Affine(scale_bound), **options)


def SplineCoupling(  # noqa: N802
    features: int, bins: int = 8, bound: float = 5.0, **options: object
) -> Coupling:
    r"""Rational-quadratic spline coupling (Durkan et al. 2019, RQ-NSF (C))."""
    return Coupling(features, RQSpline(bins, bound), **options)

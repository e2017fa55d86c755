r"""Elementwise monotonic maps parameterised by a conditioner: the "transformer" half of coupling
and autoregressive layers. Each is a small callable with ``params`` (unconstrained parameters per
feature) and ``__call__(x, p, inverse) -> (y, log_derivative)``, both elementwise, ``p`` of shape
``(*x.shape, params)``. All-zero parameters give the identity map.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_positive_int
from .spline import rational_quadratic_spline, spline_params


def soft_clamp(raw: Tensor, bound: float) -> Tensor:
    r"""Smoothly bound a log-scale to :math:`(-B, B)`: :math:`B \tanh(r / B)`, the identity near
    zero. Keeps affine scales in :math:`(e^{-B}, e^{B})`, so no layer can blow up (the
    instability of a raw ``exp`` is discussed in nflows#49)."""
    return bound * torch.tanh(raw / bound)


class Shift:
    r"""Additive map :math:`y = x + t` (NICE, Dinh et al. 2015); log-derivative 0."""

    params = 1

    def __call__(self, x: Tensor, p: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        shift = p[..., 0]
        return (x - shift if inverse else x + shift), torch.zeros_like(x)

    def __repr__(self) -> str:
        return "Shift()"


class Affine:
    r"""Affine map :math:`y = x e^{s} + t` with :math:`s` softly bounded to
    :math:`(-B, B)` (RealNVP, Dinh et al. 2017; MAF, Papamakarios et al. 2017)."""

    params = 2

    def __init__(self, scale_bound: float = 3.0) -> None:
        if not isinstance(scale_bound, (int, float)) or not scale_bound > 0:
            raise ValueError(f"scale_bound: expected a float > 0, got {scale_bound!r}")
        self.scale_bound = float(scale_bound)

    def __call__(self, x: Tensor, p: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        shift, log_s = p[..., 0], soft_clamp(p[..., 1], self.scale_bound)
        if inverse:
            return (x - shift) * torch.exp(-log_s), -log_s
        return torch.addcmul(shift, x, torch.exp(log_s)), log_s

    def __repr__(self) -> str:
        return f"Affine(scale_bound={self.scale_bound})"


class RQSpline:
    r"""Monotonic rational-quadratic spline with ``bins`` bins on :math:`[-B, B]` and identity
    tails (Durkan et al. 2019); see :mod:`tractable.transforms.spline`."""

    def __init__(self, bins: int = 8, bound: float = 5.0) -> None:
        check_positive_int(bins, "bins")
        if not isinstance(bound, (int, float)) or not bound > 0:
            raise ValueError(f"bound: expected a float > 0, got {bound!r}")
        self.bins, self.bound = bins, float(bound)
        self.params = spline_params(bins)

    def __call__(self, x: Tensor, p: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        return rational_quadratic_spline(x, p, self.bound, inverse)

    def __repr__(self) -> str:
        return f"RQSpline(bins={self.bins}, bound={self.bound})"


ElementwiseMap = Shift | Affine | RQSpline

r"""Invertible transforms in the normalizing direction (data to noise).

Every transform returns its result together with the log-absolute-determinant of its Jacobian:
``z, ladj = t(x, context)`` and ``x, ladj_inv = t.inverse(z, context)``.
"""

from .autoregressive import (
    MaskedAffineAutoregressive,
    MaskedAutoregressive,
    MaskedSplineAutoregressive,
)
from .base import Compose, Inverse, Transform, sum_except_batch
from .coupling import AdditiveCoupling, AffineCoupling, Coupling, SplineCoupling
from .elementwise import ActNorm, Atanh, BatchNorm, ElementwiseAffine, Logit, Sigmoid, Tanh
from .image import (
    ImageCoupling,
    InvConv1x1,
    InvConv1x1LU,
    Pixelwise,
    Squeeze,
    checkerboard,
)
from .linear import LULinear, Permutation, Reverse
from .maps import Affine, RQSpline, Shift, soft_clamp
from .planar import Planar, Radial
from .spline import rational_quadratic_spline

__all__ = [
    "Transform",
    "Compose",
    "Inverse",
    "sum_except_batch",
    "ElementwiseAffine",
    "ActNorm",
    "BatchNorm",
    "Logit",
    "Sigmoid",
    "Atanh",
    "Tanh",
    "Reverse",
    "Permutation",
    "LULinear",
    "Coupling",
    "AdditiveCoupling",
    "AffineCoupling",
    "SplineCoupling",
    "MaskedAutoregressive",
    "MaskedAffineAutoregressive",
    "MaskedSplineAutoregressive",
    "Shift",
    "Affine",
    "RQSpline",
    "soft_clamp",
    "Planar",
    "Radial",
    "rational_quadratic_spline",
    "Squeeze",
    "InvConv1x1",
    "InvConv1x1LU",
    "Pixelwise",
    "ImageCoupling",
    "checkerboard",
]

"""The registry of transform cases that the generic property tests run on.

Every concrete :class:`tractable.transforms.Transform` subclass, and every elementwise map used
by coupling/autoregressive layers, must appear here: ``test_registry_is_complete`` fails
otherwise. A case builds a transform with random (non-identity) parameters and draws inputs
from its domain, including points near the domain's edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import tractable as tr
from tractable import transforms as T


@dataclass
class Case:
    name: str
    build: Callable[[], T.Transform]
    features: int
    context: int = 0
    domain: str = "real"  # "real", "unit" (0, 1), "symmetric" (-1, 1)
    covers: tuple[type, ...] = ()
    maps: tuple[type, ...] = field(default_factory=tuple)

    def inputs(self, n: int = 16) -> Tensor:
        """Random points of the domain plus points near its edges, (n + extra, D)."""
        D = self.features
        if self.domain == "real":
            x = 1.5 * torch.randn(n, D)
            edge = torch.tensor([[7.5] * D, [-7.5] * D, [4.999] * D, [-5.001] * D])
        elif self.domain == "unit":
            x = torch.rand(n, D) * 0.98 + 0.01
            edge = torch.tensor([[1e-6] * D, [1 - 1e-6] * D])
        elif self.domain == "symmetric":
            x = (torch.rand(n, D) * 2 - 1) * 0.98
            edge = torch.tensor([[-1 + 1e-6] * D, [1 - 1e-6] * D])
        else:
            raise ValueError(self.domain)
        return torch.cat([x, edge.to(x.dtype)])

    def contexts(self, n: int) -> Tensor | None:
        return torch.randn(n, self.context) if self.context else None


def randomize(module: torch.nn.Module, scale: float = 0.3) -> None:
    """Move every parameter off its (often identity) initialisation, deterministically."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _randomized(
    factory: Callable[[], T.Transform], scale: float = 0.3
) -> Callable[[], T.Transform]:
    def build() -> T.Transform:
        t = factory()
        randomize(t, scale)
        return t

    return build


def _actnorm() -> T.Transform:
    t = T.ActNorm(3)
    t(2.0 + 3.0 * torch.randn(64, 3))  # data-dependent initialisation
    randomize(t, 0.1)
    return t


def _batchnorm() -> T.Transform:
    t = T.BatchNorm(3)
    with torch.no_grad():
        t.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        t.running_var.copy_(torch.tensor([0.3, 2.0, 1.5]))
    randomize(t)
    return t.eval()


CASES: list[Case] = [
    Case(
        "elementwise_affine",
        _randomized(lambda: T.ElementwiseAffine(3)),
        3,
        covers=(T.ElementwiseAffine,),
    ),
    Case("actnorm", _actnorm, 3, covers=(T.ActNorm,)),
    Case("batchnorm", _batchnorm, 3, covers=(T.BatchNorm,)),
    Case("logit", T.Logit, 3, domain="unit", covers=(T.Logit,)),
    Case("sigmoid", T.Sigmoid, 3, covers=(T.Inverse,)),
    Case("atanh", T.Atanh, 3, domain="symmetric", covers=(T.Atanh,)),
    Case("tanh", T.Tanh, 3, covers=(T.Inverse,)),
    Case("reverse", T.Reverse, 4, covers=(T.Reverse,)),
    Case("permutation", lambda: T.Permutation(4, seed=3), 4, covers=(T.Permutation,)),
    Case("lu_linear", _randomized(lambda: T.LULinear(4)), 4, covers=(T.LULinear,)),
    Case(
        "additive_coupling",
        _randomized(lambda: T.AdditiveCoupling(4, hidden=(8,))),
        4,
        covers=(T.Coupling,),
        maps=(T.Shift,),
    ),
    Case(
        "affine_coupling",
        _randomized(lambda: T.AffineCoupling(4, hidden=(8, 8))),
        4,
        covers=(T.Coupling,),
        maps=(T.Affine,),
    ),
    Case(
        "affine_coupling_ctx",
        _randomized(lambda: T.AffineCoupling(3, mask="odd", context=2, hidden=(8,))),
        3,
        context=2,
        covers=(T.Coupling,),
    ),
    Case(
        "spline_coupling",
        _randomized(lambda: T.SplineCoupling(4, bins=5, hidden=(8,)), 1.0),
        4,
        covers=(T.Coupling,),
        maps=(T.RQSpline,),
    ),
    Case(
        "spline_coupling_ctx",
        _randomized(lambda: T.SplineCoupling(3, bins=4, context=2, hidden=(8,)), 1.0),
        3,
        context=2,
        covers=(T.Coupling,),
    ),
    Case(
        "maf_layer",
        _randomized(lambda: T.MaskedAffineAutoregressive(3, hidden=(8, 8))),
        3,
        covers=(T.MaskedAutoregressive,),
        maps=(T.Affine,),
    ),
    Case(
        "maf_layer_ctx",
        _randomized(
            lambda: T.MaskedAffineAutoregressive(
                3, context=2, hidden=(8,), order=torch.tensor([2, 0, 1])
            )
        ),
        3,
        context=2,
        covers=(T.MaskedAutoregressive,),
    ),
    Case(
        "iaf_layer",
        _randomized(lambda: T.Inverse(T.MaskedAffineAutoregressive(3, hidden=(8,)))),
        3,
        covers=(T.Inverse, T.MaskedAutoregressive),
    ),
    Case(
        "spline_autoregressive",
        _randomized(lambda: T.MaskedSplineAutoregressive(3, bins=4, hidden=(8,)), 1.0),
        3,
        covers=(T.MaskedAutoregressive,),
        maps=(T.RQSpline,),
    ),
    Case(
        "spline_autoregressive_ctx",
        _randomized(lambda: T.MaskedSplineAutoregressive(2, bins=4, context=1, hidden=(8,)), 1.0),
        2,
        context=1,
        covers=(T.MaskedAutoregressive,),
    ),
    Case("planar", _randomized(lambda: T.Planar(3), 1.0), 3, covers=(T.Planar,)),
    Case(
        "planar_ctx",
        _randomized(lambda: T.Planar(2, context=2), 1.0),
        2,
        context=2,
        covers=(T.Planar,),
    ),
    Case("radial", _randomized(lambda: T.Radial(3), 1.0), 3, covers=(T.Radial,)),
    Case(
        "radial_ctx",
        _randomized(lambda: T.Radial(2, context=2), 1.0),
        2,
        context=2,
        covers=(T.Radial,),
    ),
    Case(
        "compose",
        _randomized(
            lambda: T.Compose(
                T.LULinear(3),
                T.AffineCoupling(3, hidden=(8,)),
                T.Reverse(),
                T.MaskedAffineAutoregressive(3, hidden=(8,)),
            )
        ),
        3,
        covers=(T.Compose,),
    ),
]

# Transform subclasses that are abstract and never instantiated on their own.
ABSTRACT: set[type] = {T.Transform}

_ = tr  # the package import registers every module's classes

"""The registry of transform cases that the generic property tests run on.

Every concrete :class:`tractable.transforms.Transform` subclass, and every elementwise map used
by coupling/autoregressive layers, must appear here: ``test_registry_is_complete`` fails
otherwise. A case builds a transform with random (non-identity) parameters and draws inputs
from its domain, including points near the domain's edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import tractable as tr
from tractable import continuous as C
from tractable import transforms as T
from tractable.flows.multiscale import Multiscale
from tractable.transforms import image as I


@dataclass
class Case:
    name: str
    build: Callable[[], T.Transform]
    features: int
    context: int = 0
    domain: str = "real"  # "real", "unit" (0, 1), "symmetric" (-1, 1)
    covers: tuple[type, ...] = ()
    maps: tuple[type, ...] = field(default_factory=tuple)
    shape: tuple[int, ...] = ()  # the event shape; (features,) unless given
    context_shape: tuple[int, ...] = ()  # the shape of one context row; (context,) unless given
    out_shape: tuple[int, ...] = ()  # the event shape of the output z; shape unless given

    def __post_init__(self) -> None:
        if not self.shape:
            self.shape = (self.features,)
        if not self.out_shape:
            self.out_shape = self.shape
        if math.prod(self.out_shape) != self.features:
            raise ValueError(
                f"{self.name}: out_shape {self.out_shape} does not have {self.features} entries"
            )
        if math.prod(self.shape) != self.features:
            raise ValueError(
                f"{self.name}: shape {self.shape} does not have {self.features} entries"
            )
        if not self.context_shape and self.context:
            self.context_shape = (self.context,)

    def inputs(self, n: int = 16) -> Tensor:
        """Random points of the domain plus points near its edges, (n + extra, *shape)."""
        S = self.shape

        def edge(*values: float) -> Tensor:
            return torch.stack([torch.full(S, v) for v in values])

        if self.domain == "real":
            x = 1.5 * torch.randn(n, *S)
            extra = edge(7.5, -7.5, 4.999, -5.001)
        elif self.domain == "unit":
            x = torch.rand(n, *S) * 0.98 + 0.01
            extra = edge(1e-6, 1 - 1e-6)
        elif self.domain == "symmetric":
            x = (torch.rand(n, *S) * 2 - 1) * 0.98
            extra = edge(-1 + 1e-6, 1 - 1e-6)
        else:
            raise ValueError(self.domain)
        return torch.cat([x, extra.to(x.dtype)])

    def contexts(self, n: int) -> Tensor | None:
        return torch.randn(n, *self.context_shape) if self.context else None


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


def _actnorm_image() -> T.Transform:
    t = T.ActNorm(2)
    t(2.0 + 3.0 * torch.randn(16, 2, 3, 3))  # per-channel data-dependent initialisation
    randomize(t, 0.1)
    return t


# Image transforms: events (C, H, W), event_dims = 3.
CASES += [
    Case(
        "squeeze",
        I.Squeeze,
        32,
        shape=(2, 4, 4),
        out_shape=(8, 2, 2),
        covers=(I.Squeeze,),
    ),
    Case(
        "inv_conv1x1",
        _randomized(lambda: I.InvConv1x1(3)),
        12,
        shape=(3, 2, 2),
        covers=(I.InvConv1x1,),
    ),
    Case(
        "inv_conv1x1_lu",
        _randomized(lambda: I.InvConv1x1LU(3)),
        12,
        shape=(3, 2, 2),
        covers=(I.Pixelwise, T.LULinear),
    ),
    Case(
        "pixelwise_maf_ctx",
        _randomized(lambda: I.Pixelwise(T.MaskedAffineAutoregressive(3, context=2, hidden=(8,)))),
        12,
        context=2,
        shape=(3, 2, 2),
        covers=(I.Pixelwise,),
    ),
    Case(
        "image_coupling_checkerboard",
        _randomized(lambda: I.ImageCoupling(2, T.Affine(), "checkerboard", hidden=8)),
        32,
        shape=(2, 4, 4),
        covers=(I.ImageCoupling,),
        maps=(T.Affine,),
    ),
    Case(
        "image_coupling_checkerboard_flip_additive",
        _randomized(lambda: I.ImageCoupling(1, T.Shift(), "checkerboard-flip", hidden=4)),
        9,
        shape=(1, 3, 3),
        covers=(I.ImageCoupling,),
        maps=(T.Shift,),
    ),
    Case(
        "image_coupling_channel_ctx",
        _randomized(lambda: I.ImageCoupling(3, T.Affine(), "channel", context=2, hidden=8)),
        12,
        context=2,
        shape=(3, 2, 2),
        covers=(I.ImageCoupling,),
    ),
    Case(
        "image_coupling_channel_flip_spline",
        _randomized(
            lambda: I.ImageCoupling(3, T.RQSpline(4), "channel-flip", hidden=4, blocks=2), 1.0
        ),
        12,
        shape=(3, 2, 2),
        covers=(I.ImageCoupling,),
        maps=(T.RQSpline,),
    ),
    Case(
        "image_coupling_spatial_ctx",
        _randomized(lambda: I.ImageCoupling(2, T.Affine(), "checkerboard", context=1, hidden=8)),
        18,
        context=1,
        context_shape=(1, 3, 3),
        shape=(2, 3, 3),
        covers=(I.ImageCoupling,),
    ),
    Case("actnorm_image", _actnorm_image, 18, shape=(2, 3, 3), covers=(T.ActNorm,)),
    Case(
        "glow_step_ctx",
        _randomized(
            lambda: T.Compose(
                T.ActNorm(4),
                I.InvConv1x1LU(4),
                I.ImageCoupling(4, T.Affine(), "channel", context=2, hidden=8),
            )
        ),
        16,
        context=2,
        shape=(4, 2, 2),
        covers=(T.Compose, I.Pixelwise, I.ImageCoupling),
    ),
    Case(
        "multiscale_stage",
        _randomized(
            lambda: T.Compose(
                I.ImageCoupling(1, T.Affine(), "checkerboard", hidden=4),
                I.Squeeze(),
                I.InvConv1x1(4),
                I.ImageCoupling(4, T.Affine(), "channel-flip", hidden=4),
            )
        ),
        16,
        shape=(1, 4, 4),
        out_shape=(4, 2, 2),
        covers=(T.Compose, I.Squeeze, I.InvConv1x1),
    ),
]


def _cnf() -> T.Transform:
    # direct backpropagation keeps the autograd-Jacobian checks cheap; the adjoint has its own
    # tests in tests/continuous. Tight solver tolerances: the checks are at atol 1e-6.
    field = tr.nn.ODEMLP(2, context=1, hidden=(4,), activation="tanh")
    cnf = C.CNF(field, learn_T=True, T=0.8, solver="dopri5", atol=1e-9, rtol=1e-9, adjoint=False)
    randomize(cnf, 0.3)
    return cnf.eval()


CASES.append(Case("cnf", _cnf, 2, context=1, covers=(C.CNF,)))


def _multiscale() -> T.Transform:
    # two squeezing stages with factor-out: (1, 4, 4) -> (2, 2, 2) + (8, 1, 1) latents
    stages = [
        T.Compose(I.Squeeze(), I.ImageCoupling(4, T.Affine(), "channel", context=1, hidden=4)),
        T.Compose(I.Squeeze(), I.ImageCoupling(8, T.Affine(), "channel", context=1, hidden=4)),
    ]
    t = Multiscale((1, 4, 4), stages, context=1)
    randomize(t, 0.3)
    return t


CASES.append(
    Case(
        "multiscale",
        _multiscale,
        16,
        context=1,
        shape=(1, 4, 4),
        out_shape=(16,),
        covers=(Multiscale,),
    )
)

# Transform subclasses that are abstract and never instantiated on their own.
ABSTRACT: set[type] = {T.Transform}

_ = tr  # the package import registers every module's classes

r"""The same flow architectures built with tractable and with each peer library.

Every model is wrapped in a :class:`Bench` that exposes the three operations the benchmark
times, with one calling convention: ``log_prob(x) -> (N,)``, ``loss(x) -> ()`` (mean negative
log-likelihood) and ``sample(n) -> (n, D)``.

Families (all with ``transforms`` layers of a ``hidden`` ReLU conditioner, identity tails at
:math:`\pm 5` for splines):

* ``maf``: masked affine autoregressive layers with the feature order reversed between layers
  (Papamakarios et al. 2017);
* ``realnvp``: affine couplings on alternating halves (Dinh et al. 2017);
* ``nsf-c``: rational-quadratic spline couplings with 8 bins, an LU-linear layer before each
  (Durkan et al. 2019, RQ-NSF (C));
* ``nsf-ar``: autoregressive rational-quadratic splines with 8 bins (RQ-NSF (AR)).

Peer libraries are configured to match: no residual blocks, no batch norm, no unconditional
splines on the kept features. normflows' layers are built in its sampling direction, so its
autoregressive layers are wrapped in ``normflows.flows.Reverse``: density in one pass, as in MAF
(as shipped, a normflows ``MaskedAffineAutoregressive`` needs :math:`D` passes for a density).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

FAMILIES = ("maf", "realnvp", "nsf-c", "nsf-ar")
LIBRARIES = ("tractable", "zuko", "nflows", "normflows")
AUTOREGRESSIVE = ("maf", "nsf-ar")
PEERS = ("zuko", "nflows", "normflows")
# tractable with input validation switched off (tr.set_validation(False)); not a peer
UNVALIDATED = "tractable-noval"


@dataclass
class Config:
    r"""The shared architecture: ``transforms`` layers, conditioner ``hidden`` widths, spline
    ``bins`` and tail ``bound``."""

    transforms: int = 5
    hidden: tuple[int, ...] = (128, 128)
    bins: int = 8
    bound: float = 5.0


@dataclass
class Bench:
    r"""One model of one library, behind the benchmark's calling convention."""

    library: str
    family: str
    features: int
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]

    def loss(self, x: Tensor) -> Tensor:
        return -self.log_prob(x).mean()

    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def version(library: str) -> str:
    r"""The installed version of ``library`` (``"missing"`` when it is not installed)."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


class _Conditioner(nn.Module):
    r"""A plain ReLU MLP called as ``net(x, context=None)``, the signature nflows' couplings
    use; the last layer starts at zero so each coupling starts at (or near) the identity."""

    def __init__(self, inputs: int, outputs: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        sizes = (inputs, *hidden, outputs)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def _halves(D: int, i: int) -> Tensor:
    r"""Features kept unchanged by coupling ``i``: the first half, then the second, in turn
    (the masks of tractable's ``"half"`` and ``"half-flip"``)."""
    first = torch.arange(D) < D // 2
    return first if i % 2 == 0 else ~first


def _tractable(family: str, D: int, cfg: Config) -> Bench:
    import tractable as tr

    common = {"transforms": cfg.transforms, "hidden": cfg.hidden}
    spline = {"bins": cfg.bins, "bound": cfg.bound}
    if family == "maf":
        flow = tr.flows.MAF(D, **common)
    elif family == "realnvp":
        flow = tr.flows.RealNVP(D, **common)
    elif family == "nsf-c":
        flow = tr.flows.NSF(D, variant="coupling", **common, **spline)
    else:
        flow = tr.flows.NSF(D, variant="autoregressive", **common, **spline)
    return Bench("tractable", family, D, flow, flow.log_prob, flow.sample)


def _zuko(family: str, D: int, cfg: Config) -> Bench:
    import zuko

    hidden = {"hidden_features": cfg.hidden}
    if family == "maf":
        flow = zuko.flows.MAF(D, transforms=cfg.transforms, **hidden)
    elif family == "realnvp":
        flow = zuko.flows.RealNVP(D, transforms=cfg.transforms, **hidden)
    elif family == "nsf-ar":
        flow = zuko.flows.NSF(D, transforms=cfg.transforms, bins=cfg.bins, **hidden)
    else:
        from functools import partial

        from zuko.flows.coupling import GeneralCouplingTransform
        from zuko.lazy import Flow, UnconditionalDistribution, UnconditionalTransform
        from zuko.transforms import LULinearTransform, MonotonicRQSTransform

        K = cfg.bins
        layers = []
        for i in range(cfg.transforms):
            layers.append(UnconditionalTransform(LULinearTransform, torch.eye(D)))
            layers.append(
                GeneralCouplingTransform(
                    D,
                    mask=_halves(D, i),
                    univariate=partial(MonotonicRQSTransform, bound=cfg.bound),
                    shapes=[(K,), (K,), (K - 1,)],
                    **hidden,
                )
            )
        base = UnconditionalDistribution(
            zuko.distributions.DiagNormal, torch.zeros(D), torch.ones(D), buffer=True
        )
        flow = Flow(layers, base)
    return Bench(
        "zuko",
        family,
        D,
        flow,
        lambda x: flow().log_prob(x),
        lambda n: flow().sample((n,)),
    )


def _nflows(family: str, D: int, cfg: Config) -> Bench:
    from nflows import transforms as T
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow

    width, blocks = cfg.hidden[0], len(cfg.hidden) - 1
    made = {"num_blocks": blocks, "use_residual_blocks": False}
    spline = {"num_bins": cfg.bins, "tails": "linear", "tail_bound": cfg.bound}

    def net(i: int, o: int) -> nn.Module:
        return _Conditioner(i, o, cfg.hidden)

    layers: list[nn.Module] = []
    for i in range(cfg.transforms):
        transformed = (~_halves(D, i)).int()
        if family == "maf":
            if i:
                layers.append(T.ReversePermutation(D))
            layers.append(T.MaskedAffineAutoregressiveTransform(D, width, **made))
        elif family == "nsf-ar":
            if i:
                layers.append(T.ReversePermutation(D))
            layers.append(
                T.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                    D, width, **made, **spline
                )
            )
        elif family == "realnvp":
            layers.append(T.AffineCouplingTransform(transformed, net))
        else:
            layers.append(T.LULinear(D, identity_init=True))
            layers.append(T.PiecewiseRationalQuadraticCouplingTransform(transformed, net, **spline))
    flow = Flow(T.CompositeTransform(layers), StandardNormal([D]))
    return Bench("nflows", family, D, flow, flow.log_prob, flow.sample)


def _normflows(family: str, D: int, cfg: Config) -> Bench:
    import normflows as nf
    from normflows.flows.neural_spline.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressive,
    )
    from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling

    class Flip(nf.flows.Flow):
        def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            return z.flip(1), z.new_zeros(z.shape[0])

        def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            return z.flip(1), z.new_zeros(z.shape[0])

    width, blocks = cfg.hidden[0], len(cfg.hidden) - 1
    made = {"num_blocks": blocks, "use_residual_blocks": False}
    spline = {"num_bins": cfg.bins, "tails": "linear", "tail_bound": cfg.bound}

    def net(i: int, o: int) -> nn.Module:
        return _Conditioner(i, o, cfg.hidden)

    # built in the normalizing order (data to noise), then reversed into normflows' order
    layers: list[nn.Module] = []
    for i in range(cfg.transforms):
        if family == "maf":
            if i:
                layers.append(Flip())
            layers.append(nf.flows.Reverse(nf.flows.MaskedAffineAutoregressive(D, width, **made)))
        elif family == "nsf-ar":
            if i:
                layers.append(Flip())
            layer = MaskedPiecewiseRationalQuadraticAutoregressive(D, width, **made, **spline)
            layers.append(nf.flows.Reverse(layer))
        elif family == "realnvp":
            if i:
                layers.append(nf.flows.Permute(D, mode="swap"))
            mlp = nf.nets.MLP([D // 2, *cfg.hidden, 2 * (D - D // 2)], init_zeros=True)
            layers.append(nf.flows.Reverse(nf.flows.AffineCouplingBlock(mlp, scale_map="exp")))
        else:
            transformed = (~_halves(D, i)).int()
            layers.append(nf.flows.Reverse(nf.flows.LULinearPermute(D, identity_init=True)))
            coupling = PiecewiseRationalQuadraticCoupling(transformed, net, **spline)
            layers.append(nf.flows.Reverse(coupling))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False), layers[::-1])
    return Bench("normflows", family, D, model, model.log_prob, lambda n: model.sample(n)[0])


def _tractable_unvalidated(family: str, D: int, cfg: Config) -> Bench:
    import tractable as tr

    bench = _tractable(family, D, cfg)
    log_prob, sample = bench.log_prob, bench.sample

    def unvalidated_log_prob(x: Tensor) -> Tensor:
        with tr.validation(False):
            return log_prob(x)

    def unvalidated_sample(n: int) -> Tensor:
        with tr.validation(False):
            return sample(n)

    bench.library = UNVALIDATED
    bench.log_prob, bench.sample = unvalidated_log_prob, unvalidated_sample
    return bench


_BUILDERS = {
    "tractable": _tractable,
    "zuko": _zuko,
    "nflows": _nflows,
    "normflows": _normflows,
    UNVALIDATED: _tractable_unvalidated,
}


def build(library: str, family: str, D: int, cfg: Config | None = None, seed: int = 0) -> Bench:
    r"""Build ``family`` at ``D`` features with ``library``, parameters drawn with ``seed``."""
    if library not in _BUILDERS:
        raise ValueError(f"library: expected one of {sorted(_BUILDERS)}, got {library!r}")
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    torch.manual_seed(seed)
    return _BUILDERS[library](family, D, cfg or Config())

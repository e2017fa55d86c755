r"""One-call GAN builders, with the training settings of each objective's paper by default,
and the run defaults that say what a GAN needs from the data.

=================  =======  ========  =====  ===========  ============================
loss               n_critic lr_d      lr_g   Adam betas   from
=================  =======  ========  =====  ===========  ============================
``minimax``        1        2e-4      2e-4   (0.5, 0.999) DCGAN (Radford et al. 2016)
``nonsaturating``  1        2e-4      2e-4   (0.5, 0.999) DCGAN
``wgan``           5        5e-5      5e-5   (0.5, 0.999) Arjovsky et al. 2017 (c = 0.01)
``wgan-gp``        5        1e-4      1e-4   (0.0, 0.9)   Gulrajani et al. 2017 (λ = 10)
``hinge``          1        4e-4      1e-4   (0.0, 0.9)   TTUR as in Zhang et al. 2019
=================  =======  ========  =====  ===========  ============================

The hinge loss comes with spectral normalisation of the discriminator by default (Miyato et
al. 2018). The WGAN paper used RMSProp; here every objective uses the trainer's Adam, with
the betas above.

Example:
    >>> gan = build_gan((2,), loss="wgan-gp", hidden=(16,))
    >>> gan.n_critic, gan.betas
    (5, (0.0, 0.9))
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..nn.adversarial import OUTPUTS, discriminator, generator
from ..nn.growing import GrowingDiscriminator, GrowingGenerator
from .losses import LOSSES
from .model import GAN

PAPER = {
    "minimax": {"n_critic": 1, "lr_d": 2e-4, "lr_g": 2e-4, "betas": (0.5, 0.999)},
    "nonsaturating": {"n_critic": 1, "lr_d": 2e-4, "lr_g": 2e-4, "betas": (0.5, 0.999)},
    "wgan": {"n_critic": 5, "lr_d": 5e-5, "lr_g": 5e-5, "betas": (0.5, 0.999)},
    "wgan-gp": {"n_critic": 5, "lr_d": 1e-4, "lr_g": 1e-4, "betas": (0.0, 0.9)},
    "hinge": {"n_critic": 1, "lr_d": 4e-4, "lr_g": 1e-4, "betas": (0.0, 0.9)},
}


def spectral_normalize(module: nn.Module) -> nn.Module:
    r"""Spectral normalisation :math:`W / \sigma(W)` of every linear and convolutional layer
    of ``module`` (in place; ``torch``'s parametrization with one power iteration per
    forward pass in training, Miyato et al. 2018)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            setattr(module, name, _spectral_norm(child))
        else:
            spectral_normalize(child)
    return module


def build_gan(
    shape: int | Sequence[int],
    loss: str = "nonsaturating",
    noise: int | None = None,
    hidden: Sequence[int] = (128, 128),
    width: int = 64,
    context: int = 0,
    n_critic: int | None = None,
    simultaneous: bool = False,
    spectral_norm: bool | None = None,
    gp: float = 10.0,
    r1: float = 0.0,
    clip: float = 0.01,
    lr_d: float | None = None,
    lr_g: float | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
    ema: float = 0.999,
    output: str = "linear",
    curriculum: Sequence[int] | None = None,
    fade: int = 500,
) -> GAN:
    r"""Build a :class:`GAN` for events of ``shape``: MLPs of ``hidden`` units for ``(D,)``,
    DCGAN networks of base ``width`` channels for ``(C, H, W)``.

    Args:
        loss: one of ``minimax``, ``nonsaturating``, ``wgan``, ``wgan-gp``, ``hinge``.
        noise: the dimension of :math:`z` (default: ``D`` for vectors, 64 for images).
        n_critic, lr_d, lr_g, beta1, beta2: ``None`` takes the loss's paper setting (see the
            module docstring).
        spectral_norm: spectral normalisation of the discriminator (default: with ``hinge``).
        output: the generator's last activation, ``linear``, ``sigmoid`` or ``tanh``.
        curriculum, fade: progressive growing for images (Karras et al. 2018): the steps at
            which each larger resolution starts to fade in over ``fade`` steps (28 x 28: two
            steps, from 7 x 7 to 14 x 14 and to 28 x 28), e.g. ``-o curriculum=[1000,2000]``.
            The growing networks are the plain DCGAN networks plus 1x1 heads for the lower
            resolutions (:mod:`tractable.nn.growing`): the same layers, parameters and FLOPs
            at full resolution.

    Other arguments as for :class:`GAN`.
    """
    event = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else tuple(shape)
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
    paper = PAPER[loss]
    noise = noise if noise is not None else (event[0] if len(event) == 1 else 64)
    if curriculum is not None:
        if len(event) != 3:
            raise ValueError(f"curriculum: progressive growing is for images, got shape {event}")
        g = GrowingGenerator(event, noise, width, context, output)
        d = GrowingDiscriminator(event, width, context)
    else:
        g = generator(event, noise, hidden, width, context, output)
        d = discriminator(event, hidden, width, context)
    if spectral_norm if spectral_norm is not None else loss == "hinge":
        spectral_normalize(d)
    betas = (
        paper["betas"][0] if beta1 is None else float(beta1),
        paper["betas"][1] if beta2 is None else float(beta2),
    )
    for name, value in (("beta1", betas[0]), ("beta2", betas[1])):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    return GAN(
        g,
        d,
        event,
        noise,
        context=context,
        loss=loss,
        n_critic=paper["n_critic"] if n_critic is None else n_critic,
        simultaneous=simultaneous,
        gp=gp,
        r1=r1,
        clip=clip,
        lr_d=paper["lr_d"] if lr_d is None else lr_d,
        lr_g=paper["lr_g"] if lr_g is None else lr_g,
        betas=betas,
        ema=ema,
        curriculum=curriculum,
        fade=fade,
    )


#: both players' learning rate on continuous data (see :func:`run_defaults`)
CONTINUOUS_LR = 1e-3


def run_defaults(
    kind: str, levels: int | None, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""``(model options, preprocessing overrides)`` for a GAN on data of ``kind``: the
    generator ends in a sigmoid for images (dequantized or binary values in :math:`[0, 1]`)
    and is linear for continuous data; no preprocessing beyond the data's own.

    On continuous data (the toys and tabular sets) the minimax, non-saturating and hinge
    losses train both players at ``lr_d = lr_g = CONTINUOUS_LR`` (1e-3) where the user gave no
    rate, instead of the papers' image rates (1e-4 to 4e-4), at which the generator tightens
    each mode of a 2-D mixture slowly. On 8gaussians at the command line's 2,000 steps, the
    share of high-quality samples (within 3 standard deviations of a centre): non-saturating
    0.479 / 0.865 / 0.931 -> 0.969 / 0.976 / 0.984 (seeds 0 / 1 / 2), hinge 0.702 -> 0.979,
    minimax 0.720 -> 0.944 (seed 0), all eight modes kept; the longer runs of
    ``benchmarks/gan_toys.py`` use the same rate (``BENCHMARKS.md``). The Wasserstein losses
    keep their papers' rates, tuned with their five critic steps.

    Example:
        >>> run_defaults("discrete", 256, {})
        ({'output': 'sigmoid'}, {})
        >>> run_defaults("continuous", None, {"lr_g": 2e-4})
        ({'lr_g': 0.0002, 'output': 'linear', 'lr_d': 0.001}, {})
    """
    out = dict(options)
    out.setdefault("output", "linear" if kind == "continuous" else "sigmoid")
    loss = out.get("loss", inspect.signature(build_gan).parameters["loss"].default)
    if kind == "continuous" and loss in ("minimax", "nonsaturating", "hinge"):
        out.setdefault("lr_d", CONTINUOUS_LR)
        out.setdefault("lr_g", CONTINUOUS_LR)
    return out, {}


__all__ = ["CONTINUOUS_LR", "PAPER", "build_gan", "run_defaults", "spectral_normalize"]

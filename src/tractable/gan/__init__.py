r"""Generative adversarial networks: the family with no likelihood, compared by its samples.

:func:`build_gan` builds a :class:`GAN` (MLP or DCGAN networks, conditional or not) for the
objectives of :mod:`tractable.gan.losses` with their papers' training settings; it trains
through the common trainer with two optimisers (:mod:`tractable.train.updates`).
"""

from .builders import PAPER, build_gan, run_defaults, spectral_normalize
from .losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from .model import GAN

__all__ = [
    "GAN",
    "LOSSES",
    "PAPER",
    "build_gan",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "run_defaults",
    "spectral_normalize",
]

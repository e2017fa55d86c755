r"""Variational autoencoders: encoders :math:`q(z \mid x)`, decoders :math:`p(x \mid z)`, priors
:math:`p(z)`, the :class:`VAE` model (ELBO and IWAE objectives, KL warm-up) and
:func:`build_vae`.

Every part behaves as a distribution: encoders have ``log_prob(z, x)``, ``sample(x, k)`` and
``rsample_and_log_prob(x, k)``; decoders ``log_prob(x, z)``, ``sample(z)``, ``mean(z)``;
priors ``log_prob(z)`` and ``sample(n)``. Their networks live in :mod:`tractable.nn.autoencoder`.
Posterior collapse shows in :func:`kl_per_dimension` and :func:`active_units`.
"""

from .builders import DECODERS, POSTERIORS, PRIORS, build_decoder, build_vae, run_defaults
from .decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    Decoder,
    GaussianDecoder,
    check_grid,
    grid_index,
)
from .diagnostics import active_units, kl_per_dimension, latent_diagnostics
from .encoders import FlowEncoder, GaussianEncoder
from .gaussian import kl_normal_normal, kl_normal_standard, log_normal_diag
from .logistic import (
    DiscretizedLogisticDecoder,
    DiscretizedLogisticMixtureDecoder,
    discretized_logistic_log_prob,
    discretized_logistic_mean,
)
from .model import VAE
from .priors import VampPrior

__all__ = [
    "VAE",
    "build_vae",
    "build_decoder",
    "run_defaults",
    "PRIORS",
    "DECODERS",
    "POSTERIORS",
    "GaussianEncoder",
    "FlowEncoder",
    "Decoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "CategoricalDecoder",
    "DiscretizedLogisticDecoder",
    "DiscretizedLogisticMixtureDecoder",
    "VampPrior",
    "discretized_logistic_log_prob",
    "discretized_logistic_mean",
    "check_grid",
    "grid_index",
    "kl_normal_standard",
    "kl_normal_normal",
    "log_normal_diag",
    "kl_per_dimension",
    "active_units",
    "latent_diagnostics",
]

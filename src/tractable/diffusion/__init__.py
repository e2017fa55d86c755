r"""Diffusion models: DDPM (Ho et al. 2020) with linear and cosine schedules, L_simple training,
the variational bound (nats, bits/dim, discretized decoder), an IWAE bound, ancestral and DDIM
sampling, and the exact log-likelihood of the probability-flow ODE (Song et al. 2021) through
:mod:`tractable.continuous`.
"""

from .builders import build_ddpm, run_defaults
from .model import DDPM, DECODERS, SAMPLERS, VARIANCES, discretized_gaussian_log_prob
from .schedules import SCHEDULES, beta, discrete, log_alpha_bar

__all__ = [
    "DDPM",
    "DECODERS",
    "SAMPLERS",
    "SCHEDULES",
    "VARIANCES",
    "beta",
    "build_ddpm",
    "discrete",
    "discretized_gaussian_log_prob",
    "log_alpha_bar",
    "run_defaults",
]

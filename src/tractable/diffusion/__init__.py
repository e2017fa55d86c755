r"""Diffusion models: DDPM (Ho et al. 2020) with linear and cosine schedules, L_simple training,
the variational bound (nats, bits/dim, discretized decoder), an IWAE bound, ancestral and DDIM
sampling, learned variances with the hybrid objective (Nichol and Dhariwal 2021), and the exact
log-likelihood of the probability-flow ODE (Song et al. 2021) through :mod:`tractable.continuous`.
"""

from .builders import build_ddpm, run_defaults, with_variance_output
from .model import (
    DDPM,
    DECODERS,
    OBJECTIVES,
    SAMPLERS,
    STEP_SAMPLING,
    VARIANCES,
    discretized_gaussian_log_prob,
)
from .schedules import SCHEDULES, beta, discrete, log_alpha_bar
from .variance import StepSampler, gaussian_kl, interpolated_variance, split_output

__all__ = [
    "DDPM",
    "DECODERS",
    "OBJECTIVES",
    "SAMPLERS",
    "SCHEDULES",
    "STEP_SAMPLING",
    "VARIANCES",
    "StepSampler",
    "beta",
    "build_ddpm",
    "discrete",
    "discretized_gaussian_log_prob",
    "gaussian_kl",
    "interpolated_variance",
    "log_alpha_bar",
    "run_defaults",
    "split_output",
    "with_variance_output",
]

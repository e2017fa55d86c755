r"""Base distributions: standard and diagonal normal, mixtures of Gaussians, uniform, logistic."""

from .base import (
    DiagNormal,
    Distribution,
    Logistic,
    MixtureOfGaussians,
    StandardNormal,
    Uniform,
)

__all__ = [
    "Distribution",
    "StandardNormal",
    "DiagNormal",
    "MixtureOfGaussians",
    "Uniform",
    "Logistic",
]

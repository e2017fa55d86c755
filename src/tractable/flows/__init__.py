r"""Flow models and their builders."""

from .base import Flow
from .baselines import Gaussian, GaussianMixture
from .builders import IAF, MAF, NICE, NSF, Planar, Radial, RealNVP
from .image import (
    GaussianPrior,
    Glow,
    MultiscaleFlow,
    MultiscaleRealNVP,
    interpolate,
)

__all__ = [
    "Flow",
    "NICE",
    "RealNVP",
    "MAF",
    "IAF",
    "NSF",
    "Planar",
    "Radial",
    "Gaussian",
    "GaussianMixture",
    "GaussianPrior",
    "Glow",
    "MultiscaleFlow",
    "MultiscaleRealNVP",
    "interpolate",
]

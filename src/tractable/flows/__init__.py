r"""Flow models and their builders."""

from .base import Flow
from .builders import BUILDERS, IAF, MAF, NICE, NSF, Planar, Radial, RealNVP, build
from .image import (
    IMAGE_BUILDERS,
    GaussianPrior,
    Glow,
    MultiscaleFlow,
    MultiscaleRealNVP,
    interpolate,
)

__all__ = [
    "Flow",
    "BUILDERS",
    "build",
    "NICE",
    "RealNVP",
    "MAF",
    "IAF",
    "NSF",
    "Planar",
    "Radial",
    "IMAGE_BUILDERS",
    "GaussianPrior",
    "Glow",
    "MultiscaleFlow",
    "MultiscaleRealNVP",
    "interpolate",
]

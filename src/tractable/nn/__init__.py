r"""Conditioner networks for flows: MLP and MADE."""

from .networks import MADE, MLP, MaskedLinear

__all__ = ["MLP", "MADE", "MaskedLinear"]

r"""Invertible transforms in the normalizing direction (data to noise)."""

from .base import Compose, Inverse, Transform, sum_except_batch

__all__ = ["Transform", "Compose", "Inverse", "sum_except_batch"]

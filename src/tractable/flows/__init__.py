r"""Flow models and their builders."""

from .base import Flow

__all__ = ["Flow"]

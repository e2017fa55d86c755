r"""Metrics: likelihood summaries and sample-based measures (pure functions)."""

from .likelihood import bits_per_dim, data_space_nll, mean_and_se

__all__ = ["bits_per_dim", "data_space_nll", "mean_and_se"]

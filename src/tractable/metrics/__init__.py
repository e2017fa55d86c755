r"""Metrics: likelihood summaries and sample-based measures (pure functions).

Every sample-based metric takes numpy arrays or torch tensors of shape ``(N, F)``, computes in
float64 and returns a float or a small frozen dataclass.
"""

from .anomaly import auprc, auroc
from .divergences import GridDivergences, grid_divergences, wasserstein
from .diversity import pluralistic_diversity
from .duplicates import (
    BirthdayResult,
    BirthdaySupport,
    birthday,
    birthday_support,
    plot_birthday_pairs,
)
from .frechet import feature_statistics, fid, fid_from_stats
from .inception import ISResult, inception_score
from .likelihood import bits_per_dim, data_space_nll, mean_and_se
from .mmd import KIDResult, kid, mmd2_unbiased
from .modes import ModeCoverage, grid_modes, mode_coverage, ring_modes
from .pca import pca_comparison, pca_frechet, pca_projection, plot_pca_comparison
from .precision_recall import PRDC, knn_radii, prdc

__all__ = [
    "bits_per_dim",
    "data_space_nll",
    "mean_and_se",
    "BirthdayResult",
    "BirthdaySupport",
    "GridDivergences",
    "ISResult",
    "KIDResult",
    "ModeCoverage",
    "PRDC",
    "auprc",
    "auroc",
    "birthday",
    "birthday_support",
    "feature_statistics",
    "fid",
    "fid_from_stats",
    "grid_divergences",
    "grid_modes",
    "inception_score",
    "kid",
    "knn_radii",
    "mmd2_unbiased",
    "mode_coverage",
    "pca_comparison",
    "pca_frechet",
    "pca_projection",
    "pluralistic_diversity",
    "plot_birthday_pairs",
    "plot_pca_comparison",
    "prdc",
    "ring_modes",
    "wasserstein",
]

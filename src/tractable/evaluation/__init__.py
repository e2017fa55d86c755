r"""Sample-based evaluation: any family's samples against held-out data.

:func:`evaluate_samples` computes FID, KID, precision/recall/density/coverage, IS, mode and
class coverage, the birthday test and its support size, a PCA comparison, grid divergences, W1,
memorisation and (per class) pluralistic diversity from samples and a dataset
(:mod:`tractable.evaluation.samples`); :mod:`tractable.evaluation.features` provides the image
feature extractors.
"""

from . import features
from .samples import (
    METRICS,
    evaluate_per_class,
    evaluate_samples,
    parse_metrics,
    summary_lines,
    support_text,
)
from .state import EXTRACTORS, Comparison

__all__ = [
    "EXTRACTORS",
    "METRICS",
    "Comparison",
    "evaluate_per_class",
    "evaluate_samples",
    "features",
    "parse_metrics",
    "summary_lines",
    "support_text",
]

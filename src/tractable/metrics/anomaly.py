r"""Anomaly-detection scores: ranking quality of an anomaly score (e.g. the NLL of a model).

A higher score must mean "more anomalous", and label 1 marks the anomalies (the positive
class), so a likelihood model is scored with ``-log_prob`` (Nalisnick et al. 2019, "Do deep
generative models know what they don't know?", show why this can fail out of distribution).
Both metrics come from scikit-learn: ``roc_auc_score`` (area under the ROC curve; 0.5 is
chance) and ``average_precision_score`` (area under the precision-recall curve as the
step-wise average precision; chance is the fraction of positives).
"""

from __future__ import annotations

import numpy as np

from .inputs import ArrayLike, as_vector

__all__ = ["auprc", "auroc"]


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = as_vector(scores, "scores")
    y = as_vector(labels, "labels", length=s.shape[0])
    if not np.isin(y, (0.0, 1.0)).all():
        bad = np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]
        raise ValueError(f"labels: expected only 0 and 1 (or booleans), found values {bad}")
    positives = int(y.sum())
    if positives == 0 or positives == y.shape[0]:
        raise ValueError(
            f"labels: expected both classes, got {positives} positives out of {y.shape[0]}"
        )
    return s, y.astype(np.int64)


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the ROC curve of ``scores`` ``(N,)`` for binary ``labels`` ``(N,)``.

    Equals the probability that a random anomaly scores above a random normal example (ties
    count half).

    Example:
        >>> import numpy as np
        >>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.75
    """
    from sklearn.metrics import roc_auc_score  # imported on use: sklearn is slow to import

    s, y = _check(scores, labels)
    return float(roc_auc_score(y, s))


def auprc(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the precision-recall curve (average precision) of ``scores`` ``(N,)`` for
    binary ``labels`` ``(N,)``.

    .. math:: \mathrm{AP} = \sum_n (R_n - R_{n-1}) P_n

    Example:
        >>> import numpy as np
        >>> round(auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])), 6)
        0.833333
    """
    from sklearn.metrics import average_precision_score

    s, y = _check(scores, labels)
    return float(average_precision_score(y, s))

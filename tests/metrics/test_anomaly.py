"""AUROC and AUPRC: perfect and reversed rankings, a pairwise reference, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tractable.metrics import auprc, auroc


def test_perfect_separation_scores_one():
    scores = np.array([0.1, 0.2, 0.3, 5.0, 6.0])
    labels = np.array([0, 0, 0, 1, 1])
    assert auroc(scores, labels) == 1.0
    assert auprc(scores, labels) == 1.0


def test_reversed_ranking_and_tensor_and_bool_inputs():
    scores = torch.tensor([5.0, 6.0, 0.1, 0.2])
    labels = torch.tensor([False, False, True, True])
    assert auroc(scores, labels) == 0.0
    # AP with the positives ranked last: precisions 1/3 and 2/4 at recalls 1/2 and 1
    assert auprc(scores, labels) == pytest.approx(0.5 * (1 / 3) + 0.5 * (2 / 4))


def test_auroc_is_the_pairwise_ranking_probability():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # rounding creates ties
    labels = (rng.random(60) < 0.4).astype(int)
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert auroc(scores, labels) == pytest.approx(expected, rel=1e-12)


def test_anomaly_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="labels: expected both classes"):
        auroc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="labels: expected only 0 and 1"):
        auprc(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="labels: expected shape \\(3,\\)"):
        auroc(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="scores: expected finite values"):
        auroc(np.array([np.nan, 0.2]), np.array([0, 1]))

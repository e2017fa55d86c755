"""Inception Score: the bounds 1 and C, a hand-computed case, and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tractable.metrics import inception_score


def test_uniform_predictions_score_one():
    result = inception_score(np.full((50, 7), 1 / 7), splits=5)
    assert result.mean == pytest.approx(1.0, abs=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_identical_confident_predictions_score_one():
    probs = np.zeros((20, 5))
    probs[:, 2] = 1.0
    assert inception_score(probs, splits=2).mean == pytest.approx(1.0, abs=1e-12)


def test_confident_balanced_predictions_score_the_number_of_classes():
    c = 10
    probs = torch.eye(c).repeat(6, 1)  # each of the 6 splits holds every class once
    result = inception_score(probs, splits=6)
    assert result.mean == pytest.approx(c, rel=1e-12)
    assert result.values.shape == (6,)
    assert result.std == pytest.approx(0.0, abs=1e-9)


def test_two_class_case_by_hand():
    probs = np.array([[0.9, 0.1], [0.1, 0.9]])
    # marginal (0.5, 0.5); KL of each row = 0.9 log 1.8 + 0.1 log 0.2
    expected = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    assert inception_score(probs, splits=1).mean == pytest.approx(expected, rel=1e-12)


def test_inception_score_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probs: expected non-negative"):
        inception_score(np.array([[-1.0, 2.0]]), splits=1)
    with pytest.raises(ValueError, match="not logits"):
        inception_score(np.array([[0.2, 0.2], [0.5, 0.5]]), splits=1)
    with pytest.raises(ValueError, match="splits: expected at most N = 2"):
        inception_score(np.full((2, 2), 0.5), splits=3)
    with pytest.raises(ValueError, match="probs: expected shape \\(N, F\\)"):
        inception_score(np.full(4, 0.25))

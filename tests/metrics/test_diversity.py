"""Pluralistic diversity on sets of known spread."""

from __future__ import annotations

import numpy as np
import pytest

from tractable.metrics import pluralistic_diversity


def test_regular_polygons_have_their_side_as_nearest_distance() -> None:
    # K points on a circle of radius r: every nearest neighbour is 2 r sin(pi / K) away
    def polygon(k: int, r: float) -> np.ndarray:
        a = 2 * np.pi * np.arange(k) / k
        return r * np.stack([np.cos(a), np.sin(a)], 1)

    sets = [polygon(6, 1.0), polygon(6, 3.0), polygon(6, 0.5)]
    expected = np.mean([2 * r * np.sin(np.pi / 6) for r in (1.0, 3.0, 0.5)])
    assert pluralistic_diversity(sets) == pytest.approx(expected, rel=1e-12)
    # the same as one (M, K, F) array; scaling the features scales it
    stacked = np.stack(sets)
    assert pluralistic_diversity(stacked) == pytest.approx(expected, rel=1e-12)
    assert pluralistic_diversity(4 * stacked) == pytest.approx(4 * expected, rel=1e-12)


def test_a_model_that_ignores_its_noise_scores_zero() -> None:
    same = np.repeat(np.random.default_rng(0).normal(size=(5, 1, 3)), 4, axis=1)
    assert pluralistic_diversity(same) == 0.0
    # outputs of different inputs never count as each other's neighbours
    spread = np.stack([np.full((2, 2), float(m)) for m in range(4)])
    assert pluralistic_diversity(spread) == 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="outputs: expected one"):
        pluralistic_diversity([])
    with pytest.raises(ValueError, match=r"outputs\[0\]"):
        pluralistic_diversity([np.zeros((1, 2))])  # one output: no other to compare with
    with pytest.raises(ValueError, match=r"outputs\[1\]"):
        pluralistic_diversity([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="outputs"):
        pluralistic_diversity([np.array([[0.0, np.nan], [1.0, 1.0]])])
    with pytest.raises(ValueError, match=r"expected an \(M, K, F\) array"):
        pluralistic_diversity(np.zeros((2, 3)))

"""Wilson intervals against published values and Bradley-Terry on simulated answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tractable.humaneval import bradley_terry, wilson_interval


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
# method 3 (Wilson score interval without continuity correction), 95%.
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_matches_newcombe_1998(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_edges_and_symmetry() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(7, 10)
    lo2, hi2 = wilson_interval(3, 10)
    assert (lo, hi) == pytest.approx((1 - hi2, 1 - lo2))
    assert wilson_interval(5, 10, level=0.99)[0] < wilson_interval(5, 10)[0]
    with pytest.raises(ValueError, match="k: expected at most n"):
        wilson_interval(3, 2)


def test_bradley_terry_recovers_known_strengths() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([1.0, 0.3, -0.2, -1.1])
    truth -= truth.mean()
    pairs = []
    for _ in range(6000):
        i, j = rng.choice(4, size=2, replace=False)
        p = 1 / (1 + np.exp(truth[j] - truth[i]))
        pairs.append((i, j) if rng.uniform() < p else (j, i))
    out = bradley_terry(pairs, 4, bootstrap=200, prior=0.01)
    assert out["score"] == pytest.approx(truth, abs=0.1)
    assert np.all(out["low"] <= truth + 0.02) and np.all(truth - 0.02 <= out["high"])
    assert np.all(out["high"] - out["low"] < 0.4)


def test_bradley_terry_keeps_a_perfect_record_finite() -> None:
    out = bradley_terry([(0, 1)] * 5, 2, bootstrap=50)
    assert np.isfinite(out["score"]).all() and out["score"][0] > out["score"][1]
    with pytest.raises(ValueError, match="pairs"):
        bradley_terry([(0, 0)], 2)


def test_bradley_terry_of_one_item_is_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/0 in the MM updates used to warn here
        out = bradley_terry([], 1, bootstrap=10)
    assert out["score"].tolist() == [0.0]

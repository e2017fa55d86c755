"""KID / unbiased MMD^2 with the cubic kernel: brute force, unbiasedness, positivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tractable.checks import UndefinedStandardErrorWarning
from tractable.metrics import kid, mmd2_unbiased


def _kernel(u: np.ndarray, v: np.ndarray) -> float:
    return (float(u @ v) / u.shape[0] + 1.0) ** 3


def _brute_force(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    xx = sum(_kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(_kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(_kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_brute_force_double_sums():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(_brute_force(x, y), rel=1e-12)


def test_mmd2_is_unbiased_on_equal_distributions():
    # Independent replicates of small sets from the same distribution: the mean of the unbiased
    # estimator is within 3 standard errors of 0. The biased V-statistic (diagonal included)
    # fails the same check, so the test can tell the two apart.
    rng = np.random.default_rng(1)
    m, d, reps = 20, 4, 400
    unbiased, biased = np.empty(reps), np.empty(reps)
    for r in range(reps):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased[r] = mmd2_unbiased(x, y)
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        biased[r] = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    se = unbiased.std(ddof=1) / math.sqrt(reps)
    assert abs(unbiased.mean()) < 3 * se
    assert biased.mean() > 10 * biased.std(ddof=1) / math.sqrt(reps)


def test_kid_near_zero_on_equal_and_positive_on_different_distributions():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = kid(x, y, subsets=50, subset_size=100, seed=0)
    assert same.values.shape == (50,)
    assert abs(same.mean) < 3 * same.std
    shifted = kid(x, y + 0.5, subsets=50, subset_size=100, seed=0)
    assert shifted.mean > 0
    assert shifted.mean > 10 * same.std
    assert shifted.mean > 5 * shifted.std


def test_kid_single_full_subset_equals_mmd2_and_is_seed_deterministic():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    with pytest.warns(UndefinedStandardErrorWarning, match="kid"):
        result = kid(x, y, subsets=1, subset_size=30)
    # a full subset is a permutation, and the estimator is permutation invariant
    assert result.mean == pytest.approx(mmd2_unbiased(x, y), rel=1e-10)
    assert result.std is None  # undefined for one subset, and never NaN (issue 18)
    a = kid(x, y, subsets=5, subset_size=10, seed=7)
    b = kid(torch.from_numpy(x), torch.from_numpy(y), subsets=5, subset_size=10, seed=7)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.std == pytest.approx(np.std(a.values, ddof=1))


def test_kid_rejects_bad_inputs():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="subset_size: expected at most 10"):
        kid(x, np.zeros((20, 3)), subset_size=11)
    with pytest.raises(ValueError, match="features_b"):
        kid(x, np.zeros((10, 2)), subset_size=5)
    with pytest.raises(TypeError, match="subsets"):
        kid(x, x, subsets=2.0, subset_size=5)
    with pytest.raises(ValueError, match="subset_size: expected an int >= 2"):
        kid(x, x, subset_size=1)
    with pytest.raises(ValueError, match="seed"):
        kid(x, x, subset_size=5, seed=-1)


def test_values_whose_kernel_overflows_name_the_arguments():
    # found by the fuzz suite: a RuntimeWarning and a non-finite MMD for values near 1e308
    big = np.full((3, 2), 1e200)
    with pytest.raises(ValueError, match="x, y: a statistic of the values overflows float64"):
        mmd2_unbiased(big, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="features_a, features_b: a statistic"):
        kid(big, np.zeros((3, 2)), subsets=2, subset_size=2)

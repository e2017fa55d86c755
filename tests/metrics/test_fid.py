"""FID against closed forms: exact on statistics, exact on moment-matched samples, and within a
delta-method tolerance on raw Gaussian samples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from tractable.metrics import feature_statistics, fid, fid_from_stats


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _trace_sqrt_independent(s1: np.ndarray, s2: np.ndarray) -> float:
    # tr (S1^{1/2} S2 S1^{1/2})^{1/2} through symmetric eigendecompositions only (no sqrtm).
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(inner, 0, None)).sum())


def _closed_form(mu1, s1, mu2, s2) -> float:
    return float(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_independent(s1, s2)
    )


def _moment_matched(rng, n: int, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    # Samples whose mean and unbiased covariance are exactly mu and sigma.
    z = rng.normal(size=(n, mu.shape[0]))
    z = z - z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return mu + z @ np.linalg.cholesky(sigma).T


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).normal(size=(300, 6))
    assert abs(fid(x, x)) < 1e-9


def test_fid_from_stats_one_dimensional_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2
    value = fid_from_stats(np.array([2.0]), np.array([[9.0]]), np.array([-1.0]), np.array([[4.0]]))
    assert value == pytest.approx(9.0 + 1.0, abs=1e-12)


def test_fid_from_stats_commuting_covariances_exact():
    rng = np.random.default_rng(2)
    d = 5
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Commuting covariances share eigenvectors: the trace term is sum (sqrt(a) - sqrt(b))^2.
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_fid_from_stats_general_covariances_match_independent_formula():
    rng = np.random.default_rng(3)
    d = 6
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = _closed_form(mu1, s1, mu2, s2)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # symmetric in its two arguments
    assert fid_from_stats(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)


def test_fid_on_moment_matched_samples_equals_closed_form_exactly():
    rng = np.random.default_rng(4)
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    x = _moment_matched(rng, 50, mu1, s1)
    y = _moment_matched(rng, 80, mu2, s2)
    assert fid(x, y) == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=1e-9)


def test_fid_on_gaussian_samples_within_statistical_tolerance():
    # Diagonal covariances a, b: FID = ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2. The delta
    # method gives the estimator's standard error: the mean term contributes
    # 4 d^T (S1 + S2) d / N, each variance estimate (variance 2 a^2 / N) contributes through
    # d/da [a + b - 2 sqrt(ab)] = 1 - sqrt(b / a). Over 200 seeds this SE (0.027) matched the
    # observed spread (0.028), and the bias was 7.6e-4 ~ 2 tr(S1 + S2) / N.
    n = 20_000
    mu2 = np.array([1.0, -0.5, 0.25])
    a, b = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 3)) * np.sqrt(a)
    y = mu2 + rng.normal(size=(n, 3)) * np.sqrt(b)
    expected = (mu2**2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    var = 4 * (mu2**2 * (a + b)).sum() / n
    var += ((1 - np.sqrt(b / a)) ** 2 * 2 * a**2 + (1 - np.sqrt(a / b)) ** 2 * 2 * b**2).sum() / n
    tolerance = 4 * np.sqrt(var) + 5 * (a + b).sum() / n
    assert abs(fid(x, y) - expected) < tolerance


def test_fid_from_stats_is_fid_of_feature_statistics_and_accepts_tensors():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1.0
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    np.testing.assert_allclose(s1, np.cov(x, rowvar=False), rtol=1e-12)
    expected = fid_from_stats(mu1, s1, mu2, s2)
    assert fid(x, y) == expected
    assert fid(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(
        expected, rel=1e-5
    )


def test_fid_with_fewer_samples_than_features_is_finite():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 30)), rng.normal(size=(10, 30))
    value = fid(x, y)
    assert np.isfinite(value) and value > 0


def test_fid_retries_with_eps_when_sqrtm_is_not_finite(monkeypatch):
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky_sqrtm(matrix):
        calls.append(matrix.copy())
        if len(calls) == 1:
            return np.full_like(matrix, np.nan)
        return real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)  # frechet imports it on use
    s = np.diag([1.0, 4.0])
    value = fid_from_stats(np.zeros(2), s, np.zeros(2), s, eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s + 1e-3 * np.eye(2)) @ (s + 1e-3 * np.eye(2)))
    # tr S + tr S - 2 tr (S + eps I) = -2 * 2 * eps
    assert value == pytest.approx(-4e-3, rel=1e-9)


def test_fid_rejects_bad_inputs():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="features_b"):
        fid(np.random.default_rng(0).normal(size=(5, 3)), np.ones((5, 4)))
    with pytest.raises(TypeError, match="features_a"):
        fid([[0.0, 1.0]], x)
    bad = np.random.default_rng(0).normal(size=(5, 3))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="features_a: expected finite values, found 1 NaN"):
        fid(bad, bad)
    with pytest.raises(ValueError, match="at least 2 rows"):
        fid(np.ones((1, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="sigma2: expected shape \\(2, 2\\)"):
        fid_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="sigma1: expected a symmetric"):
        fid_from_stats(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="mu2: expected shape \\(2,\\)"):
        fid_from_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))
    # an indefinite "covariance" gives a clearly complex square root
    with pytest.raises(ValueError, match="imaginary parts"):
        fid_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


def test_features_whose_statistics_overflow_are_named() -> None:
    # found by the fuzz suite: the error named the internal mu2
    big = np.full((3, 2), 1e308)
    with pytest.raises(ValueError, match="features_b: a statistic of the values overflows"):
        fid(np.zeros((3, 2)), big)
    with pytest.raises(ValueError, match="features: a statistic"):
        feature_statistics(big)

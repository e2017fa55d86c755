"""PCA plane: projections on the data's principal axes and the Fréchet distance in that plane,
against closed forms on Gaussian sets built with exactly known means and covariances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tractable.metrics import pca_frechet, pca_projection


def _white(n: int, d: int, seed: int) -> np.ndarray:
    r"""``(n, d)`` with mean exactly 0 and unbiased covariance exactly the identity."""
    z = np.random.default_rng(seed).normal(size=(n, d))
    z -= z.mean(axis=0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_frechet_in_the_plane_of_rotated_gaussians() -> None:
    # data: standard deviations (3, 2, 1) along the columns of a rotation R; samples: (a, b, c)
    # along the same axes, shifted. In the data's plane (R e1, R e2) the samples have mean
    # R[:, :2]^T shift and covariance diag(a^2, b^2), so d^2 = |that mean|^2 + (3-a)^2 + (2-b)^2;
    # c lies off the plane and does not count.
    r = _rotation(3, 0)
    mu = np.array([1.0, -2.0, 0.5])
    data = _white(3000, 3, 1) @ np.diag([3.0, 2.0, 1.0]) @ r.T + mu
    shift = np.array([0.7, 0.2, -1.1])
    for a, b, c in ((3.0, 2.0, 1.0), (1.5, 2.5, 8.0), (0.5, 0.25, 0.1)):
        samples = _white(2000, 3, 2) @ np.diag([a, b, c]) @ r.T + mu + shift
        expected = float(np.sum((r[:, :2].T @ shift) ** 2)) + (3 - a) ** 2 + (2 - b) ** 2
        assert pca_frechet(data, samples) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # identical second moments and means: zero, even with a different third axis
    same = _white(500, 3, 3) @ np.diag([3.0, 2.0, 40.0]) @ r.T + mu
    assert abs(pca_frechet(data, same)) < 1e-9


def test_frechet_with_a_correlated_sample_covariance() -> None:
    # in the plane, data covariance D = diag(9, 4) and sample covariance S (not diagonal):
    # for 2x2 matrices with positive eigenvalues tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), M = DS
    r = _rotation(4, 5)
    data = _white(4000, 4, 6) @ np.diag([3.0, 2.0, 0.5, 0.2]) @ r.T
    plane = np.array([[2.0, 0.6], [0.6, 1.0]])  # a square root of S
    s = plane @ plane.T
    z = _white(3000, 4, 7)
    samples = np.concatenate([z[:, :2] @ plane.T, 0.3 * z[:, 2:]], axis=1) @ r.T
    m = np.diag([9.0, 4.0]) @ s
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    expected = 9.0 + 4.0 + np.trace(s) - 2 * tr_sqrt
    assert pca_frechet(data, samples) == pytest.approx(expected, rel=1e-9)


def test_projection_coordinates() -> None:
    r = _rotation(5, 8)
    data = _white(1000, 5, 9) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.1]) @ r.T + 10.0
    d2, s2, t2 = pca_projection(data, data[:7], 2 * data[:3], k=2)
    assert d2.shape == (1000, 2) and s2.shape == (7, 2) and t2.shape == (3, 2)
    np.testing.assert_allclose(d2.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(d2, rowvar=False), np.diag([25.0, 9.0]), atol=1e-9)
    np.testing.assert_allclose(s2, d2[:7], atol=1e-12)
    # the axes are +-R[:, :2], with the largest loading of each positive
    axes = np.linalg.lstsq(d2, data - data.mean(axis=0), rcond=None)[0]  # (2, 5)
    np.testing.assert_allclose(np.abs(axes @ r[:, :2]), np.eye(2), atol=1e-9)
    assert all(row[np.abs(row).argmax()] > 0 for row in axes)


def test_bad_input() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="k: expected at most F = 3"):
        pca_frechet(x, x, k=4)
    with pytest.raises(ValueError, match="samples"):
        pca_frechet(x, x[:, :2])
    with pytest.raises(ValueError, match=r"others\[1\]"):
        pca_projection(x, x, x[:, :2])
    with pytest.raises(TypeError, match="k: expected an int"):
        pca_projection(x, k=2.0)

"""Grid divergences against analytic KL; Wasserstein against scipy and translations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from tractable.metrics import grid_divergences, wasserstein


def _gaussian(mean, cov):
    mean = torch.as_tensor(mean, dtype=torch.float64)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(mean, cov)
    return dist.log_prob


def _kl_gaussians(m1, s1, m2, s2) -> float:
    m1, s1, m2, s2 = map(np.asarray, (m1, s1, m2, s2))
    inv = np.linalg.inv(s2)
    diff = m2 - m1
    return 0.5 * (
        np.trace(inv @ s1)
        + diff @ inv @ diff
        - len(m1)
        + math.log(np.linalg.det(s2) / np.linalg.det(s1))
    )


BOUNDS = ((-9.0, 10.0), (-9.0, 9.0))


def test_grid_kl_matches_analytic_gaussian_kl():
    m1, s1 = [0.0, 0.5], [[1.0, 0.3], [0.3, 0.8]]
    m2, s2 = [1.0, -0.5], [[1.5, -0.2], [-0.2, 1.2]]
    out = grid_divergences(_gaussian(m1, s1), _gaussian(m2, s2), BOUNDS, resolution=100)
    # the midpoint rule is spectrally accurate for a smooth density negligible outside the box
    assert out.kl_pq == pytest.approx(_kl_gaussians(m1, s1, m2, s2), rel=1e-9)
    assert out.kl_qp == pytest.approx(_kl_gaussians(m2, s2, m1, s1), rel=1e-9)
    assert out.mass_p == pytest.approx(1.0, abs=1e-6)
    assert out.mass_q == pytest.approx(1.0, abs=1e-6)


def test_js_is_symmetric_bounded_and_zero_on_equal_densities():
    p = _gaussian([0.0, 0.0], np.eye(2))
    q = _gaussian([1.0, 1.0], 0.5 * np.eye(2))
    pq = grid_divergences(p, q, BOUNDS, resolution=100)
    qp = grid_divergences(q, p, BOUNDS, resolution=100)
    assert pq.js == pytest.approx(qp.js, rel=1e-12)
    assert pq.kl_pq == pytest.approx(qp.kl_qp, rel=1e-12)
    assert 0 < pq.js < math.log(2)
    # KL(p || m) <= KL(p || q) / 2 by convexity of KL in its second argument, hence:
    assert pq.js <= (pq.kl_pq + pq.kl_qp) / 4
    assert grid_divergences(p, p, BOUNDS, resolution=50).js == pytest.approx(0.0, abs=1e-15)
    far = grid_divergences(
        _gaussian([-6.0, 0.0], 0.3 * np.eye(2)), _gaussian([6.0, 0.0], 0.3 * np.eye(2)), BOUNDS
    )
    assert far.js == pytest.approx(math.log(2), rel=1e-9)
    assert far.js <= math.log(2) + 1e-12


def test_unnormalised_and_numpy_log_densities_and_zero_support():
    p = _gaussian([0.0, 0.0], np.eye(2))

    def shifted(x):
        return (p(x) + 5.0).numpy()  # unnormalised, returned as numpy

    out = grid_divergences(p, shifted, BOUNDS, resolution=60)
    assert out.kl_pq == pytest.approx(0.0, abs=1e-12)
    assert out.mass_q == pytest.approx(math.exp(5.0) * out.mass_p, rel=1e-10)

    def half_plane(x):
        return torch.where(x[:, 0] > 0, p(x), torch.tensor(-math.inf))

    # symmetric bounds and an even resolution put a cell boundary on x = 0
    cut = grid_divergences(p, half_plane, ((-9.0, 9.0), (-9.0, 9.0)), resolution=60)
    assert cut.kl_pq == math.inf
    # q is p restricted to x > 0: KL(q || p) = -log P_p(x > 0) = log 2
    assert cut.kl_qp == pytest.approx(math.log(2), rel=1e-9)
    assert cut.js < math.log(2)


def test_grid_divergences_rejects_bad_inputs():
    p = _gaussian([0.0, 0.0], np.eye(2))

    def one_nan(x):
        out = p(x)
        out[0] = math.nan
        return out

    with pytest.raises(ValueError, match="log_q_fn: returned 1 NaN and 0 \\+inf"):
        grid_divergences(p, one_nan, BOUNDS, resolution=10)
    with pytest.raises(ValueError, match="log_p_fn: expected it to return shape"):
        grid_divergences(lambda x: x, p, BOUNDS, resolution=10)
    with pytest.raises(TypeError, match="log_p_fn: expected a callable"):
        grid_divergences(3.0, p, BOUNDS)
    with pytest.raises(ValueError, match="bounds"):
        grid_divergences(p, p, ((1.0, 0.0), (0.0, 1.0)))
    with pytest.raises(ValueError, match="log_q_fn: the density is zero"):
        grid_divergences(p, lambda x: torch.full((x.shape[0],), -math.inf), BOUNDS, resolution=10)


def test_exact_w1_in_one_dimension_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 1)), rng.gamma(2.0, size=(70, 1))
    expected = scipy.stats.wasserstein_distance(a[:, 0], b[:, 0])
    assert wasserstein(a, b) == pytest.approx(expected, rel=1e-9)
    # in 1D every projection is +-1, so the sliced distance is the exact one
    assert wasserstein(a, b, method="sliced", n_projections=5) == pytest.approx(expected, rel=1e-9)


def test_exact_w2_in_one_dimension_matches_sorted_coupling():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 1)), rng.laplace(size=(60, 1))
    expected = math.sqrt(np.mean((np.sort(a[:, 0]) - np.sort(b[:, 0])) ** 2))
    assert wasserstein(a, b, p=2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_translation_costs_the_shift_norm(p):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(80, 3))
    v = np.array([0.3, -1.2, 2.0])
    assert wasserstein(a, a + v, p=p) == pytest.approx(np.linalg.norm(v), rel=1e-9)
    # sliced W2^2 = E[(theta . v)^2] = ||v||^2 / d for a translation
    sliced = wasserstein(a, a + v, method="sliced", p=2, n_projections=2000)
    assert sliced == pytest.approx(np.linalg.norm(v) / math.sqrt(3), rel=0.1)


def test_subsampling_is_seeded_and_bounded():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1.0
    first = wasserstein(a, b, max_samples=100, seed=5)
    assert first == wasserstein(torch.from_numpy(a), b, max_samples=100, seed=5)
    full = wasserstein(a, b, max_samples=None)
    assert abs(first - full) < 0.3
    assert full == pytest.approx(math.sqrt(2), rel=0.15)  # W1 of a shift by (1, 1) is sqrt 2


def test_wasserstein_rejects_bad_inputs():
    a = np.zeros((5, 2))
    with pytest.raises(ValueError, match="method: expected 'exact' or 'sliced'"):
        wasserstein(a, a, method="emd")
    with pytest.raises(ValueError, match="p: expected p >= 1"):
        wasserstein(a, a, p=0.5)
    with pytest.raises(ValueError, match="b: expected 2 features"):
        wasserstein(a, np.zeros((5, 3)))

"""Precision, recall, density and coverage: limits, a brute-force reference, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from tractable.metrics import PRDC, knn_radii, prdc


def _reference(real: np.ndarray, fake: np.ndarray, k: int) -> PRDC:
    # Direct transcription of the definitions with open balls.
    d_rr = cdist(real, real)
    d_ff = cdist(fake, fake)
    r_real = np.sort(d_rr, axis=1)[:, k]
    r_fake = np.sort(d_ff, axis=1)[:, k]
    d_fr = cdist(fake, real)  # (M, N)
    inside_real = d_fr < r_real[None, :]
    inside_fake = d_fr.T < r_fake[None, :]  # (N, M): real i in the ball of fake j
    return PRDC(
        precision=float(inside_real.any(axis=1).mean()),
        recall=float(inside_fake.any(axis=1).mean()),
        density=float(inside_real.sum() / (k * len(fake))),
        coverage=float(inside_real.any(axis=0).mean()),
    )


def test_identical_sets_score_one():
    x = np.random.default_rng(0).normal(size=(200, 16))
    assert prdc(x, x, k=5) == PRDC(1.0, 1.0, 1.0, 1.0)


def test_disjoint_shifted_sets_score_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 3))
    y = rng.normal(size=(120, 3)) + 20.0
    assert prdc(x, y, k=5) == PRDC(0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_reference(k):
    rng = np.random.default_rng(2 + k)
    real = rng.normal(size=(60, 4))
    fake = 0.7 * rng.normal(size=(45, 4)) + 0.4
    result = prdc(real, fake, k=k, chunk_size=7)
    expected = _reference(real, fake, k)
    assert result.precision == pytest.approx(expected.precision, rel=1e-12)
    assert result.recall == pytest.approx(expected.recall, rel=1e-12)
    assert result.density == pytest.approx(expected.density, rel=1e-12)
    assert result.coverage == pytest.approx(expected.coverage, rel=1e-12)
    assert 0 < result.recall < 1 and 0 < result.coverage < 1  # a non-trivial case


def test_chunk_size_does_not_change_the_result():
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(90, 5)), rng.normal(size=(70, 5)) * 1.3
    assert prdc(real, fake, chunk_size=4) == prdc(real, fake, chunk_size=1000)


def test_same_distribution_density_near_one_and_coverage_near_theory():
    # E[density] = 1 for independent draws from the same distribution (the k-NN ball holds
    # probability Beta(k, N - k), mean k / N); coverage is about 1 - 2^-k. Across 30 seeds the
    # spread was 0.024 (density) and 0.012 (coverage) at N = 500.
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    result = prdc(x, y, k=5)
    assert abs(result.density - 1.0) < 0.1
    assert abs(result.coverage - (1 - 2**-5)) < 0.05


def test_knn_radii_and_tensor_input():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [10.0, 0.0]])
    np.testing.assert_allclose(knn_radii(x, k=1), [1.0, np.sqrt(18.0), 1.0, np.sqrt(65.0)])
    y = np.random.default_rng(11).normal(size=(30, 3))
    assert prdc(torch.from_numpy(y), torch.from_numpy(y + 0.1)) == prdc(y, y + 0.1)


def test_prdc_rejects_bad_inputs():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="rows of fake"):
        prdc(np.random.default_rng(0).normal(size=(10, 2)), x, k=5)
    with pytest.raises(ValueError, match="fake: expected 2 features"):
        prdc(x, np.zeros((5, 3)), k=1)
    with pytest.raises(TypeError, match="k: expected an int"):
        prdc(x, x, k=2.5)

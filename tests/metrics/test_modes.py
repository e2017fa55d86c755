"""Mode coverage on rings and grids of Gaussians: perfect, collapsed, thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tractable.metrics import grid_modes, mode_coverage, ring_modes

STD = 0.05


def _sample(modes: np.ndarray, n: int, rng: np.random.Generator, which=None) -> np.ndarray:
    idx = rng.integers(0, len(modes), n) if which is None else np.full(n, which)
    return modes[idx] + STD * rng.normal(size=(n, 2))


def test_perfect_sampler_on_eight_gaussians():
    modes = ring_modes(8, radius=2.0)
    rng = np.random.default_rng(0)
    result = mode_coverage(_sample(modes, 2000, rng), modes, std=STD)
    assert result.modes_captured == 8 and result.n_modes == 8
    assert result.fraction_captured == 1.0
    # In 2D, P(||e|| <= 3 sigma) = 1 - exp(-9/2) = 0.9889; binomial sd at N = 2000 is 0.0023.
    assert result.fraction_high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert result.kl_assignment < 0.01
    assert result.counts.sum() == round(result.fraction_high_quality * 2000)


def test_collapsed_sampler_captures_one_eighth():
    modes = ring_modes(8, radius=2.0)
    rng = np.random.default_rng(1)
    result = mode_coverage(_sample(modes, 1000, rng, which=5), modes, std=STD)
    assert result.modes_captured == 1
    assert result.fraction_captured == 1 / 8
    assert result.kl_assignment == pytest.approx(math.log(8), rel=1e-12)
    assert result.counts.argmax() == 5


def test_perfect_sampler_on_a_five_by_five_grid():
    modes = grid_modes(5, spacing=2.0)
    assert modes.shape == (25, 2)
    assert sorted(set(modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    rng = np.random.default_rng(2)
    result = mode_coverage(torch.from_numpy(_sample(modes, 2500, rng)), modes, std=STD)
    assert result.modes_captured == 25 and result.fraction_captured == 1.0


def test_min_count_and_the_three_std_radius():
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    inside = np.array([[2.9 * STD, 0.0]] * 30)
    few = np.array([[10.0, 2.9 * STD]] * 5)
    outside = np.array([[0.0, 3.1 * STD]] * 10)
    x = np.concatenate([inside, few, outside])
    result = mode_coverage(x, modes, std=STD, min_count=20)
    assert result.counts.tolist() == [30, 5]
    assert result.fraction_high_quality == 35 / 45
    assert result.modes_captured == 1  # PacGAN-style: 5 < 20 high-quality samples is lost
    assert mode_coverage(x, modes, std=STD, min_count=1).modes_captured == 2
    # a wider per-mode radius admits the outside points
    wide = mode_coverage(x, modes, std=np.array([2 * STD, STD]))
    assert wide.fraction_high_quality == 1.0


def test_kl_assignment_uses_the_given_weights():
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[0.0, 0.0]] * 3 + [[10.0, 0.0]])
    assert mode_coverage(x, modes, std=1.0, weights=np.array([3.0, 1.0])).kl_assignment == 0.0
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert mode_coverage(x, modes, std=1.0).kl_assignment == pytest.approx(expected, rel=1e-12)


def test_ring_modes_geometry():
    modes = ring_modes(8, radius=3.0)
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 3.0, rtol=1e-12)
    np.testing.assert_allclose(modes[2], [0.0, 3.0], atol=1e-12)


def test_mode_coverage_rejects_bad_inputs():
    modes = ring_modes(8)
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="samples: expected 2 features"):
        mode_coverage(np.zeros((4, 3)), modes, std=0.1)
    with pytest.raises(ValueError, match="std: expected a finite float > 0"):
        mode_coverage(x, modes, std=0.0)
    with pytest.raises(ValueError, match="std: expected shape \\(8,\\)"):
        mode_coverage(x, modes, std=np.ones(3))
    with pytest.raises(ValueError, match="weights: expected values > 0"):
        mode_coverage(x, modes, std=0.1, weights=np.zeros(8))
    with pytest.raises(ValueError, match="min_count"):
        mode_coverage(x, modes, std=0.1, min_count=0)

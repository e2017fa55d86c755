"""The Gaussian and mixture baselines against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from tractable.flows.baselines import Gaussian, GaussianMixture
from tractable.train import TrainConfig, fit


def test_fitted_gaussian_is_the_maximum_likelihood_gaussian() -> None:
    # the MLE of N(mu, Sigma) is the sample mean and the (biased) sample covariance, and its
    # mean NLL on the training data is (D/2) log(2 pi e) + (1/2) log det Sigma_hat
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0], [0.8, 0.5]])
    x = torch.randn(2000, 2, generator=g) @ a.T + torch.tensor([2.0, -1.0])
    centred = x - x.mean(0)
    cov = centred.T @ centred / x.shape[0]
    expected = math.log(2 * math.pi * math.e) + 0.5 * float(torch.logdet(cov))
    model = Gaussian(2)
    cfg = TrainConfig(steps=1500, batch_size=2000, lr=0.05, eval_every=1500)
    fit(model, x, None, cfg, progress=False)
    nll = -float(model.estimate(x).values.mean())
    assert nll >= expected - 1e-9  # nothing beats the MLE on its own data
    assert nll == pytest.approx(expected, abs=2e-4)


def test_mixture_density_integrates_to_one() -> None:
    m = GaussianMixture(2, components=3)
    assert m.estimate(torch.randn(5, 2)).kind == "exact"
    grid = torch.linspace(-12, 12, 401)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        mass = float(m.log_prob(pts).exp().sum() * (grid[1] - grid[0]) ** 2)
    assert mass == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="components"):
        GaussianMixture(2, components=0)
    with pytest.raises(ValueError, match="covariance"):
        Gaussian(2, covariance="spherical")

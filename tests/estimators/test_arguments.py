"""Bad oracle parameters are refused and every estimator takes an empty batch (issue 18)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tractable.estimators import (
    DiscreteMixture,
    LinearGaussian,
    elbo,
    enumerate_latent,
    exact,
    importance_sampling,
    iwae,
    naive_monte_carlo,
)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_linear_gaussian_refuses_non_finite_parameters(bad: float) -> None:
    W, mu = torch.ones(3, 2), torch.zeros(3)
    with pytest.raises(ValueError, match="W: expected finite values"):
        LinearGaussian(W.index_fill(0, torch.tensor([1]), bad), mu, 0.5)
    with pytest.raises(ValueError, match="mu: expected finite values"):
        LinearGaussian(W, mu.index_fill(0, torch.tensor([0]), bad), 0.5)
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(W, mu, bad)
    with pytest.raises(ValueError, match=r"W: expected a tensor of shape \(D, L\)"):
        LinearGaussian(torch.ones(0, 2), torch.zeros(0), 0.5)
    with pytest.raises(TypeError, match="W: expected a torch.Tensor"):
        LinearGaussian([[1.0]], mu, 0.5)


def test_discrete_mixture_refuses_non_finite_parameters() -> None:
    logits, means, scales = torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="logits: expected finite"):
        DiscreteMixture(torch.tensor([0.0, math.nan]), means, scales)
    with pytest.raises(ValueError, match="means: expected finite"):
        DiscreteMixture(logits, torch.full((2, 3), math.inf), scales)
    with pytest.raises(ValueError, match="scales: expected finite"):
        DiscreteMixture(logits, means, torch.full((2, 3), math.inf))


def test_every_estimator_gives_an_empty_estimate_for_an_empty_batch() -> None:
    model = LinearGaussian.random(features=3, latent=2, seed=0)
    mixture = DiscreteMixture.random(components=3, features=3, seed=0)
    x = torch.zeros(0, 3)
    proposal = {"sample": model.prior_sample, "log_q": model.prior_log_prob}
    estimates = [
        exact(model.log_marginal, x),
        enumerate_latent(mixture.log_joint, x, 3),
        naive_monte_carlo(mixture.log_joint, x, 3, k=4),
        importance_sampling(model.log_joint, x, k=4, **proposal),
        elbo(model.log_joint, x, k=4, **proposal),
        iwae(model.log_joint, x, k=4, repeats=2, **proposal),
    ]
    for est in estimates:
        assert est.values.shape == (0,) and est.mean is None and est.se is None
        json.dumps(est.to_dict(), allow_nan=False)


def test_log_mean_exp_checks_dim() -> None:
    # found by the fuzz suite: dim=None was a TypeError on a tuple, dim=1 of a vector IndexError
    from tractable.estimators import log_mean_exp

    with pytest.raises(TypeError, match="dim: expected an int"):
        log_mean_exp(torch.zeros(3), None)
    with pytest.raises(ValueError, match=r"dim: expected an int in \[-1, 1\)"):
        log_mean_exp(torch.zeros(3), 1)
    assert log_mean_exp(torch.zeros(2, 3), -1).shape == (2,)

"""Estimators against a mixture of Gaussians with a small discrete latent, summed exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from tractable.estimators import (
    DiscreteMixture,
    enumerate_latent,
    importance_sampling,
    naive_monte_carlo,
)


@pytest.fixture
def model() -> DiscreteMixture:
    return DiscreteMixture.random(components=4, features=2, spread=2.0, scale=0.7, seed=3)


@pytest.fixture
def x(model: DiscreteMixture) -> torch.Tensor:
    return model.sample(30)


def scipy_log_marginal(model: DiscreteMixture, x: torch.Tensor) -> np.ndarray:
    terms = [
        float(model.log_weights[k])
        + stats.multivariate_normal(
            model.means[k].numpy(), np.diag(model.scales[k].numpy() ** 2)
        ).logpdf(x.numpy())
        for k in range(model.components)
    ]
    return logsumexp(np.stack(terms), axis=0)


def test_exact_sum_matches_scipy(model: DiscreteMixture, x: torch.Tensor) -> None:
    est = enumerate_latent(model.log_joint, x, support=4)
    np.testing.assert_allclose(est.values.numpy(), scipy_log_marginal(model, x), atol=1e-10)
    assert est.kind == "exact" and est.per_example_se is None
    # a support tensor and tiny chunks give the same sum
    est2 = enumerate_latent(model.log_joint, x, support=torch.arange(4), max_rows=7)
    torch.testing.assert_close(est2.values, est.values, rtol=0, atol=1e-12)


def test_naive_monte_carlo_agrees_within_standard_errors(
    model: DiscreteMixture, x: torch.Tensor
) -> None:
    exact = model.log_marginal(x)
    est = naive_monte_carlo(model.log_joint, x, 4, k=400)
    z = (est.values - exact) / est.per_example_se
    assert z.abs().max() < 5
    assert abs(est.mean - float(exact.mean())) < 4 * est.mc_se
    assert est.kind == "estimate" and est.method == "naive_monte_carlo"
    assert bool((est.ess <= 400).all())


def test_importance_sampling_with_a_defensive_proposal_agrees(
    model: DiscreteMixture, x: torch.Tensor
) -> None:
    # q(z | x) = (uniform + a flattened posterior p(z | x)^(1/3)) / 2: wrong, but every state
    # keeps probability >= 1/8, so the draws see all of the posterior mass
    def log_probs(xr: torch.Tensor) -> torch.Tensor:
        tempered = torch.softmax(model.component_log_prob(xr) / 3, 1)
        return (0.5 * tempered + 0.5 / model.components).log()

    def sample(xb: torch.Tensor, k: int) -> torch.Tensor:
        return torch.multinomial(log_probs(xb).exp(), k, replacement=True).T

    def log_q(z: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
        return log_probs(xr).gather(1, z.unsqueeze(1)).squeeze(1)

    exact = model.log_marginal(x)
    est = importance_sampling(model.log_joint, x, sample, log_q, k=300)
    z = (est.values - exact) / est.per_example_se
    assert z.abs().max() < 5
    assert abs(est.mean - float(exact.mean())) < 4 * est.mc_se


def test_importance_sampling_with_the_exact_posterior_has_no_error(
    model: DiscreteMixture, x: torch.Tensor
) -> None:
    def sample(xb: torch.Tensor, k: int) -> torch.Tensor:
        return torch.multinomial(model.posterior_probs(xb), k, replacement=True).T

    def log_q(z: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
        return model.posterior_probs(xr).log().gather(1, z.unsqueeze(1)).squeeze(1)

    est = importance_sampling(model.log_joint, x, sample, log_q, k=20)
    torch.testing.assert_close(est.values, model.log_marginal(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(est.ess, torch.full((30,), 20.0), rtol=1e-9, atol=0)


def test_a_proposal_that_misses_posterior_mass_fools_the_standard_error(
    model: DiscreteMixture, x: torch.Tensor
) -> None:
    # The delta-method standard error and the ESS only see the weights that were drawn: a
    # proposal putting (almost) no mass on a state the posterior needs gives a confident error.
    post = model.posterior_probs(x)
    top = post.argmax(1)

    def sample(xb: torch.Tensor, k: int) -> torch.Tensor:
        return model.posterior_probs(xb).argmax(1).expand(k, -1)

    def log_q(z: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0])  # q puts all its mass on the top state

    est = importance_sampling(model.log_joint, x, sample, log_q, k=50)
    missed = (1 - post.gather(1, top.unsqueeze(1)).squeeze(1)).log()
    # the estimate is log p(x, top) = log p(x) + log p(top | x), exactly, with zero "error"
    torch.testing.assert_close(est.values, model.log_marginal(x) + post.max(1).values.log())
    torch.testing.assert_close(est.ess, torch.full((30,), 50.0))
    assert est.per_example_se.max() < 1e-6
    assert bool((missed > -40).any())  # some example really had mass elsewhere


def test_naive_monte_carlo_is_poor_when_few_states_matter(model: DiscreteMixture) -> None:
    # with k = 1 only one state is tried: the estimate has no standard error and an ESS of 1
    x = model.sample(5)
    est = naive_monte_carlo(model.log_joint, x, 4, k=1)
    assert est.per_example_se is None
    torch.testing.assert_close(est.ess, torch.ones(5))

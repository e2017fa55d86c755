"""Estimators against probabilistic PCA, whose log p(x) and posterior are analytic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from tractable.estimators import LinearGaussian, elbo, importance_sampling, iwae


@pytest.fixture
def model() -> LinearGaussian:
    return LinearGaussian.random(features=5, latent=2, sigma=0.5, seed=1)


@pytest.fixture
def x(model: LinearGaussian) -> torch.Tensor:
    return model.sample(20)


def diag_proposal(model: LinearGaussian, shift: float, widen: float):
    """A diagonal Gaussian proposal: the posterior means shifted by `shift`, the posterior
    marginal standard deviations times `widen` (wider than the posterior, so bounded weights)."""

    def params(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, cov = model.posterior(x)
        return mean + shift, widen * cov.diagonal().sqrt().expand_as(mean)

    def sample(x: torch.Tensor, k: int) -> torch.Tensor:
        loc, scale = params(x)
        return loc + scale * torch.randn(k, *loc.shape)

    def log_q(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loc, scale = params(x)
        return torch.distributions.Normal(loc, scale).log_prob(z).sum(1)

    return sample, log_q, params


def test_log_marginal_matches_scipy(model: LinearGaussian, x: torch.Tensor) -> None:
    cov = (model.W @ model.W.T).numpy() + model.sigma**2 * np.eye(5)
    ref = stats.multivariate_normal(model.mu.numpy(), cov).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_marginal(x).numpy(), ref, rtol=0, atol=1e-10)


def test_posterior_satisfies_bayes_rule_at_any_z(model: LinearGaussian, x: torch.Tensor) -> None:
    # log p(x, z) - log p(z | x) = log p(x) for every z, not only posterior draws.
    z = 3 * torch.randn(x.shape[0], 2)
    gap = model.log_joint(x, z) - model.posterior_log_prob(z, x) - model.log_marginal(x)
    assert gap.abs().max() < 1e-10


def test_importance_sampling_with_true_posterior_is_exact(
    model: LinearGaussian, x: torch.Tensor
) -> None:
    est = importance_sampling(
        model.log_joint, x, model.posterior_sample, model.posterior_log_prob, k=50
    )
    torch.testing.assert_close(est.values, model.log_marginal(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(est.ess, torch.full((20,), 50.0), rtol=1e-9, atol=0)
    assert est.per_example_se.max() < 1e-6
    assert est.kind == "estimate" and est.k == 50


def test_elbo_is_tight_with_zero_variance_when_q_is_the_posterior(
    model: LinearGaussian, x: torch.Tensor
) -> None:
    est = elbo(model.log_joint, x, model.posterior_sample, model.posterior_log_prob, k=10)
    torch.testing.assert_close(est.values, model.log_marginal(x), rtol=0, atol=1e-9)
    assert est.per_example_se.max() < 1e-7
    assert est.kind == "bound"


@pytest.mark.parametrize("proposal", ["prior", "shifted"])
def test_importance_sampling_converges_within_standard_errors(
    model: LinearGaussian, x: torch.Tensor, proposal: str
) -> None:
    if proposal == "prior":
        sample, log_q, k = model.prior_sample, model.prior_log_prob, 5000
    else:
        sample, log_q, _ = diag_proposal(model, shift=0.3, widen=1.5)
        k = 2000
    est = importance_sampling(model.log_joint, x, sample, log_q, k=k)
    exact = model.log_marginal(x)
    z = (est.values - exact) / est.per_example_se
    assert z.abs().max() < 5, z
    assert abs(est.mean - float(exact.mean())) < 4 * est.mc_se
    assert bool((est.ess >= 1).all()) and bool((est.ess <= k).all())
    # and the estimate is informative: its standard error is small in absolute terms
    assert est.per_example_se.max() < 0.2


def test_monte_carlo_elbo_matches_the_analytic_elbo(model: LinearGaussian, x: torch.Tensor) -> None:
    sample, log_q, params = diag_proposal(model, shift=0.4, widen=1.3)
    est = elbo(model.log_joint, x, sample, log_q, k=400)
    loc, scale = params(x)
    analytic = model.gaussian_elbo(x, loc, torch.diag_embed(scale.pow(2)))
    z = (est.values - analytic) / est.per_example_se
    assert z.abs().max() < 5
    assert bool((analytic < model.log_marginal(x)).all())


def test_bounds_are_ordered_and_iwae_increases_with_k(
    model: LinearGaussian, x: torch.Tensor
) -> None:
    sample, log_q, params = diag_proposal(model, shift=0.5, widen=1.3)
    log_p = float(model.log_marginal(x).mean())
    loc, scale = params(x)
    analytic_elbo = float(model.gaussian_elbo(x, loc, torch.diag_embed(scale.pow(2))).mean())
    bounds = {}
    for k in (1, 5, 50):
        est = iwae(model.log_joint, x, sample, log_q, k=k, repeats=60)
        assert est.kind == "bound" and est.repeats == 60
        bounds[k] = (est.mean, est.mc_se)
    # L_1 is the ELBO
    assert abs(bounds[1][0] - analytic_elbo) < 4 * bounds[1][1]
    # ELBO < L_5 < L_50 < log p(x), each gap many standard errors wide
    chain = [bounds[1], bounds[5], bounds[50], (log_p, 0.0)]
    for (lo, se_lo), (hi, se_hi) in zip(chain[:-1], chain[1:], strict=True):
        assert hi - lo > 4 * math.hypot(se_lo, se_hi), (lo, hi)


def test_estimates_do_not_depend_on_chunking_beyond_noise(
    model: LinearGaussian, x: torch.Tensor
) -> None:
    sample, log_q, _ = diag_proposal(model, shift=0.3, widen=1.5)
    a = importance_sampling(model.log_joint, x, sample, log_q, k=200, max_rows=15)
    b = importance_sampling(model.log_joint, x, sample, log_q, k=200)
    se = torch.sqrt(a.per_example_se**2 + b.per_example_se**2)
    assert ((a.values - b.values) / se).abs().max() < 5

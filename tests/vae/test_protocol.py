"""The VAE as a tractable.protocol.Model: estimator kinds and their order against a pPCA oracle,
tempered sampling, and the terms it hands the trainer."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import tractable as tr
from tractable.estimators import LinearGaussian
from tractable.protocol import ESTIMATORS, Model
from tractable.vae import VAE, GaussianDecoder, GaussianEncoder, build_vae


def binary(n: int, d: int) -> Tensor:
    return torch.bernoulli(torch.full((n, d), 0.3))


def test_a_vae_is_a_model_with_a_bound_and_no_density() -> None:
    model = build_vae(6, latent=2, hidden=(4,))
    assert isinstance(model, Model)
    assert model.likelihood == "bound"
    assert model.estimators[0] == "iwae" and set(model.estimators) <= set(ESTIMATORS)
    # a VAE has no exact density: the protocol keeps log_prob for models that do
    assert not hasattr(model, "log_prob") and not hasattr(model, "evaluate")


@pytest.mark.parametrize(
    ("method", "kind", "name"),
    [
        (None, "bound", "iwae"),
        ("iwae", "bound", "iwae"),
        ("importance", "estimate", "importance_sampling"),
        ("elbo", "bound", "elbo"),
    ],
)
def test_estimate_is_tagged_with_its_kind(method: str | None, kind: str, name: str) -> None:
    model = build_vae(6, latent=2, hidden=(4,))
    model.train()
    x = binary(5, 6)
    est = model.estimate(x, method=method)
    assert (est.kind, est.method, est.k) == (kind, name, 100)
    assert est.values.shape == (5,) and bool(torch.isfinite(est.values).all())
    assert ESTIMATORS[method or model.estimators[0]] == kind
    assert model.training  # evaluation restores the mode it found


def test_the_estimators_are_ordered_against_the_exact_log_likelihood(
    ppca: LinearGaussian, ppca_vae: Callable[..., VAE]
) -> None:
    # a shifted encoder: every bound is strictly below log p(x), and more samples help
    vae = ppca_vae(ppca, shift=0.5)
    x = ppca.sample(10)
    log_p = float(ppca.log_marginal(x).mean())
    elbo = vae.estimate(x, method="elbo", k=500)
    iwae = vae.estimate(x, method="iwae", k=10, repeats=100)
    importance = vae.estimate(x, method="importance", k=5000)
    chain = [(e.mean, e.mc_se) for e in (elbo, iwae, importance)]
    for (lo, se_lo), (hi, se_hi) in zip(chain[:-1], chain[1:], strict=True):
        assert hi - lo > 4 * math.hypot(se_lo, se_hi), chain
    assert iwae.mean < log_p - 4 * iwae.mc_se
    # the importance-sampling estimate converges to log p(x) within its standard error (a
    # delta-method one, which is itself noisy: hence the wide margin)
    assert abs(importance.mean - log_p) < 6 * importance.mc_se


def test_iwae_and_importance_name_the_same_number_in_expectation(
    ppca: LinearGaussian, ppca_vae: Callable[..., VAE]
) -> None:
    # E[log p_hat_k] = L_k: with equal k the two differ only in what they claim
    vae = ppca_vae(ppca, shift=0.5)
    x = ppca.sample(4)
    iwae = vae.estimate(x, method="iwae", k=5, repeats=400)
    draws = torch.stack([vae.estimate(x, method="importance", k=5).values for _ in range(400)])
    se = torch.sqrt(iwae.per_example_se**2 + draws.var(0) / 400)
    assert ((iwae.values - draws.mean(0)).abs() < 4 * se).all()


def test_extra_log_reports_the_last_loss_terms_as_floats() -> None:
    for objective in ("elbo", "iwae"):
        model = build_vae(6, latent=2, hidden=(4,), objective=objective, k=3)
        assert model.extra_log() == {}
        loss = model.loss(binary(4, 6))
        terms = model.extra_log()
        assert set(terms) == {"reconstruction", "kl", "beta"}
        assert all(type(v) is float and math.isfinite(v) for v in terms.values())
        assert terms["beta"] == 1.0 and terms["kl"] > 0 and terms["reconstruction"] < 0
        if objective == "elbo":
            assert math.isclose(loss.item(), terms["kl"] - terms["reconstruction"], rel_tol=1e-12)
        # validation batches (eval mode, no gradients) leave the training step's terms alone
        model.eval()
        with torch.no_grad():
            model.loss(binary(4, 6) * 0)
        assert model.extra_log() == terms


def linear_vae(prior: nn.Module | None = None) -> VAE:
    """A VAE whose samples are x = z + 1 up to 1e-9 decoder noise (z in R^2)."""
    dec = GaussianDecoder(2, 2, net=nn.Linear(2, 2), scale=1e-9)
    with torch.no_grad():
        dec.net.weight.copy_(torch.eye(2))
        dec.net.bias.fill_(1.0)
    return VAE(GaussianEncoder(2, 2, hidden=(4,)), dec, prior)


def test_temperature_scales_the_prior_draws() -> None:
    model = linear_vae()
    torch.manual_seed(3)
    hot = model.sample(500) - 1
    torch.manual_seed(3)
    cold = model.sample(500, temperature=0.3) - 1
    torch.testing.assert_close(cold, 0.3 * hot, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "prior",
    [
        tr.distributions.MixtureOfGaussians(2, components=3),
        tr.flows.MAF(2, transforms=1, hidden=(4,)),
    ],
    ids=["mog", "flow"],
)
def test_priors_with_their_own_temperature_are_tempered(prior: nn.Module) -> None:
    model = linear_vae(prior)
    torch.manual_seed(1)
    expected = prior.sample(7, temperature=0.5) + 1
    torch.manual_seed(1)
    torch.testing.assert_close(model.sample(7, temperature=0.5), expected, rtol=0, atol=1e-7)


def test_vamp_prior_temperature_narrows_each_component() -> None:
    enc = GaussianEncoder(3, 2, hidden=(4,))
    prior = tr.vae.VampPrior(enc, pseudo_inputs=1)
    loc, log_scale = prior.components()
    draws = prior.sample(20_000, temperature=0.5)
    torch.testing.assert_close(draws.mean(0), loc[0].detach(), rtol=0, atol=0.05)
    spread = draws.std(0) / log_scale[0].detach().exp()
    torch.testing.assert_close(spread, torch.full((2,), 0.5), rtol=0, atol=0.02)


class PlainPrior(nn.Module):
    """A prior without temperature support: sample(n) only."""

    def __init__(self) -> None:
        super().__init__()
        self.event_shape = (2,)

    def log_prob(self, z: Tensor) -> Tensor:
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)

    def sample(self, n: int) -> Tensor:
        return torch.randn(n, 2)


def test_a_prior_without_temperature_samples_at_one_only() -> None:
    model = linear_vae(PlainPrior())
    assert model.sample(3).shape == (3, 2)
    assert model.sample(3, temperature=1).shape == (3, 2)
    with pytest.raises(ValueError, match="temperature: the prior PlainPrior cannot sample"):
        model.sample(3, temperature=0.7)

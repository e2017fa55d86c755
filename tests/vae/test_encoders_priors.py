"""Encoders q(z | x) (Gaussian, flow-enhanced) and priors (VampPrior, flow prior)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, MixtureSameFamily, Normal

import tractable as tr
from tractable.flows import Flow
from tractable.transforms import Transform
from tractable.vae import VAE, BernoulliDecoder, FlowEncoder, GaussianEncoder, VampPrior


class CondAffine(Transform):
    """A test transform, data to noise: u = (x - b(c)) * exp(-a(c)); a, b linear in c
    (constants when unconditional)."""

    def __init__(self, features: int, context: int = 0) -> None:
        super().__init__()
        self.context = context
        width = max(context, 1)
        self.net = nn.Linear(width, 2 * features)
        with torch.no_grad():
            self.net.weight.normal_(0, 0.5)
            self.net.bias.normal_(0, 0.5)

    def _ab(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.ones(x.shape[0], 1, dtype=x.dtype) if c is None else c
        return self.net(c).chunk(2, dim=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):  # noqa: ANN201
        a, b = self._ab(x, context)
        return (x - b) * torch.exp(-a), -a.sum(1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None):  # noqa: ANN201
        a, b = self._ab(z, context)
        return z * torch.exp(a) + b, a.sum(1)


def test_gaussian_encoder_matches_torch_and_is_consistent() -> None:
    enc = GaussianEncoder(6, latent=3, hidden=(8,))
    x = torch.randn(4, 6)
    z, log_q = enc.rsample_and_log_prob(x, k=5)
    loc, ls, h = enc.gaussian(x)
    assert z.shape == (5, 4, 3) and log_q.shape == (5, 4) and h.shape == (4, 8)
    ref = Independent(Normal(loc, ls.exp()), 1).log_prob(z)
    torch.testing.assert_close(log_q, ref)
    # log_prob on flat rows agrees with the draws' own density
    flat = enc.log_prob(z.reshape(20, 3), x.repeat(5, 1))
    torch.testing.assert_close(flat, log_q.reshape(20))
    # reparameterized: gradients reach the encoder through z
    z.sum().backward()
    assert enc.loc.weight.grad is not None and enc.log_scale.weight.grad.abs().sum() > 0


def test_flow_encoder_density_is_the_pushed_forward_gaussian() -> None:
    gauss = GaussianEncoder(5, latent=2, hidden=(6,))
    flow = Flow(CondAffine(2, context=6), event_shape=(2,), context=6)
    enc = FlowEncoder(gauss, flow)
    x = torch.randn(3, 5)
    z, log_q = enc.rsample_and_log_prob(x, k=4)
    # analytic: z = z0 * e^a + b is Gaussian with mean loc e^a + b and log-scale ls + a
    loc, ls, h = gauss.gaussian(x)
    a, b = flow.layers.net(h).chunk(2, dim=1)
    ref = Independent(Normal(loc * a.exp() + b, (ls + a).exp()), 1).log_prob(z)
    torch.testing.assert_close(log_q, ref)
    # the normalizing direction gives the same density at the same points
    flat = enc.log_prob(z.reshape(12, 2), x.repeat(4, 1))
    torch.testing.assert_close(flat, log_q.reshape(12))


def test_flow_encoder_checks_the_flow() -> None:
    gauss = GaussianEncoder(5, latent=2, hidden=(6,))
    with pytest.raises(ValueError, match="context=6"):
        FlowEncoder(gauss, Flow(CondAffine(2, context=3), event_shape=(2,), context=3))
    with pytest.raises(ValueError, match="event_shape"):
        FlowEncoder(gauss, Flow(CondAffine(3, context=6), event_shape=(3,), context=6))
    with pytest.raises(TypeError, match="flow"):
        FlowEncoder(gauss, nn.Linear(2, 2))


def test_iaf_posterior_from_the_flow_builders() -> None:
    gauss = GaussianEncoder(5, latent=3, hidden=(6,))
    iaf = tr.flows.IAF(3, context=6, transforms=2, hidden=(8,))
    with torch.no_grad():  # move away from the identity initialization
        for p in iaf.parameters():
            p.add_(0.3 * torch.randn_like(p))
    enc = FlowEncoder(gauss, iaf)
    x = torch.randn(4, 5)
    z, log_q = enc.rsample_and_log_prob(x, k=3)
    loc, ls, _ = gauss.gaussian(x)
    # the flow changes the density: it is not the Gaussian's at the returned points
    assert not torch.allclose(log_q, Independent(Normal(loc, ls.exp()), 1).log_prob(z))
    torch.testing.assert_close(enc.log_prob(z.reshape(12, 3), x.repeat(3, 1)), log_q.reshape(12))


def test_vamp_prior_is_the_mixture_of_encoded_pseudo_inputs() -> None:
    enc = GaussianEncoder(4, latent=2, hidden=(8,))
    prior = VampPrior(enc, pseudo_inputs=5, bounds=(0.0, 1.0))
    loc, ls, _ = enc.gaussian(prior.inputs())
    ref = MixtureSameFamily(
        torch.distributions.Categorical(logits=torch.zeros(5)),
        Independent(Normal(loc, ls.exp()), 1),
    )
    z = 2 * torch.randn(9, 2)
    torch.testing.assert_close(prior.log_prob(z), ref.log_prob(z))
    # gradients reach the pseudo-inputs and the shared encoder
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0 and enc.loc.weight.grad.abs().sum() > 0
    # the encoder is not registered twice
    assert [n for n, _ in prior.named_parameters()] == ["pseudo_inputs"]


def test_vamp_prior_blocks_large_batches_exactly() -> None:
    enc = GaussianEncoder(3, latent=4, hidden=(5,))
    prior = VampPrior(enc, pseudo_inputs=700)
    z = torch.randn(2000, 4)  # more rows than one block of 2**22 / (700 * 4)
    loc, ls = prior.components()
    direct = torch.logsumexp(
        Independent(Normal(loc, ls.exp()), 1).log_prob(z.unsqueeze(1)), 1
    ) - math.log(700)
    torch.testing.assert_close(prior.log_prob(z), direct)


def test_vamp_prior_samples_match_its_density() -> None:
    enc = GaussianEncoder(3, latent=1, hidden=(5,))
    prior = VampPrior(enc, pseudo_inputs=3, init=torch.randn(3, 3))
    z = prior.sample(40_000)
    grid = torch.linspace(-8, 8, 4001).unsqueeze(1)
    density = prior.log_prob(grid).exp().detach()
    mean = float((grid[:, 0] * density).sum() * (grid[1, 0] - grid[0, 0]))
    assert abs(float(z.mean()) - mean) < 4 * float(z.std()) / math.sqrt(40_000)


def test_flow_prior_in_a_vae_uses_monte_carlo_kl() -> None:
    enc = GaussianEncoder(6, latent=2, hidden=(8,))
    dec = BernoulliDecoder(6, latent=2, hidden=(8,))
    prior = Flow(CondAffine(2), event_shape=(2,))
    model = VAE(enc, dec, prior, objective="elbo", k=3)
    assert not model.analytic_kl
    x = torch.bernoulli(torch.full((5, 6), 0.3))
    model.loss(x).backward()
    assert prior.layers.net.weight.grad.abs().sum() > 0
    # the flow prior's density is the analytic Gaussian N(b, e^{2a})
    a, b = prior.layers.net(torch.ones(1, 1)).chunk(2, dim=1)
    z = torch.randn(7, 2)
    torch.testing.assert_close(
        prior.log_prob(z), Independent(Normal(b[0], a[0].exp()), 1).log_prob(z)
    )


def test_conditional_prior_is_rejected() -> None:
    enc = GaussianEncoder(6, latent=2, hidden=(8,))
    dec = BernoulliDecoder(6, latent=2, hidden=(8,))
    with pytest.raises(ValueError, match="prior: expected an unconditional"):
        VAE(enc, dec, Flow(CondAffine(2, 3), event_shape=(2,), context=3))
    with pytest.raises(ValueError, match=r"prior: expected event_shape \(2,\)"):
        VAE(enc, dec, tr.distributions.StandardNormal(3))

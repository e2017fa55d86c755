"""DDPM against closed forms (float64): Gaussian data, whose optimal noise predictor, marginals
and posteriors are known exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tractable.diffusion import (
    DDPM,
    build_ddpm,
    discrete,
    discretized_gaussian_log_prob,
    log_alpha_bar,
    run_defaults,
)

MU = torch.tensor([1.0, -0.5])
SIGMA = torch.tensor([[1.5, 0.6], [0.6, 0.8]])


class GaussianEps(nn.Module):
    r"""The optimal predictor :math:`E[\varepsilon | x_s]` for data :math:`N(\mu, \Sigma)`:
    :math:`\sigma (\bar\alpha\Sigma + \sigma^2 I)^{-1}(x - \sqrt{\bar\alpha}\mu)`."""

    def __init__(self, schedule: str) -> None:
        super().__init__()
        lam, q = torch.linalg.eigh(SIGMA)
        self.register_buffer("lam", lam)
        self.register_buffer("q", q)
        self.schedule = schedule
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, y: Tensor, s: Tensor, context: Tensor | None = None) -> Tensor:
        a = log_alpha_bar(self.schedule, s.reshape(-1, 1)).exp()
        var = 1 - a
        coef = var.sqrt() / (a * self.lam + var)
        return ((y - a.sqrt() * MU) @ self.q * coef) @ self.q.T + 0.0 * self.dummy


def oracle(schedule: str = "linear", steps: int = 1000, **kwargs: object) -> DDPM:
    return DDPM(GaussianEps(schedule), (2,), steps=steps, schedule=schedule, **kwargs).eval()


def data(n: int) -> Tensor:
    return MU + torch.randn(n, 2) @ torch.linalg.cholesky(SIGMA).T


def marginal(schedule: str, s: float) -> torch.distributions.MultivariateNormal:
    a = math.exp(float(log_alpha_bar(schedule, torch.tensor(s))))
    return torch.distributions.MultivariateNormal(
        math.sqrt(a) * MU, a * SIGMA + (1 - a) * torch.eye(2)
    )


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_q_equals_t_steps_of_the_chain(schedule: str) -> None:
    model = oracle(schedule, steps=50)
    a_bar = discrete(schedule, 50)
    betas = 1 - a_bar[1:] / a_bar[:-1]
    assert bool((betas > 0).all() & (betas < 1).all())
    # the moments of t steps: mean factor prod sqrt(1 - beta), variance v_t = a_t v + beta_t
    factor, var = 1.0, 0.0
    for t, b in enumerate(betas.tolist(), start=1):
        factor, var = factor * math.sqrt(1 - b), (1 - b) * var + b
        assert factor == pytest.approx(math.sqrt(float(a_bar[t])), rel=1e-12)
        assert var == pytest.approx(1 - float(a_bar[t]), rel=1e-12)
    # and by simulation, against q_sample
    torch.manual_seed(0)
    y0 = torch.tensor([[2.0, -1.0]]).expand(40_000, 2)
    for t in (1, 7, 50):
        y = y0
        for step in range(1, t + 1):
            y = model.q_step(y, torch.full((y.shape[0],), step))
        direct = model.q_sample(y0, torch.full((y.shape[0],), t))
        for sample in (y, direct):
            torch.testing.assert_close(sample.mean(0), a_bar[t].sqrt() * y0[0], atol=0.02, rtol=0)
            torch.testing.assert_close(sample.var(0), (1 - a_bar[t]).expand(2), atol=0.02, rtol=0)


def test_posterior_matches_gaussian_conditioning() -> None:
    model = oracle(steps=20)
    a_bar = discrete("linear", 20)
    y0, yt = torch.randn(5, 2), torch.randn(5, 2)
    for t in (2, 10, 20):
        a_t, a_p = float(a_bar[t]), float(a_bar[t - 1])
        # (x_{t-1}, x_t) | x_0 jointly Gaussian: condition x_{t-1} on x_t
        cov = math.sqrt(a_t / a_p) * (1 - a_p)
        mean = math.sqrt(a_p) * y0 + cov / (1 - a_t) * (yt - math.sqrt(a_t) * y0)
        var = (1 - a_p) - cov**2 / (1 - a_t)
        m, v = model.posterior(y0, yt, torch.full((5,), t))
        torch.testing.assert_close(m, mean, atol=1e-12, rtol=0)
        torch.testing.assert_close(v.reshape(-1), torch.full((5,), float(var)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_probability_flow_ode_transports_the_exact_marginals(schedule: str) -> None:
    model = oracle(schedule, atol=1e-10, rtol=1e-10)
    x = data(10)
    z, ladj = model.cnf(x)
    # the ODE carries the s0 marginal to the s = 1 marginal: exact change of variables
    expected = marginal(schedule, 1e-5).log_prob(x)
    torch.testing.assert_close(marginal(schedule, 1.0).log_prob(z) + ladj, expected, atol=1e-6,
                               rtol=0)  # fmt: skip
    # with the N(0, I) prior (whose mean is off by sqrt(alpha_bar(1)) mu ~ 0.0066 mu) and
    # s0 = 1e-5, the estimate is the data's log-density to about 1e-2
    est = model.estimate(x, method="exact")
    truth = torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)
    assert est.kind == "exact"
    torch.testing.assert_close(est.values, truth, atol=0.03, rtol=0)


@pytest.mark.parametrize(
    ("sampler", "options"),
    [
        ("ancestral", {}),
        ("ddim", {"sample_steps": 200}),
        ("ddim", {"sample_steps": 200, "eta": 1.0}),
        ("ode", {"solver": "rk4", "ode_steps": 50}),
    ],
)  # fmt: skip
def test_samplers_with_the_optimal_predictor_give_the_data_moments(
    sampler: str, options: dict
) -> None:
    torch.manual_seed(1)
    model = oracle(sampler=sampler, **options)
    n = 20_000
    s = model.sample(n)
    assert (s.mean(0) - MU).abs().max() < 4 * math.sqrt(1.5 / n) + 0.01
    # the variance's standard error is about 1.5 sqrt(2 / n) = 0.015
    torch.testing.assert_close(torch.cov(s.T), SIGMA, atol=0.07, rtol=0)


def test_bound_is_below_the_log_likelihood_and_tightens_with_steps() -> None:
    torch.manual_seed(2)
    x = data(2000)
    truth = torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)
    gaps, ses = [], []
    for steps in (2, 5, 50):
        est = oracle(steps=steps).estimate(x, method="elbo", k=4)
        assert est.kind == "bound"
        # paired per example: the spread of log p(x) over the data cancels
        d = truth - est.values
        gaps.append(float(d.mean()))
        ses.append(float(d.std()) / math.sqrt(d.numel()))
    # E[ELBO] <= E[log p_theta] <= E[log p]: no gap below 0 beyond Monte Carlo noise
    assert all(g > -3 * se for g, se in zip(gaps, ses, strict=True)), (gaps, ses)
    assert gaps[0] > gaps[1] + 3 * ses[1] and gaps[1] > gaps[2], (gaps, ses)
    assert abs(gaps[2]) < 0.05, (gaps, ses)
    # with the posterior variances the small-t terms keep a gap that shrinks only slowly
    post = oracle(steps=50, variance="posterior").estimate(x, method="elbo")
    assert float((truth - post.values).mean()) > 0.5


def test_stratified_bound_is_an_unbiased_estimate_of_the_full_sum() -> None:
    torch.manual_seed(5)
    x = data(400)
    full = oracle(steps=200).estimate(x, method="elbo", k=16).values
    strat_model = oracle(steps=200, bound_terms=7)  # 199 steps in strata of 28-29
    strat = strat_model.estimate(x, method="elbo", k=16).values
    d = full - strat  # paired per example
    se = float(d.std()) / math.sqrt(d.numel())
    assert abs(float(d.mean())) < 3 * se, (float(d.mean()), se)
    assert float(d.std()) > 0  # the steps really are sampled
    # each row draws its own steps: two rows of the same x differ
    y = strat_model._y(x[:1].repeat(64, 1))
    assert float(strat_model.vlb(y, None).std()) > 0
    # m >= T - 1 is the full sum itself
    torch.manual_seed(0)
    a = oracle(steps=20, bound_terms=19).vlb(strat_model._y(x[:5]), None)
    torch.manual_seed(0)
    b = oracle(steps=20).vlb_terms(strat_model._y(x[:5]), None).sum(1)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="bound_terms"):
        oracle(steps=20, bound_terms=0)


def test_iwae_lies_between_the_elbo_and_the_log_likelihood() -> None:
    torch.manual_seed(3)
    model = oracle(steps=2)  # the bound's gap is largest here (0.19 nats)
    x = data(1000)
    truth = torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)
    elbo = model.estimate(x, method="elbo", k=8)
    iwae = model.estimate(x, method="iwae", k=256)
    assert iwae.kind == elbo.kind == "bound" and iwae.k == 256
    for low, high in ((elbo.values, iwae.values), (iwae.values, truth)):
        d = high - low
        assert float(d.mean()) > -3 * float(d.std()) / math.sqrt(d.numel())
    assert float((iwae.values - elbo.values).mean()) > 0


def test_discretized_decoder_is_a_probability_mass() -> None:
    levels = 4
    grid = torch.linspace(-1, 1, levels).reshape(-1, 1)
    for mean, std in ((0.1, 0.3), (-0.9, 0.05), (2.0, 1.0)):
        lp = discretized_gaussian_log_prob(grid, torch.full_like(grid, mean), torch.tensor(std),
                                           levels)  # fmt: skip
        assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_bits_per_dim_of_the_discretized_bound() -> None:
    torch.manual_seed(4)
    model = build_ddpm((6,), hidden=(8,), steps=5, decoder="discretized", levels=2, scale=2.0,
                       shift=-1.0).eval()  # fmt: skip
    x = torch.bernoulli(torch.full((20, 6), 0.5))
    est = model.estimate(x, k=2)
    # a bound on a probability mass: log P <= 0, and bits/dim is -mean / (D ln 2)
    assert bool((est.values <= 0).all())
    assert est.bits_per_dim(6) == pytest.approx(-est.mean / (6 * math.log(2)))
    with pytest.raises(ValueError, match="method"):
        model.estimate(x, method="exact")


def test_affine_input_map_is_in_the_density() -> None:
    torch.manual_seed(5)
    x = data(5)
    a = oracle(steps=20, atol=1e-9, rtol=1e-9)
    b = DDPM(GaussianEps("linear"), (2,), steps=20, scale=2.0, shift=0.0, atol=1e-9, rtol=1e-9)
    # the same chain on 2x: log p(x) = log p_y(2x) + D log 2
    torch.testing.assert_close(b.eval().estimate(x / 2, method="exact").values,
                               a.estimate(x, method="exact").values + 2 * math.log(2))  # fmt: skip


def test_training_reduces_l_simple_and_the_bound() -> None:
    torch.manual_seed(6)
    model = build_ddpm((2,), hidden=(32, 32), steps=50)
    x = data(2000)
    before = model.eval().estimate(x[:300]).mean
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        opt.zero_grad()
        model.loss(x[torch.randint(0, 2000, (128,))]).backward()
        opt.step()
    after = model.eval().estimate(x[:300]).mean
    assert after > before + 1.0


def test_run_defaults_and_bad_options() -> None:
    assert run_defaults("continuous", None, {}) == ({}, {})
    assert run_defaults("binary", 2, {"decoder": "discretized"})[0]["levels"] == 2
    for bad in ({"schedule": "quadratic"}, {"sampler": "euler"}, {"variance": "fitted"},
                {"decoder": "logistic"}, {"scale": 0.0}):  # fmt: skip
        with pytest.raises(ValueError):
            build_ddpm((2,), **bad)
    with pytest.raises((ValueError, TypeError), match="levels"):
        build_ddpm((2,), decoder="discretized")


def test_ode_likelihood_above_64_features_uses_hutchinson_in_evaluation_too() -> None:
    torch.manual_seed(0)
    small = build_ddpm((2,), hidden=(8,), steps=20)
    assert small.cnf.eval_divergence == "exact"
    with pytest.raises(ValueError, match="k"):
        small.estimate(torch.randn(3, 2), method="exact", k=2)
    big = build_ddpm((65,), hidden=(16,), steps=20, solver="rk4", ode_steps=4).double().eval()
    assert big.cnf.eval_divergence == "hutchinson"
    x = torch.randn(6, 65, dtype=torch.float64)
    est = big.estimate(x, method="exact", k=64)
    assert est.k == 64 and est.per_example_se is not None
    # unbiased: the probes' mean agrees with the exact trace on the same fixed-step path
    big.cnf.eval_divergence = "exact"
    exact = big.estimate(x, method="exact").values
    z = (est.values - exact) / est.per_example_se
    assert bool((z.abs() < 4).all()), z

"""Reverse-KL fitting and the importance-sampled normaliser, against targets with a known
log Z: recovery of a Gaussian, q = p exactly, standard errors that cover the truth, Jensen's
inequality, one mode against two, skipped non-finite steps, and argument errors."""

from __future__ import annotations

import math

import pytest
import torch

import tractable as tr
from tractable.checks import NonFiniteError
from tractable.variational import LogZEstimate, estimate_log_z, fit_reverse_kl, target

MEAN = [1.0, -1.0]
COV = [[2.0, 1.2], [1.2, 1.0]]
OFFSET = 2.5


def gaussian_flow(mean: list[float], cov: list[list[float]]) -> torch.nn.Module:
    """tr.flows.Gaussian(2) with its parameters set to N(mean, cov)."""
    flow = tr.flows.Gaussian(2)
    L = torch.linalg.cholesky(torch.tensor(cov))
    with torch.no_grad():
        flow.base.means.copy_(torch.tensor([mean]))
        flow.base.log_diag.copy_(L.diagonal().log()[None])
        flow.base.off_diag.copy_(torch.tril(L, -1)[None])
    return flow


def q_moments(flow: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    L = flow.base.scale_tril()[0].detach()
    return flow.base.means[0].detach(), L @ L.T


def test_fit_recovers_a_correlated_gaussian_and_its_log_z() -> None:
    t = target("gaussian", mean=MEAN, cov=COV, offset=OFFSET)
    flow = tr.flows.Gaussian(2)  # starts at N(0, I)
    r = fit_reverse_kl(flow, t, steps=500, lr=0.05, eval_samples=20_000, seed=0)
    mu, cov = torch.tensor(MEAN), torch.tensor(COV)
    # the fitted q itself: closed-form KL(q || p) is the ELBO gap; from N(0, I) it was 1.5
    m, S = q_moments(flow)
    normal = torch.distributions.MultivariateNormal
    kl = float(torch.distributions.kl_divergence(normal(m, S), normal(mu, cov)))
    assert kl < 1e-3, kl
    # q's draws against the truth, within 4 standard errors of n draws (~0.06 for the means,
    # ~0.1 for the covariances): a wrong mean or covariance would show
    n = 10_000
    x = flow.sample(n)
    assert bool(((x.mean(0) - mu).abs() < 4 * (cov.diagonal() / n).sqrt()).all())
    se = ((cov**2 + torch.outer(cov.diagonal(), cov.diagonal())) / n).sqrt()
    assert bool(((torch.cov(x.T) - cov).abs() < 4 * se).all())
    # log Z within 3 standard errors, the ELBO below it, the ESS near n
    assert abs(r.log_z - OFFSET) < 3 * r.log_z_se
    assert r.elbo <= r.log_z and r.elbo <= OFFSET + 3 * r.elbo_se
    assert r.ess_fraction > 0.99
    assert r.steps == 500 and len(r.history) == 500 and r.skipped_steps == 0
    # the loss starts near KL(N(0,I) || p) - log Z and ends near -log Z
    assert r.history[0] > -OFFSET + 1.0
    assert sum(r.history[-50:]) / 50 == pytest.approx(-OFFSET, abs=0.01)
    assert "ELBO" in r.summary() and "log Z" in r.summary()


def test_q_equal_to_p_gives_constant_weights() -> None:
    t = target("gaussian", mean=MEAN, cov=COV, offset=OFFSET)
    est = estimate_log_z(gaussian_flow(MEAN, COV), t, n=5000, seed=3)
    assert est.ess_fraction == pytest.approx(1.0, abs=1e-9)
    assert est.log_z == pytest.approx(OFFSET, abs=1e-10)
    assert est.elbo == pytest.approx(OFFSET, abs=1e-10)
    assert est.log_z_se < 1e-6 and est.elbo_se < 1e-6 and est.n == 5000


def test_importance_sampling_standard_errors_cover_the_truth() -> None:
    # a proposal wider than p (bounded weights): the delta-method interval should cover
    t = target("gaussian", mean=MEAN, cov=COV, offset=OFFSET)
    q = gaussian_flow([0.0, 0.0], [[6.0, 0.0], [0.0, 4.0]])
    est = estimate_log_z(q, t, n=4000, seed=0)
    assert abs(est.log_z - OFFSET) < 3 * est.log_z_se
    assert 0.2 < est.ess_fraction < 0.9  # a real test of the weights, not q = p
    z = []
    for seed in range(40):
        e = estimate_log_z(q, t, n=1000, seed=seed)
        z.append((e.log_z - OFFSET) / e.log_z_se)
    inside = sum(abs(v) < 2 for v in z) / len(z)
    assert inside >= 0.8  # nominally 95%; 40 repeats
    assert abs(sum(z) / len(z)) < 4 / math.sqrt(len(z))  # no bias beyond noise


def test_zero_weights_where_the_target_has_no_mass() -> None:
    # p = N(0, I) cut to x1 > 0, times e^2: log Z = 2 + log(1/2); q = N(0, I)
    normal = torch.distributions.Normal(0.0, 1.0)

    def half(x: torch.Tensor) -> torch.Tensor:
        log_p = normal.log_prob(x).sum(1) + 2.0
        return torch.where(x[:, 0] > 0, log_p, torch.full_like(log_p, -math.inf))

    est = estimate_log_z(gaussian_flow([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]), half, n=8000, seed=1)
    assert abs(est.log_z - (2.0 - math.log(2))) < 3 * est.log_z_se
    assert est.ess_fraction == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / 8000))
    assert est.elbo == -math.inf and est.elbo_se == math.inf
    assert LogZEstimate.from_log_weights(torch.full((3,), -math.inf)).ess == 0.0


def test_elbo_is_below_log_z_on_a_ring_with_annealing() -> None:
    t = target("u1")
    torch.manual_seed(0)
    flow = tr.flows.RealNVP(2, transforms=4, hidden=(32, 32))
    r = fit_reverse_kl(flow, t, steps=300, lr=3e-3, anneal=100, eval_samples=5000, seed=0)
    # Jensen: E_q[log w] <= log E_q[w] = log Z, on the sample and against the quadrature value
    assert r.elbo <= r.log_z
    assert r.elbo < t.log_z + 3 * r.elbo_se
    assert r.elbo > t.log_z - 1.0  # it did learn: a standard normal q has ELBO ~ -11
    assert all(math.isfinite(v) for v in r.history)
    # annealing: the first loss scores log p at beta = 0.01, E_q[log q] - 0.01 E_q[log p] ~ -2.8
    # for q near N(0, I); without annealing it is E_q[log q] + E_q[U1] ~ +2.8
    assert r.history[0] < -2.0


def test_reverse_kl_picks_one_mode_forward_kl_covers_both() -> None:
    t = target("mixture", separation=10.0, scale=0.5)

    def fractions(x: torch.Tensor) -> list[float]:
        near = torch.cdist(x, t.modes.to(x.dtype)) < 2.0  # 4 scales of each mode
        return near.double().mean(0).tolist()

    torch.manual_seed(0)
    rev = tr.flows.RealNVP(2, transforms=4, hidden=(32, 32))
    r = fit_reverse_kl(rev, t, steps=600, batch_size=128, lr=3e-3, eval_samples=4000, seed=0)
    torch.manual_seed(0)
    fwd = tr.flows.RealNVP(2, transforms=4, hidden=(32, 32))
    opt = torch.optim.Adam(fwd.parameters(), lr=3e-3)
    for _ in range(600):  # maximum likelihood on exact draws of p: KL(p || q)
        loss = fwd.loss(t.sample(128))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        f_rev, f_fwd = fractions(rev.sample(4000)), fractions(fwd.sample(4000))
    assert max(f_rev) > 0.97 and min(f_rev) < 0.01, f_rev
    assert min(f_fwd) > 0.3, f_fwd
    # missing a mode of weight 1/2 costs log 2 in the ELBO, and the importance-sampled log Z,
    # whose draws never visit that mode, is low by log 2 too, with a standard error blind to it
    assert r.elbo == pytest.approx(t.log_z - math.log(2), abs=0.1)
    assert r.log_z == pytest.approx(t.log_z - math.log(2), abs=0.05)
    assert abs(r.log_z - t.log_z) > 10 * r.log_z_se


def test_non_finite_steps_are_skipped_and_counted() -> None:
    t = target("gaussian")
    calls = {"n": 0}

    def flaky(x: torch.Tensor) -> torch.Tensor:
        # NaN at every third of the 30 training steps; the evaluation's draws are clean
        calls["n"] += 1
        nan = calls["n"] <= 30 and calls["n"] % 3 == 0
        return t.log_density(x) * (math.nan if nan else 1.0)

    flow = tr.flows.Gaussian(2)
    with pytest.warns(UserWarning, match="skipped 10 of 30 steps"):
        r = fit_reverse_kl(flow, flaky, steps=30, eval_samples=100, seed=0)
    assert r.skipped_steps == 10 and "(10 skipped)" in r.summary()
    assert [i for i, v in enumerate(r.history) if math.isnan(v)] == list(range(2, 30, 3))
    assert all(bool(torch.isfinite(p).all()) for p in flow.parameters())
    assert math.isfinite(r.log_z)
    with pytest.raises(NonFiniteError, match="not finite at every one of the 5 steps"):
        fit_reverse_kl(tr.flows.Gaussian(2), lambda x: x[:, 0] * math.nan, steps=5)


def test_seed_makes_the_fit_reproducible_and_leaves_the_global_generator() -> None:
    t = target("u1")
    results = []
    for _ in range(2):
        torch.manual_seed(5)
        flow = tr.flows.RealNVP(2, transforms=2, hidden=(8,))
        state = torch.random.get_rng_state()
        results.append(fit_reverse_kl(flow, t, steps=20, eval_samples=200, seed=11))
        assert torch.equal(torch.random.get_rng_state(), state)
    assert results[0].history == results[1].history and results[0].log_z == results[1].log_z


def test_bad_arguments_are_clear_errors() -> None:
    t = target("u1")
    flow = tr.flows.RealNVP(2, transforms=1, hidden=(4,))
    with pytest.raises(TypeError, match="log_density: expected a callable"):
        fit_reverse_kl(flow, 3.0)
    with pytest.raises(TypeError, match="flow: expected a tractable Flow"):
        fit_reverse_kl(torch.nn.Linear(2, 2), t)
    with pytest.raises(ValueError, match=r"log_density: expected to return shape \(256,\)"):
        fit_reverse_kl(flow, lambda x: t.log_density(x)[:, None], steps=3)
    with pytest.raises(TypeError, match="log_density: expected to return a torch.Tensor"):
        fit_reverse_kl(flow, lambda x: 0.0, steps=3)
    bad = [
        ({"steps": 0}, "steps: expected an int >= 1, got 0"),
        ({"batch_size": -4}, "batch_size: expected an int >= 1, got -4"),
        ({"lr": -1.0}, "lr: expected a finite float"),
        ({"schedule": "plateau"}, "schedule: expected one of constant, cosine"),
        ({"anneal": 50, "steps": 10}, "anneal: expected at most steps"),
        ({"anneal": -1}, "anneal: expected an int >= 0"),
        ({"eval_samples": 1}, "eval_samples: expected an int >= 2"),
        ({"grad_clip": 0.0}, "grad_clip: expected a finite float"),
        ({"seed": -2}, "seed: expected an int >= 0"),
    ]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            fit_reverse_kl(flow, t, **options)
    with pytest.raises(ValueError, match="flow: expected an unconditional flow"):
        fit_reverse_kl(tr.flows.RealNVP(2, context=3, transforms=1, hidden=(4,)), t)
    with pytest.raises(ValueError, match="pathwise gradient"):
        fit_reverse_kl(tr.flows.GaussianMixture(2, components=3), t)
    with pytest.raises(ValueError, match="n: expected an int >= 2"):
        estimate_log_z(flow, t, n=1)
    with pytest.raises(NonFiniteError, match="log_density: returned 5 NaN"):
        estimate_log_z(flow, lambda x: x[:, 0] * math.nan, n=5)

"""Flow matching against closed forms (float64): Gaussian data, whose optimal velocity field,
marginal densities and minimal loss are known exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tractable.flow_matching import (
    FlowMatching,
    build_flow_matching,
    ot_coupling,
    ot_permutation,
    reflow_pairs,
)

MU = torch.tensor([1.0, -0.5])
SIGMA = torch.tensor([[1.5, 0.6], [0.6, 0.8]])


class GaussianVelocity(nn.Module):
    r"""The optimal field :math:`E[u_t | x_t = x]` for data :math:`N(\mu, \Sigma)`:
    :math:`\mu + (t\Sigma - (1-\sigma)a I)(a^2 I + t^2 \Sigma)^{-1} (x - t\mu)`,
    :math:`a = 1 - (1 - \sigma) t`, in the eigenbasis of :math:`\Sigma`."""

    def __init__(self, mu: Tensor, sigma: Tensor, sigma_min: float = 0.0) -> None:
        super().__init__()
        lam, q = torch.linalg.eigh(sigma)
        self.register_buffer("mu", mu)
        self.register_buffer("lam", lam)
        self.register_buffer("q", q)
        self.s = sigma_min
        self.dummy = nn.Parameter(torch.zeros(()))  # a module with a parameter, like a network

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        a = 1.0 - (1.0 - self.s) * t
        coef = (t * self.lam - (1.0 - self.s) * a) / (a**2 + t**2 * self.lam)
        y = (x - t * self.mu) @ self.q
        return self.mu + (coef * y) @ self.q.T + 0.0 * self.dummy


def minimum(t: float, sigma_min: float) -> float:
    r""":math:`\operatorname{tr}(\operatorname{Var} u - C V^{-1} C)` at time ``t``."""
    a = 1.0 - (1.0 - sigma_min) * t
    eye = torch.eye(2)
    var_u = SIGMA + (1.0 - sigma_min) ** 2 * eye
    c = t * SIGMA - (1.0 - sigma_min) * a * eye
    v = a**2 * eye + t**2 * SIGMA
    return float(torch.trace(var_u - c @ torch.linalg.solve(v, c)))


def oracle(sigma_min: float = 0.0, **kwargs: object) -> FlowMatching:
    return FlowMatching(GaussianVelocity(MU, SIGMA, sigma_min), (2,), sigma_min=sigma_min,
                        **kwargs).eval()  # fmt: skip


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_exact_likelihood_of_the_optimal_field_is_the_gaussian_density(sigma_min: float) -> None:
    model = oracle(sigma_min, atol=1e-10, rtol=1e-10)
    x = MU + torch.randn(20, 2) @ torch.linalg.cholesky(SIGMA).T
    est = model.estimate(x)
    # the time-1 marginal: the data convolved with N(0, sigma_min^2 I)
    truth = torch.distributions.MultivariateNormal(MU, SIGMA + sigma_min**2 * torch.eye(2))
    assert est.kind == "exact"
    torch.testing.assert_close(est.values, truth.log_prob(x), atol=1e-7, rtol=0)


def test_samples_of_the_optimal_field_have_the_data_moments() -> None:
    torch.manual_seed(0)
    model = oracle(solver="rk4", steps=20)
    s = model.sample(4000)
    n = s.shape[0]
    assert (s.mean(0) - MU).abs().max() < 4 * math.sqrt(1.5 / n)
    torch.testing.assert_close(torch.cov(s.T), SIGMA, atol=0.1, rtol=0)
    # temperature scales the noise: at T = 0 every sample is the image of 0, the data mean
    # (the field is affine in x, so the flow maps the noise's mean to the data's)
    torch.testing.assert_close(model.sample(3, temperature=1e-9), MU.expand(3, 2), atol=1e-6,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize("sigma_min", [0.0, 0.2])
def test_loss_at_the_optimal_field_is_the_conditional_variance(sigma_min: float) -> None:
    torch.manual_seed(1)
    model = oracle(sigma_min)
    n = 200_000
    x1 = MU + torch.randn(n, 2) @ torch.linalg.cholesky(SIGMA).T
    x0 = torch.randn(n, 2)
    for t in (0.1, 0.5, 0.9):
        tt = torch.full((n,), t)
        xt, u = model.path(x0, x1, tt)
        err = (model.net(xt, tt) - u).detach().pow(2).sum(1)
        se = float(err.std()) / math.sqrt(n)
        assert float(err.mean()) == pytest.approx(minimum(t, sigma_min), abs=4 * se)
        assert float(model.pair_loss(x0, x1, t=tt).detach()) == pytest.approx(float(err.mean()))
    # the loss itself (t ~ U(0, 1)) against the integral of the minimum over t
    from scipy.integrate import quad

    integral = quad(lambda t: minimum(t, sigma_min), 0.0, 1.0)[0]
    loss = model.loss(x1).detach()
    assert float(loss) == pytest.approx(integral, abs=0.02)


def test_ot_coupling_of_identical_batches_is_the_identity() -> None:
    x = torch.randn(32, 3)
    assert torch.equal(ot_permutation(x, x), torch.arange(32))
    perm = torch.randperm(32)
    # a permuted copy is paired back with its original rows
    assert torch.equal(ot_coupling(x[perm], x)[0], x)


def test_ot_coupling_lowers_the_transport_cost() -> None:
    torch.manual_seed(2)
    x0, x1 = torch.randn(64, 2), torch.randn(64, 2) + 3.0
    y0, _ = ot_coupling(x0, x1)
    assert (y0 - x1).pow(2).sum() < (x0 - x1).pow(2).sum()
    assert sorted(ot_permutation(x0, x1).tolist()) == list(range(64))


@pytest.mark.parametrize(
    ("options", "seed"), [({"coupling": "ot"}, 3), ({"target": "stable"}, 11)], ids=["ot", "stable"]
)
def test_training_learns_a_gaussian(options: dict, seed: int) -> None:
    # minibatch OT couplings, and the stable target field, still learn the data's density
    torch.manual_seed(seed)
    model = build_flow_matching((2,), hidden=(32, 32), solver="rk4", steps=8, **options)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = MU + torch.randn(2000, 2) @ torch.linalg.cholesky(SIGMA).T
    for _ in range(300):
        batch = data[torch.randint(0, 2000, (128,))]
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    model.eval()
    truth = torch.distributions.MultivariateNormal(MU, SIGMA)
    nll = -float(model.estimate(data[:500]).mean)
    assert nll < -float(truth.log_prob(data[:500]).mean()) + 0.1


def test_hutchinson_estimate_has_a_standard_error_and_is_unbiased() -> None:
    torch.manual_seed(4)
    model = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=4, divergence="hutchinson")
    exact = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=4, divergence="exact")
    exact.load_state_dict(model.state_dict())
    model.eval(), exact.eval()
    x = torch.randn(3, 2)
    est = model.estimate(x, k=100)
    assert est.k == 100 and est.per_example_se is not None
    ref = exact.estimate(x).values
    assert ((est.values - ref).abs() <= 4 * est.per_example_se + 1e-9).all()
    with pytest.raises(ValueError, match="k"):
        exact.estimate(x, k=3)


def test_reflow_pairs_are_the_flows_own_map() -> None:
    torch.manual_seed(5)
    model = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=4).eval()
    z, x = reflow_pairs(model, 6)
    assert z.shape == x.shape == (6, 2)
    torch.testing.assert_close(model.transform(x)[0], z, atol=1e-3, rtol=0)
    loss = model.pair_loss(z, x)
    assert loss.shape == () and torch.isfinite(loss)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="coupling"):
        build_flow_matching((2,), coupling="sinkhorn")
    with pytest.raises(ValueError, match="sigma_min"):
        build_flow_matching((2,), sigma_min=1.5)
    with pytest.raises(ValueError, match="divergence"):
        build_flow_matching((2,), divergence="trace")


def test_unet_field_with_classifier_free_guidance() -> None:
    from tractable.nn.unet import UNet

    torch.manual_seed(6)
    model = build_flow_matching(
        (1, 8, 8), context=3, network="unet", width=4, drop=0.5, solver="rk4", steps=2
    )
    net = model.net
    assert isinstance(net, UNet)
    x, c = torch.randn(4, 1, 8, 8), torch.eye(3)[[0, 1, 2, 0]]
    loss = model.loss((x, torch.tensor([0, 1, 2, 0])))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    t = torch.rand(4)
    conditional, unconditional = net(x, t, c), net(x, t, None)
    net.guidance = 2.0
    torch.testing.assert_close(net(x, t, c), 3.0 * conditional - 2.0 * unconditional)
    assert model.eval().sample(2, c[:2]).shape == (2, 2, 1, 8, 8)
    # in training, a dropped class is the zero context
    net.train()
    net.drop = 0.999999
    torch.testing.assert_close(net(x, t, c), net(x, t, torch.zeros_like(c)))
    with pytest.raises(ValueError, match="network"):
        build_flow_matching((4,), network="unet")
    with pytest.raises(ValueError, match="divisible"):
        build_flow_matching((1, 7, 7), network="unet")


def test_weight_average_is_what_likelihoods_and_samples_use() -> None:
    torch.manual_seed(7)
    model = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=4, ema=0.9)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        model.loss(torch.randn(16, 2)).backward()
        opt.step()
    assert int(model.ema_steps) == 30
    assert all(not p.requires_grad for p in model.ema.parameters())
    pairs = zip(model.ema.parameters(), model.net.parameters(), strict=True)
    assert any(not torch.equal(e, p) for e, p in pairs)
    # the likelihood is that of the averaged field
    plain = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=4)
    plain.net.load_state_dict(model.ema.state_dict())
    x = torch.randn(4, 2)
    torch.testing.assert_close(model.eval().estimate(x).values, plain.eval().estimate(x).values)
    with pytest.raises(ValueError, match="ema"):
        build_flow_matching((2,), ema=1.0)


class GradModeProbe(nn.Module):
    r"""A field that records, at each call, whether autograd records it (the CNF's divergence
    needs it; a solve of the velocity alone does not)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.grad_modes = net, []

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        self.grad_modes.append(torch.is_grad_enabled())
        return self.net(x, t, context)


class Cubic(nn.Module):
    r""":math:`v(x, t) = x^3`: it blows up in finite time from far enough out."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        return x.pow(3) + self.dummy


def test_sampling_solves_the_velocity_ode_without_the_divergence() -> None:
    # a fixed-step solver: the very samples of sample_and_log_prob from the same noise
    model = build_flow_matching((2,), hidden=(16, 16), solver="rk4", steps=6).eval()
    torch.manual_seed(8)
    x, log_p = model.sample_and_log_prob(5)
    torch.manual_seed(8)
    torch.testing.assert_close(model.sample(5), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(model.estimate(x).values, log_p, atol=1e-4, rtol=0)
    # dopri5: the same map up to its tolerance, and the field is never differentiated
    probe = GradModeProbe(GaussianVelocity(MU, SIGMA))
    model = FlowMatching(probe, (2,), atol=1e-9, rtol=1e-9).eval()
    torch.manual_seed(9)
    x, _ = model.sample_and_log_prob(6)
    assert probe.grad_modes and all(probe.grad_modes)  # the divergence's graph
    probe.grad_modes.clear()
    torch.manual_seed(9)
    y = model.sample(6)
    assert probe.grad_modes and not any(probe.grad_modes)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_sampling_failures_are_said() -> None:
    model = FlowMatching(Cubic(), (2,), solver="rk4", steps=4).eval()
    assert bool(torch.isfinite(model.sample(3, temperature=0.1)).all())
    with pytest.raises(ValueError, match="temperature 1e\\+06"):
        model.sample(3, temperature=1e6)
    torch.manual_seed(10)
    with pytest.raises(RuntimeError, match="non-finite"):
        model.sample(50)


def test_samples_are_differentiable_in_the_weights() -> None:
    model = build_flow_matching((2,), hidden=(8,), solver="rk4", steps=3)
    model.rsample(4).pow(2).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.net.parameters())
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, context=torch.zeros(1, 3))


def test_likelihood_loss_is_the_exact_negative_log_likelihood() -> None:
    torch.manual_seed(11)
    model = FlowMatching(GaussianVelocity(MU, SIGMA), (2,), likelihood_steps=40)
    x = MU + torch.randn(30, 2) @ torch.linalg.cholesky(SIGMA).T
    truth = torch.distributions.MultivariateNormal(MU, SIGMA)
    loss = model.likelihood_loss(x)
    torch.testing.assert_close(loss, -truth.log_prob(x).mean(), atol=1e-6, rtol=0)
    # differentiable in the weights, and equal to the CNF's own solve of the same steps
    net = build_flow_matching((2,), hidden=(8, 8), solver="rk4", steps=5, likelihood_steps=5)
    loss = net.likelihood_loss(x)
    loss.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in net.net.parameters())
    torch.testing.assert_close(loss.detach(), -net.eval().estimate(x).values.mean(), atol=1e-10,
                               rtol=0)  # fmt: skip


def test_training_switches_to_maximum_likelihood_after_the_given_losses() -> None:
    torch.manual_seed(12)
    model = build_flow_matching((2,), hidden=(8,), likelihood_after=3, likelihood_steps=4, ema=0.5)
    x = torch.randn(16, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for k in range(5):
        opt.zero_grad()
        loss = model.loss(x)
        nll = model.likelihood_loss(x).detach()
        if k < 3:  # the flow-matching loss draws times and noise: not the likelihood
            assert not torch.allclose(loss.detach(), nll)
        else:
            torch.testing.assert_close(loss.detach(), nll)
        loss.backward()
        opt.step()
    assert int(model.train_losses) == 5 and int(model.ema_steps) == 5
    # evaluation (a validation loss) stays the flow-matching loss and counts nothing
    model.eval()
    with torch.no_grad():
        model.loss(x)
    assert int(model.train_losses) == 5
    assert "train_losses" in model.state_dict()
    assert "train_losses" not in build_flow_matching((2,), hidden=(8,)).state_dict()
    # the count is part of the weights: a model loaded from them (a resumed run) goes on
    # with the likelihood, one built afresh starts with flow matching
    loaded = build_flow_matching((2,), hidden=(8,), likelihood_after=3, likelihood_steps=4, ema=0.5)
    fresh = build_flow_matching((2,), hidden=(8,), likelihood_after=3, likelihood_steps=4, ema=0.5)
    loaded.load_state_dict(model.state_dict())
    fresh.net.load_state_dict(model.net.state_dict())
    nll = model.train().likelihood_loss(x).detach()
    torch.testing.assert_close(loaded.train().loss(x).detach(), nll)
    assert not torch.allclose(fresh.train().loss(x).detach(), nll)


def test_training_time_distributions() -> None:
    torch.manual_seed(13)
    model = build_flow_matching((2,), hidden=(8,), times="logit-normal")
    t = model._times(torch.zeros(100_000, 2))
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.mean())) < 0.02 and abs(float(logit.std()) - 1.0) < 0.02
    # stratified: one time in each of the N strata, in random order; each one U(0, 1)
    model = build_flow_matching((2,), hidden=(8,), times="stratified")
    t = model._times(torch.zeros(64, 2))
    assert sorted((t * 64).floor().long().tolist()) == list(range(64))
    assert not torch.equal(t.argsort(), torch.arange(64))
    first = torch.stack([model._times(torch.zeros(8, 2))[0] for _ in range(20_000)])
    assert abs(float(first.mean()) - 0.5) < 0.01 and abs(float(first.var()) - 1 / 12) < 0.003
    with pytest.raises(ValueError, match="times"):
        build_flow_matching((2,), times="beta")
    with pytest.raises(ValueError, match="likelihood_steps"):
        build_flow_matching((2,), likelihood_steps=0)


def test_stable_target_over_a_finite_data_set_is_its_marginal_field() -> None:
    # with the whole data set as the reference, the stable target is the marginal field of
    # the path p_t(x) = mean_k N(x; t x_k, a_t^2 I): it satisfies the continuity equation
    # d p_t / dt + div(p_t v) = 0, checked by autograd (float64)
    torch.manual_seed(6)
    atoms = torch.randn(5, 2, dtype=torch.float64) * 2.0
    for sigma_min in (0.0, 0.1):
        model = build_flow_matching((2,), hidden=(8,), sigma_min=sigma_min, target="stable")
        t = torch.rand(40, dtype=torch.float64).mul(0.98).add(0.01).requires_grad_(True)
        a = (1.0 - (1.0 - sigma_min) * t).unsqueeze(1)
        # points on the paths, where the density is not negligible
        x = t.detach().unsqueeze(1) * atoms[torch.arange(40) % 5]
        x = (x + a.detach() * torch.randn(40, 2, dtype=torch.float64)).requires_grad_(True)
        d2 = (x.unsqueeze(1) - t.reshape(-1, 1, 1) * atoms).pow(2).sum(-1)
        p = (torch.exp(-d2 / (2 * a**2)) / (2 * math.pi * a**2)).mean(1)
        v = model.stable_target(x, t, atoms)
        flux = p.unsqueeze(1) * v
        dp_dt = torch.autograd.grad(p.sum(), t, create_graph=True)[0]
        div = sum(torch.autograd.grad(flux[:, d].sum(), x, retain_graph=True)[0][:, d]
                  for d in range(2))  # fmt: skip
        # relative to the density, which varies over orders of magnitude between the points
        residual = ((dp_dt + div) / p).detach()
        torch.testing.assert_close(residual, torch.zeros_like(residual), atol=1e-9, rtol=0)
        # and the equation is not met trivially: each term is of order 1 relative to p
        assert float((dp_dt / p).detach().abs().median()) > 0.1


def test_stable_target_of_a_batch_of_one_is_the_conditional_target() -> None:
    torch.manual_seed(7)
    model = build_flow_matching((2,), hidden=(8,), sigma_min=0.05, target="stable")
    x0, x1, t = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6)
    xt, u = model.path(x0, x1, t)
    for i in range(6):  # each point's own data point as its only reference
        got = model.stable_target(xt[i : i + 1], t[i : i + 1], x1[i : i + 1])
        torch.testing.assert_close(got, u[i : i + 1], atol=1e-5, rtol=1e-5)


def test_stable_target_approaches_the_gaussian_field_as_the_reference_grows() -> None:
    # Gaussian data: the optimal field v* is known. The sample's own u_t misses it by the
    # conditional variance (the flow-matching minimum); the stable target with the sample's
    # own x1 and M - 1 independent draws misses it by less, and by less as M grows
    # (Xu et al. 2023: the bias and variance vanish as the reference grows).
    torch.manual_seed(8)
    sigma_min, n, t_val = 0.05, 400, 0.5
    field = GaussianVelocity(MU.double(), SIGMA.double(), sigma_min)
    model = build_flow_matching((2,), hidden=(8,), sigma_min=sigma_min, target="stable")
    chol = torch.linalg.cholesky(SIGMA.double())

    def draw(k: int) -> Tensor:
        return MU.double() + torch.randn(k, 2, dtype=torch.float64) @ chol.T

    x1, x0 = draw(n), torch.randn(n, 2, dtype=torch.float64)
    t = torch.full((n,), t_val, dtype=torch.float64)
    xt, u = model.path(x0, x1, t)
    best = field(xt, t).detach()
    conditional = float((u - best).pow(2).sum(1).mean())
    assert conditional == pytest.approx(minimum(t_val, sigma_min), rel=0.25)
    errors = []
    for m in (16, 256, 4096):
        targets = torch.cat([model.stable_target(xt[i : i + 1], t[i : i + 1],
                                                 torch.cat([x1[i : i + 1], draw(m - 1)]))
                             for i in range(n)])  # fmt: skip
        errors.append(float((targets - best).pow(2).sum(1).mean()))
    assert conditional > errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * conditional


def test_stable_target_with_a_context_averages_over_the_same_context_only() -> None:
    torch.manual_seed(9)
    model = build_flow_matching((2,), context=3, hidden=(8,), target="stable")
    ref = torch.randn(30, 2)
    ref_c = torch.nn.functional.one_hot(torch.arange(30) % 3, 3).float()
    xt, t = torch.randn(5, 2), torch.rand(5)
    c = ref_c[:5]
    got = model.stable_target(xt, t, ref, c, ref_c)
    for i in range(5):
        same = ref[(ref_c == c[i]).all(1)]
        want = model.stable_target(xt[i : i + 1], t[i : i + 1], same)
        torch.testing.assert_close(got[i : i + 1], want)
    loss = model.loss((torch.randn(12, 2), torch.arange(12) % 3))
    assert loss.shape == () and torch.isfinite(loss)


def test_stable_target_queue_keeps_the_latest_training_examples() -> None:
    torch.manual_seed(10)
    model = build_flow_matching((2,), hidden=(8,), target="stable", reference=10)
    a, b = torch.randn(8, 2), torch.randn(8, 2)
    model.loss(a).backward()
    model.loss(b).backward()
    # the newest first: b, then the first two of a
    torch.testing.assert_close(model._queue[0], torch.cat([b, a[:2]]))
    model.eval()
    with torch.no_grad():
        model.loss(torch.randn(8, 2))  # validation neither adds to nor drops the queue
    torch.testing.assert_close(model._queue[0], torch.cat([b, a[:2]]))
    assert "_queue" not in str(list(model.state_dict()))


def test_stable_target_options_are_checked() -> None:
    with pytest.raises(ValueError, match="target"):
        build_flow_matching((2,), target="posterior")
    with pytest.raises(ValueError, match="target"):
        build_flow_matching((2,), target="stable", coupling="ot")
    with pytest.raises(ValueError, match="reference"):
        build_flow_matching((2,), reference=64)
    with pytest.raises(ValueError, match="reference"):
        build_flow_matching((2,), target="stable", reference=-1)


def test_continuous_data_get_the_measured_settings_where_the_user_gave_none() -> None:
    from tractable.flow_matching.builders import CONTINUOUS, run_defaults

    opts, prep = run_defaults("continuous", None, {})
    assert opts == {**CONTINUOUS, "target": "stable"} and prep == {}
    mine = {"hidden": [8], "time_scale": 10.0, "target": "conditional"}
    assert run_defaults("continuous", None, mine)[0] == {**mine, "sigma_min": 0.05}
    # OT couplings keep the conditional target (the stable one refuses them)
    opts = run_defaults("continuous", None, {"coupling": "ot"})[0]
    assert opts["target"] == "conditional"
    build_flow_matching((2,), **opts)  # a valid combination
    # images keep the builder's defaults
    assert run_defaults("discrete", 256, {})[0] == {}
    assert run_defaults("binary", 2, {})[0] == {}

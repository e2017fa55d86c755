"""Learned reverse variances and the hybrid objective (Nichol and Dhariwal 2021), float64:
the bound at the ends of the interpolation against the fixed-variance bounds, the closed-form
KL, the stop-gradient, and the generic protocol tests on the new configurations."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tractable.diffusion import (
    DDPM,
    StepSampler,
    build_ddpm,
    discrete,
    split_output,
    with_variance_output,
)
from tractable.nn.time import time_mlp
from tractable.nn.unet import UNet

from ..protocol import test_generic as generic
from ..protocol.cases import Case
from .test_ddpm import MU, SIGMA, GaussianEps, data


class WithV(nn.Module):
    r"""The optimal ε of :class:`GaussianEps` with a given :math:`v`: a constant, or a table
    ``(T, D)`` of parameters indexed by the step :math:`t = sT`."""

    def __init__(self, v: float | Tensor, steps: int, schedule: str = "linear") -> None:
        super().__init__()
        self.eps = GaussianEps(schedule)
        self.steps = steps
        table = torch.full((steps, 2), float(v)) if isinstance(v, float) else v
        self.v = nn.Parameter(table.clone())

    def forward(self, y: Tensor, s: Tensor, context: Tensor | None = None) -> Tensor:
        t = (s.reshape(-1) * self.steps).round().long().expand(y.shape[0])
        return torch.cat([self.eps(y, s), self.v[t - 1]], dim=1)


def learned(v: float | Tensor, steps: int, **kwargs: object) -> DDPM:
    return DDPM(WithV(v, steps), (2,), steps=steps, variance="learned", objective="hybrid",
                **kwargs).eval()  # fmt: skip


def fixed(variance: str, steps: int, **kwargs: object) -> DDPM:
    return DDPM(GaussianEps("linear"), (2,), steps=steps, variance=variance, **kwargs).eval()


def seeded_terms(model: DDPM, y0: Tensor, seed: int = 0) -> Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.vlb_terms(y0, None)


def test_v_one_gives_the_bound_with_beta() -> None:
    y0 = data(200)
    got = seeded_terms(learned(1.0, 30), y0)
    ref = seeded_terms(fixed("beta", 30), y0)
    # exp(1 log beta + 0 log beta~) is beta to rounding, every term and the decoder too
    torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-11)
    # and the whole bound through estimate, the same draws
    torch.manual_seed(1)
    a = learned(1.0, 30).estimate(y0, k=2).values
    torch.manual_seed(1)
    b = fixed("beta", 30).estimate(y0, k=2).values
    torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_v_zero_gives_the_bound_with_beta_tilde() -> None:
    y0 = data(200)
    steps = 30
    got = seeded_terms(learned(0.0, steps), y0)
    ref = seeded_terms(fixed("posterior", steps), y0)
    # the KL terms L_1 .. L_{T-1} and L_T: sigma^2 = beta~_t
    torch.testing.assert_close(got[:, 1:], ref[:, 1:], rtol=1e-11, atol=1e-11)
    # the decoder: fixed "posterior" uses beta_1 there (beta~_1 = 0); the learned variance's
    # lower end at t = 1 is beta~_2 (Nichol and Dhariwal 2021), computed here by hand
    a = discrete("linear", steps)
    beta2 = 1 - a[2] / a[1]
    tilde2 = (1 - a[1]) / (1 - a[2]) * beta2
    model = learned(0.0, steps)
    torch.manual_seed(0)
    one = torch.ones(200, dtype=torch.long)
    y1 = model.q_sample(y0, one)
    mean = model.reverse_mean(y1, one, None)
    expected = -torch.distributions.Normal(mean, tilde2.sqrt()).log_prob(y0).sum(1)
    torch.testing.assert_close(got[:, 0], expected, rtol=1e-11, atol=1e-11)
    assert float((got[:, 0] - ref[:, 0]).abs().max()) > 0.1  # the two decoders do differ


def test_step_term_is_the_closed_form_gaussian_kl() -> None:
    torch.manual_seed(3)
    steps, n = 40, 64
    model = learned(0.0, steps)
    y0, yt = data(n), torch.randn(n, 2)
    t = torch.randint(2, steps + 1, (n,))
    eps, v = torch.randn(n, 2), 2 * torch.rand(n, 2) - 0.5  # v also outside [0, 1]
    got = model.step_terms(y0, yt, t, eps, v)
    # everything by hand from the schedule's alpha_bar
    ab = discrete("linear", steps)
    a_t, a_p = ab[t].unsqueeze(1), ab[t - 1].unsqueeze(1)
    b = 1 - a_t / a_p
    mean_q = (a_p.sqrt() * b * y0 + (1 - b).sqrt() * (1 - a_p) * yt) / (1 - a_t)
    var_q = (1 - a_p) / (1 - a_t) * b
    mean_p = (yt - b / (1 - a_t).sqrt() * eps) / (1 - b).sqrt()
    var_p = torch.exp(v * b.log() + (1 - v) * var_q.log())
    q = torch.distributions.Normal(mean_q, var_q.sqrt().expand(n, 2))
    p = torch.distributions.Normal(mean_p, var_p.sqrt())
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # rows at t = 1 get the decoder's -log p(x_0 | x_1) with sigma^2 = beta_1^v beta~_2^(1-v)
    t1 = torch.ones(n, dtype=torch.long)
    b1, b2 = 1 - ab[1], 1 - ab[2] / ab[1]
    var1 = torch.exp(v * b1.log() + (1 - v) * ((1 - ab[1]) / (1 - ab[2]) * b2).log())
    mean1 = (yt - b1 / (1 - ab[1]).sqrt() * eps) / (1 - b1).sqrt()
    nll = -torch.distributions.Normal(mean1, var1.sqrt()).log_prob(y0).sum(1)
    torch.testing.assert_close(model.step_terms(y0, yt, t1, eps, v), nll, rtol=1e-12, atol=1e-12)


def output_gradient(model: DDPM, x: Tensor, seed: int) -> Tensor:
    r"""The loss's gradient with respect to the network's output ``(N, 2D)``."""
    seen = []
    handle = model.net.register_forward_hook(lambda m, i, out: seen.append(out))
    torch.manual_seed(seed)
    loss = model.train().loss(x)
    handle.remove()
    (grad,) = torch.autograd.grad(loss, seen[0])
    return grad


def test_hybrid_stops_the_vlb_gradient_to_the_mean() -> None:
    x = data(32)
    model = build_ddpm((2,), hidden=(16,), steps=20, variance="learned", objective="hybrid")
    small = output_gradient(model, x, seed=4)
    model.vlb_weight = 10.0
    large = output_gradient(model, x, seed=4)
    # the difference is (10 - 0.001) x the L_vlb term's gradient: none to epsilon, some to v
    d_eps, d_v = (large - small).chunk(2, dim=1)
    assert torch.equal(d_eps, torch.zeros_like(d_eps))
    assert float(d_v.abs().max()) > 1e-6
    # and the epsilon half is exactly L_simple's gradient 2 (eps_hat - eps) / (N D)
    seen = []
    handle = model.net.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
    torch.manual_seed(4)
    model.loss(x)
    handle.remove()
    torch.manual_seed(4)
    torch.randint(1, 21, (32,))  # the loss draws t, then the noise
    noise = torch.randn(32, 2)
    eps_hat = split_output(seen[0], (2,))[0]
    torch.testing.assert_close(small.chunk(2, dim=1)[0], 2 * (eps_hat - noise) / 64)
    # without the stop-gradient (the "vlb" objective) the mean does get L_vlb's gradient
    vlb = build_ddpm((2,), hidden=(16,), steps=20, variance="learned", objective="vlb")
    assert float(output_gradient(vlb, x, seed=4).chunk(2, dim=1)[0].abs().max()) > 1e-6


def test_ancestral_sampling_uses_the_learned_variance() -> None:
    for v, variance in ((1.0, "beta"), (0.0, "posterior")):
        torch.manual_seed(5)
        a = learned(v, 25).sample(300)
        torch.manual_seed(5)
        b = fixed(variance, 25).sample(300)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.manual_seed(5)
    c = learned(0.5, 25).sample(300)
    assert float((c - b).abs().max()) > 1e-3


def test_ddim_and_the_ode_ignore_v() -> None:
    x = data(8)
    for sampler in ("ddim", "ode"):
        options = {"sampler": sampler, "solver": "rk4", "ode_steps": 20, "sample_steps": 10}
        torch.manual_seed(6)
        a = learned(3.0, 25, **options).sample(50)
        torch.manual_seed(6)
        b = fixed("beta", 25, **options).sample(50)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    options = {"solver": "rk4", "ode_steps": 20}
    got = learned(-2.0, 25, **options).estimate(x, method="exact").values
    torch.testing.assert_close(got, fixed("beta", 25, **options).estimate(x, method="exact").values)


def test_hybrid_training_learns_a_variance_better_than_both_fixed_ones() -> None:
    # the optimal mean for Gaussian data and a table of v per step and dimension, trained by
    # the hybrid objective alone (L_simple has no gradient for v); T = 4, where the fixed
    # choices leave the largest gaps
    torch.manual_seed(7)
    steps = 4
    model = learned(0.5, steps)
    opt = torch.optim.Adam([model.net.v], lr=0.05)
    model.train()
    for _ in range(300):
        opt.zero_grad()
        model.loss(data(256)).backward()
        opt.step()
    x = data(4000)
    truth = torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)
    gaps = {}
    for name, m in (("learned", model.eval()), ("beta", fixed("beta", steps)),
                    ("posterior", fixed("posterior", steps))):  # fmt: skip
        torch.manual_seed(8)  # the same draws of x_t for the three
        gaps[name] = truth - m.estimate(x, k=8).values
    for other in ("beta", "posterior"):
        d = gaps[other] - gaps["learned"]  # paired per example
        assert float(d.mean()) > 3 * float(d.std()) / math.sqrt(d.numel()), (other, gaps)


def test_step_sampler_importance_and_history() -> None:
    s = StepSampler(3, history=2)
    t, w = s.draw(5, torch.float64)
    assert bool(((t >= 1) & (t <= 3)).all()) and torch.equal(w, torch.full((5,), 3.0))
    s.update(torch.tensor([1, 1, 2, 2, 3]), torch.tensor([1.0, 3.0, 2.0, 2.0, 4.0]))
    assert s.probabilities() is None  # step 3 has one value of two
    s.update(torch.tensor([3, 1]), torch.tensor([4.0, 5.0]))  # step 1: 1.0 goes out
    assert sorted(s.values[0].tolist()) == [3.0, 5.0] and s.writes.tolist() == [3, 2, 2]
    root = torch.tensor([math.sqrt(17.0), 2.0, 4.0], dtype=torch.float64)
    expected = 0.999 * root / root.sum() + 0.001 / 3
    torch.testing.assert_close(s.probabilities(), expected)
    torch.manual_seed(9)
    t, w = s.draw(20_000, torch.float64)
    torch.testing.assert_close(w, 1 / expected[t - 1])
    freq = torch.bincount(t - 1, minlength=3).double() / 20_000
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)
    # the history is state: a fresh sampler loaded from it draws the same steps
    fresh = StepSampler(3, history=2)
    fresh.load_state_dict(s.state_dict())
    torch.manual_seed(10)
    a = s.draw(7, torch.float64)[0]
    torch.manual_seed(10)
    assert torch.equal(fresh.draw(7, torch.float64)[0], a)
    # within one batch, only a step's latest values are kept, in the batch's order
    r = StepSampler(2, history=2)
    r.update(torch.tensor([2, 2, 1, 2]), torch.tensor([7.0, 8.0, 6.0, 9.0]))
    assert sorted(r.values[1].tolist()) == [8.0, 9.0] and r.values[0].tolist() == [6.0, 0.0]
    r.update(torch.tensor([1, 2, 1]), torch.tensor([2.0, 3.0, 4.0]))
    assert r.writes.tolist() == [3, 4]
    assert sorted(r.values[0].tolist()) == [2.0, 4.0] and sorted(r.values[1].tolist()) == [3.0, 9.0]


def test_vlb_objective_with_importance_sampling_is_unbiased() -> None:
    # at fixed weights, E over t ~ p of L_t / p_t is the sum of the terms, as with uniform t
    torch.manual_seed(11)
    model = DDPM(WithV(0.3, 6), (2,), steps=6, variance="learned", objective="vlb",
                 step_sampling="importance").eval()  # fmt: skip
    sampler = model.step_sampler
    sampler.values.copy_(torch.rand(6, 10) * torch.arange(1.0, 7.0).unsqueeze(1))
    sampler.writes.fill_(10)
    assert sampler.probabilities() is not None
    y = data(1).expand(2000, 2)
    with torch.no_grad():
        # means over 2,000 draws of (t, x_t), 20 times: by importance and over every step
        imp = torch.stack([model._vlb_loss(y, None) for _ in range(20)])
        full = torch.stack([model.vlb_terms(y, None)[:, :-1].sum(1).mean() for _ in range(20)])
    se = math.sqrt(float(imp.var() + full.var()) / 20)
    assert abs(float(imp.mean() - full.mean())) < 4 * se, (imp.mean(), full.mean(), se)
    assert float(imp.std()) > 0


def test_networks_with_a_variance_output() -> None:
    mlp = build_ddpm((3,), hidden=(8,), steps=5, variance="learned", objective="hybrid")
    assert mlp.net(torch.randn(4, 3), torch.rand(4)).shape == (4, 6)
    image = build_ddpm((1, 8, 8), network="mlp", hidden=(8,), steps=5, variance="learned",
                       objective="hybrid")  # fmt: skip
    assert image.net(torch.randn(4, 1, 8, 8), torch.rand(4)).shape == (4, 2, 8, 8)
    unet = build_ddpm((1, 8, 8), network="unet", width=8, steps=5, variance="learned",
                      objective="hybrid")  # fmt: skip
    assert isinstance(unet.net, UNet)
    assert unet.net(torch.randn(4, 1, 8, 8), torch.rand(4)).shape == (4, 2, 8, 8)
    # the fixed-variance networks keep their output
    assert build_ddpm((3,), hidden=(8,), steps=5).net(torch.randn(4, 3), torch.rand(4)).shape == (
        4, 3)  # fmt: skip
    with pytest.raises(TypeError, match="net"):
        with_variance_output(nn.Linear(3, 3), (3,))


def test_bad_options_are_refused() -> None:
    for bad, name in (
        ({"variance": "learned"}, "objective"),  # L_simple cannot train v
        ({"objective": "hybrid"}, "objective"),  # nothing for the stopped L_vlb to train
        ({"objective": "vlb", "step_sampling": "stratified"}, "step_sampling"),
        ({"variance": "learned", "objective": "hybrid", "step_sampling": "importance"},
         "step_sampling"),
        ({"variance": "learned", "objective": "hybrid", "vlb_weight": 0.0}, "vlb_weight"),
        ({"variance": "learned", "objective": "hybrid", "steps": 1}, "steps"),
        ({"objective": "elbo"}, "objective"),
    ):  # fmt: skip
        options = {"hidden": (8,), "steps": 5, **bad}
        with pytest.raises(ValueError, match=name):
            build_ddpm((2,), **options)
    with pytest.raises(TypeError, match="vlb_weight"):
        build_ddpm((2,), variance="learned", objective="hybrid", vlb_weight="0.1")
    # a network without the v output
    model = DDPM(time_mlp((2,), hidden=(8,)), (2,), steps=5, variance="learned",
                 objective="hybrid")  # fmt: skip
    with pytest.raises(ValueError, match="net"):
        model.loss(torch.randn(4, 2))


def test_extra_log_has_the_hybrid_parts() -> None:
    model = build_ddpm((2,), hidden=(8,), steps=5, variance="learned", objective="hybrid")
    loss = model.train().loss(data(16))
    log = model.extra_log()
    assert set(log) == {"l_simple", "l_vlb_bpd"}
    assert float(loss.detach()) == pytest.approx(
        log["l_simple"] + 0.001 * log["l_vlb_bpd"], rel=1e-12
    )


# -- the generic protocol tests (tests/protocol) on the new configurations ----------------------
CASES = [
    Case("ddpm-learned-hybrid", "ddpm", (3,), {"hidden": [8], "steps": 5, "solver": "rk4",
         "ode_steps": 4, "variance": "learned", "objective": "hybrid"}),
    Case("ddpm-learned-hybrid-unet", "ddpm", (1, 8, 8), {"network": "unet", "width": 4,
         "steps": 4, "solver": "rk4", "ode_steps": 2, "variance": "learned",
         "objective": "hybrid", "scale": 2.0, "shift": -1.0}),
    # two steps, so that the importance sampler's history fills within the resume test
    Case("ddpm-learned-vlb-importance", "ddpm", (3,), {"hidden": [8], "steps": 2,
         "solver": "rk4", "ode_steps": 4, "variance": "learned", "objective": "vlb",
         "step_sampling": "importance"}),
]  # fmt: skip
# every generic test that takes a case, but those of exact models (this one is a bound)
ONLY_EXACT = ("test_exact_estimate_is_log_prob", "test_sample_and_log_prob_agrees_with_estimate")
GENERIC = [
    f
    for name, f in sorted(vars(generic).items())
    if name.startswith("test_")
    and callable(f)
    and "case" in inspect.signature(f).parameters
    and name not in ONLY_EXACT
]


def test_the_generic_list_is_complete() -> None:
    names = {f.__name__ for f in GENERIC}
    for must in (
        "test_resume_is_bitwise_exact",
        "test_library_format_round_trip",
        "test_elbo_is_below_iwae_at_larger_k",
        "test_estimate_of_every_method",
    ):
        assert must in names


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("check", GENERIC, ids=[f.__name__ for f in GENERIC])
def test_generic_protocol(check, case: Case, tmp_path: Path) -> None:  # noqa: ANN001
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in inspect.signature(check).parameters else {}
    check(case, **kwargs)


def test_importance_history_fills_within_the_resume_test() -> None:
    # the resume test above checks the sampler's state only if its history fills: 4 batches
    # of 8 (the resume test trains 5) fill 10 values for each of the 2 steps
    model = CASES[2].build()
    model.train()
    for _ in range(4):
        model.loss(CASES[2].inputs(8))
    assert model.step_sampler.probabilities() is not None

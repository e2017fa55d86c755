"""Multiscale image flows (Glow, multiscale RealNVP), their utilities, and variational
dequantization."""

from __future__ import annotations

import math

import numpy as np
import pytest
import safetensors.torch
import scipy.stats
import torch

import tractable as tr
from tractable.data.dequantization import VariationalDequantizer
from tractable.data.preprocess import Preprocessor
from tractable.flows.image import (
    Glow,
    MultiscaleFlow,
    MultiscaleRealNVP,
    interpolate,
)
from tractable.registry import MODELS

from ..transforms.registry import randomize

SHAPE = (1, 4, 4)
IMAGE_BUILDERS = {"glow": Glow, "multiscale-realnvp": MultiscaleRealNVP}
TINY = {
    "glow": dict(levels=2, depth=2, hidden=4),
    "glow-additive-plain": dict(levels=2, depth=1, hidden=4, coupling="additive", lu=False),
    "multiscale-realnvp": dict(levels=2, depth=1, hidden=4, blocks=1),
    "multiscale-realnvp-batch": dict(levels=2, depth=1, hidden=4, blocks=1, norm="batch"),
}


def make(key: str, shape=SHAPE, scale: float = 0.2, **extra: object) -> MultiscaleFlow:
    """A tiny flow with data-dependent layers initialised, then moved off the identity."""
    flow = IMAGE_BUILDERS[key.split("-additive")[0].split("-batch")[0]](shape, **TINY[key], **extra)
    c = torch.randn(64, extra["context"]) if extra.get("context") else None
    flow.log_prob(torch.randn(64, *shape), c)  # ActNorm / BatchNorm see data first
    randomize(flow, scale)
    return flow.eval()


keys = sorted(TINY)


def test_builders_table() -> None:
    image_flows = {n: e.builder() for n, e in MODELS.items() if e.family == "image flow"}
    assert image_flows == IMAGE_BUILDERS


@pytest.mark.parametrize("key", keys)
def test_shapes_and_public_surface(key: str) -> None:
    flow = make(key)
    x = torch.randn(5, *SHAPE)
    assert flow.log_prob(x).shape == (5,)
    z, ladj = flow.transform(x)
    assert z.shape == (5, 16) and ladj.shape == (5,)
    assert sum(math.prod(s) for s in flow.latent_shapes) == 16
    assert flow.sample(3).shape == (3, *SHAPE)
    loss = flow.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert flow.loss((x,)) == loss


@pytest.mark.parametrize("key", keys)
def test_whole_model_is_invertible(key: str) -> None:
    flow = make(key)
    x = 2 * torch.randn(7, *SHAPE)
    z, _ = flow.transform(x)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-6, rtol=0)
    eps = torch.randn(7, 16)
    torch.testing.assert_close(flow.transform(flow.inverse(eps))[0], eps, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", keys)
def test_sample_and_log_prob_agrees_with_log_prob(key: str) -> None:
    flow = make(key)
    with torch.no_grad():
        for temperature in (1.0, 0.6):
            x, log_p = flow.sample_and_log_prob(20, temperature=temperature)
            assert x.shape == (20, *SHAPE) and log_p.shape == (20,)
            torch.testing.assert_close(flow.log_prob(x), log_p, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", ["glow", "multiscale-realnvp"])
def test_log_prob_is_the_change_of_variables_of_the_full_jacobian(key: str) -> None:
    """log p(x) = log N(z; 0, I) + log|det dz/dx|, with the Jacobian of the whole multiscale
    map (stages, factor-out and the learned priors' standardisation) from autograd."""
    flow = make(key, scale=0.3)
    x = torch.randn(3, *SHAPE)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda v: flow.transform(v)[0][0], x[i : i + 1])
        J = J.reshape(16, 16)
        z = flow.transform(x[i : i + 1])[0]
        expected = -0.5 * z.pow(2).sum() - 8 * math.log(2 * math.pi) + torch.linalg.slogdet(J)[1]
        torch.testing.assert_close(flow.log_prob(x[i : i + 1])[0], expected, atol=1e-6, rtol=0)


def test_priors_are_learned_and_conditional() -> None:
    """The factored-out halves have a prior that depends on the remaining half."""
    flow = make("glow", scale=0.3)
    x = torch.randn(4, *SHAPE)
    h = torch.randn(4, 2, 2, 2)
    loc, log_scale = flow.priors[0](4, h, None)
    assert loc.shape == log_scale.shape == (4, 2, 2, 2)
    loc2, _ = flow.priors[0](4, h + 1, None)
    assert not torch.allclose(loc, loc2)
    # zeroing the priors' weights changes the density: they are part of the model
    before = flow.log_prob(x)
    with torch.no_grad():
        for p in flow.priors.parameters():
            p.zero_()
    assert not torch.allclose(before, flow.log_prob(x))


def test_density_integrates_to_one_in_2d() -> None:
    """A (1, 1, 2) image: no squeeze, but couplings, ActNorm and the learned top prior."""
    flow = MultiscaleRealNVP((1, 1, 2), levels=1, depth=1, hidden=4, blocks=1)
    flow.log_prob(torch.randn(64, 1, 1, 2))
    randomize(flow, 0.3)
    g = torch.linspace(-10, 10, 201)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1).view(-1, 1, 1, 2)
    with torch.no_grad():
        mass = float(flow.log_prob(pts).exp().sum() * (g[1] - g[0]) ** 2)
    assert abs(mass - 1) < 0.01, mass


def test_temperature_scales_the_latent() -> None:
    flow = make("glow")
    torch.manual_seed(3)
    x = flow.sample(6, temperature=0.5)
    torch.manual_seed(3)
    eps = torch.randn(6, 16)
    torch.testing.assert_close(flow.transform(x)[0], 0.5 * eps, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(2, temperature=0.0)


def test_gradients_reach_every_parameter() -> None:
    flow = make("glow", context=2, scale=0.3).train()
    x, c = torch.randn(8, *SHAPE), torch.randn(8, 2)
    flow.loss((x, c)).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("key", ["glow", "multiscale-realnvp"])
def test_conditional(key: str) -> None:
    flow = make(key, context=3)
    labels = torch.tensor([0, 2, 1, 2, 0, 1])
    c = torch.nn.functional.one_hot(labels, 3).double()
    x = torch.randn(6, *SHAPE)
    lp = flow.log_prob(x, c)
    assert lp.shape == (6,)
    assert not torch.allclose(lp, flow.log_prob(x, c.roll(1, 1))), "context has no effect"
    # integer labels in a batch are one-hot encoded
    torch.testing.assert_close(flow.loss((x, labels)), -lp.mean())
    assert flow.sample(4, context=c[:2]).shape == (2, 4, *SHAPE)
    xs, lps = flow.sample_and_log_prob(5, context=c[:3])
    assert xs.shape == (3, 5, *SHAPE) and lps.shape == (3, 5)
    torch.testing.assert_close(
        flow.log_prob(xs.reshape(15, *SHAPE), c[:3].repeat_interleave(5, 0)),
        lps.reshape(15),
        atol=1e-6,
        rtol=0,
    )
    z, _ = flow.transform(x, c)
    torch.testing.assert_close(flow.inverse(z, c), x, atol=1e-6, rtol=0)
    path = interpolate(flow, x[:2], x[2:4], steps=3, context=c[:2])
    assert path.shape == (2, 3, *SHAPE)
    torch.testing.assert_close(path[:, 0], x[:2], atol=1e-6, rtol=0)
    torch.testing.assert_close(path[:, -1], x[2:4], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="context: this model is conditional"):
        flow.log_prob(x)


def test_embedding_network() -> None:
    emb = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh())
    flow = Glow(SHAPE, levels=2, depth=1, hidden=4, context=5, embedding=emb)
    randomize(flow, 0.3)
    flow.loss((torch.randn(4, *SHAPE), torch.randn(4, 5))).backward()
    assert emb[0].weight.grad is not None and emb[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("key", keys)
def test_state_dict_round_trip(key: str, tmp_path) -> None:
    flow = make(key)
    path = tmp_path / "flow.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in flow.state_dict().items()}, path)
    name = key.split("-additive")[0].split("-batch")[0]
    other = IMAGE_BUILDERS[name](SHAPE, **TINY[key])
    other.load_state_dict(safetensors.torch.load_file(path))
    other.eval()
    flags = [k for k in other.state_dict() if k.endswith("initialized")]
    assert all(bool(other.state_dict()[k]) for k in flags)
    x = 3 + 2 * torch.randn(5, *SHAPE)  # other statistics must not re-initialise ActNorm
    assert torch.equal(flow.log_prob(x), other.log_prob(x))


def test_float32() -> None:
    flow = make("glow", context=2).to(torch.float32)
    x = torch.randn(4, *SHAPE, dtype=torch.float64)
    c = torch.randn(4, 2)
    assert flow.log_prob(x, c).dtype == torch.float32
    assert flow.sample(2, context=c[:1]).dtype == torch.float32
    z, _ = flow.transform(x, c)
    torch.testing.assert_close(flow.inverse(z, c), x.float(), atol=1e-4, rtol=0)


def test_mnist_and_digits_shapes() -> None:
    mnist = Glow((1, 28, 28), levels=2, depth=1, hidden=4)
    assert mnist.latent_shapes == ((2, 14, 14), (8, 7, 7))
    assert MultiscaleRealNVP((1, 28, 28), levels=3, depth=1, hidden=4).latent_shapes == (
        (2, 14, 14),
        (4, 7, 7),
        (4, 7, 7),
    )
    digits = Glow((1, 8, 8), levels=3, depth=1, hidden=4)
    assert digits.latent_shapes == ((2, 4, 4), (4, 2, 2), (16, 1, 1))
    x = torch.randint(0, 17, (3, 1, 8, 8)) / 17.0
    z, _ = digits.transform(x)
    torch.testing.assert_close(digits.inverse(z), x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"levels: 3 levels squeeze the image 3 times.*at most 2"):
        Glow((1, 28, 28), levels=3, depth=1, hidden=4)
    with pytest.raises(ValueError, match=r"levels: 4 levels squeeze the image 3 times"):
        MultiscaleRealNVP((1, 28, 28), levels=4, depth=1, hidden=4)
    with pytest.raises(ValueError, match=r"levels: the last level's checkerboard couplings"):
        MultiscaleRealNVP((1, 8, 8), levels=4, depth=1, hidden=4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Glow((28, 28), levels=1), r"shape: expected \(C, H, W\)"),
        (lambda: Glow(SHAPE, levels=0), "levels: expected an int >= 1"),
        (lambda: Glow(SHAPE, depth=0), "depth: expected an int >= 1"),
        (lambda: Glow(SHAPE, levels=1, coupling="spline"), "coupling: expected"),
        (lambda: Glow(SHAPE, levels=1, context=-1), "context: expected an int >= 0"),
        (lambda: MultiscaleRealNVP(SHAPE, levels=1, norm="layer"), "norm: expected"),
        (lambda: MultiscaleFlow(SHAPE, []), "stages: expected at least one stage"),
        (lambda: MultiscaleFlow(SHAPE, [torch.nn.Identity()]), r"stages\[0\]: expected"),
        (
            lambda: MultiscaleFlow((1, 4, 4), [tr.transforms.Compose(), tr.transforms.Compose()]),
            r"stages\[0\]: factoring out half of the channels needs at least 2",
        ),
        (
            lambda: MultiscaleFlow((1, 2, 3), [tr.transforms.image.Squeeze()]),
            r"stages\[0\]: squeezing needs an even height and width",
        ),
    ],
)
def test_bad_arguments(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_input() -> None:
    flow = Glow(SHAPE, levels=2, depth=1, hidden=4)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 1, 4, 4\), got \(2, 1, 4, 5\)"):
        flow.log_prob(torch.randn(2, 1, 4, 5))
    with pytest.raises(ValueError, match="x: expected shape.*add a batch dimension"):
        flow.log_prob(torch.randn(*SHAPE))
    with pytest.raises(ValueError, match="x: expected finite"):
        flow.log_prob(torch.full((2, *SHAPE), math.nan))
    with pytest.raises(ValueError, match=r"z: expected shape \(N, 16\)"):
        flow.inverse(torch.randn(2, *SHAPE))
    with pytest.raises(ValueError, match="context: this model is unconditional"):
        flow.log_prob(torch.randn(2, *SHAPE), torch.randn(2, 3))
    with pytest.raises(ValueError, match="context: this flow is unconditional"):
        flow.sample(2, torch.randn(1, 3))
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        flow.sample(-1)


# -- utilities --------------------------------------------------------------------------------
def test_interpolate() -> None:
    flow = make("glow")
    x1, x2 = torch.randn(*SHAPE), torch.randn(*SHAPE)
    for spherical in (False, True):
        path = interpolate(flow, x1, x2, steps=5, spherical=spherical)
        assert path.shape == (5, *SHAPE)
        torch.testing.assert_close(path[0], x1, atol=1e-6, rtol=0)
        torch.testing.assert_close(path[-1], x2, atol=1e-6, rtol=0)
    # linear interpolation: the midpoint's latent is the mean of the ends' latents
    z = flow.transform(torch.stack([x1, x2, path[2]]))[0]
    batch = interpolate(flow, torch.stack([x1, x2]), torch.stack([x2, x1]), steps=3)
    assert batch.shape == (2, 3, *SHAPE)
    mid = flow.transform(batch[:, 1])[0]
    torch.testing.assert_close(mid[0], (z[0] + z[1]) / 2, atol=1e-6, rtol=0)
    # spherical: the midpoint keeps the norm of equal-norm ends
    a = torch.randn(1, 16)
    b = torch.randn(1, 16)
    b = b / b.norm() * a.norm()
    ends = flow.inverse(torch.cat([a, b]))
    mid = flow.transform(interpolate(flow, ends[:1], ends[1:], steps=3, spherical=True)[:, 1])[0]
    torch.testing.assert_close(mid.norm(), a.norm(), atol=1e-6, rtol=0)
    # any model with transform and inverse, e.g. a vector flow
    f = tr.flows.MAF(2, hidden=(8,))
    assert interpolate(f, torch.zeros(2), torch.ones(2), steps=4).shape == (4, 2)


# -- variational dequantization ---------------------------------------------------------------
L = 4
A, B = torch.tensor([2.0, 0.7]), torch.tensor([3.0, 1.5])


def _beta_log_prob(u: torch.Tensor) -> torch.Tensor:
    """A product of two Beta densities on [0, 1]^2: the model p_U of a tiny oracle."""
    return torch.distributions.Beta(A, B).log_prob(u).sum(1)


def _exact_log_p(x: torch.Tensor) -> torch.Tensor:
    """log P(x) = log prod_d [F_d((x_d + 1)/L) - F_d(x_d / L)], from scipy's Beta CDF."""
    a, b = A.numpy(), B.numpy()
    lo, hi = x.numpy() / L, (x.numpy() + 1) / L
    mass = scipy.stats.beta.cdf(hi, a, b) - scipy.stats.beta.cdf(lo, a, b)
    return torch.from_numpy(np.log(mass).sum(1))


def _all_values() -> torch.Tensor:
    g = torch.arange(L, dtype=torch.get_default_dtype())
    return torch.cartesian_prod(g, g)


def test_dequantizer_starts_at_uniform_dequantization() -> None:
    """q starts uniform: log q = 0 and the bound is exactly the uniform-dequantization bound
    computed by the Preprocessor with the same noise."""
    x = _all_values()
    q = VariationalDequantizer((2,), levels=L, hidden=8)
    v, log_q = q(x, torch.Generator().manual_seed(5))
    assert torch.equal(log_q, torch.zeros(16))
    torch.testing.assert_close(v, torch.rand(16, 2, generator=torch.Generator().manual_seed(5)))
    bound = q.lower_bound(_beta_log_prob, x, generator=torch.Generator().manual_seed(5))
    prep = Preprocessor((2,), "discrete", levels=L)
    u, ladj = prep.eval(x, torch.Generator().manual_seed(5))
    uniform = _beta_log_prob(u) + ladj - 2 * math.log(L)
    torch.testing.assert_close(bound, uniform, atol=1e-12, rtol=0)


def test_dequantizer_with_logit_preprocessing_matches_uniform_at_start() -> None:
    flow = make("glow")
    prep = Preprocessor(SHAPE, "discrete", levels=L, logit=0.05)
    x = torch.randint(0, L, (6, *SHAPE)).double()
    q = VariationalDequantizer(SHAPE, levels=L, transforms=2, hidden=4)
    bound = q.lower_bound(flow.log_prob, x, prep, generator=torch.Generator().manual_seed(1))
    y, ladj = prep.eval(x, torch.Generator().manual_seed(1))
    uniform = flow.log_prob(y) + ladj - 16 * math.log(L)
    # the log-densities reach 6e5 in magnitude, where one float64 ulp is 1e-10: compare to a
    # few ulp relative, not absolute
    torch.testing.assert_close(bound, uniform, atol=1e-10, rtol=1e-14)
    v, log_q = q(x)
    assert v.shape == x.shape and log_q.shape == (6,)


def test_dequantizer_density_is_normalised() -> None:
    """q(v | x) integrates to 1 over (0, 1)^2 (on a grid in logit space, dv = sigmoid'(y) dy)."""
    q = VariationalDequantizer((2,), levels=L, transforms=2, hidden=8)
    randomize(q, 0.3)
    g = torch.linspace(-20, 20, 401)
    yy = torch.cartesian_prod(g, g)
    v = torch.sigmoid(yy)
    log_dv = (-torch.nn.functional.softplus(-yy) - torch.nn.functional.softplus(yy)).sum(1)
    for x in ([0.0, 3.0], [2.0, 1.0]):
        xs = torch.tensor([x]).expand(len(v), 2)
        with torch.no_grad():
            log_q = q.log_prob(v, xs)
        assert log_q.std() > 0.5  # far from uniform
        mass = float((log_q + log_dv).exp().sum() * (g[1] - g[0]) ** 2)
        assert abs(mass - 1) < 1e-3, mass


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_dequantizer_log_q_is_the_change_of_variables(coupling: str) -> None:
    """log q(v | x) = log p_logistic(eps) - log|det dv/d eps|, with v = sigmoid(g(eps; x))
    differentiated by autograd."""
    q = VariationalDequantizer((2,), levels=L, transforms=3, hidden=8, coupling=coupling)
    randomize(q, 0.3)
    x = _all_values()
    v, log_q = q(x, torch.Generator().manual_seed(7))
    u = torch.rand(16, 2, generator=torch.Generator().manual_seed(7))
    eps = torch.log(u) - torch.log1p(-u)
    ctx = 2 * x / (L - 1) - 1
    J = torch.autograd.functional.jacobian(lambda e: torch.sigmoid(q.flow(e, ctx)[0]), eps)
    J = J[torch.arange(16), :, torch.arange(16), :]  # (16, 2, 2)
    logistic = (-torch.nn.functional.softplus(-eps) - torch.nn.functional.softplus(eps)).sum(1)
    expected = logistic - torch.linalg.slogdet(J).logabsdet
    torch.testing.assert_close(log_q.detach(), expected, atol=1e-8, rtol=0)
    torch.testing.assert_close(v, torch.sigmoid(q.flow(eps, ctx)[0]), atol=1e-12, rtol=0)


def test_dequantizer_samples_match_its_log_prob() -> None:
    q = VariationalDequantizer((2,), levels=L, transforms=2, hidden=8)
    randomize(q, 0.5)
    x = _all_values()
    v, log_q = q(x)
    assert not torch.allclose(log_q, torch.zeros(16))
    torch.testing.assert_close(q.log_prob(v, x), log_q, atol=1e-8, rtol=0)


def test_bound_is_below_the_exact_discrete_log_likelihood() -> None:
    """For a Beta product p_U, P(x) is exact; E_q[p/q] = P(x) (q is a proper density on the
    bin) while E_q[log p - log q] < log P(x) and the importance-weighted bound is tighter."""
    q = VariationalDequantizer((2,), levels=L, transforms=2, hidden=8)
    randomize(q, 0.2)
    x = _all_values()
    exact = _exact_log_p(x)
    k = 4000
    with torch.no_grad():
        log_w = q.lower_bound(_beta_log_prob, x.repeat(k, 1)).view(k, 16)
        bound, se = log_w.mean(0), log_w.std(0) / math.sqrt(k)
        assert bool((bound + 4 * se < exact).all()), (bound - exact, se)
        # unbiased importance sampling of P(x): the mean weight is P(x)
        w = (log_w - exact).exp()
        assert bool(((w.mean(0) - 1).abs() < 4 * w.std(0) / math.sqrt(k)).all())
        # the importance-weighted bound is a lower bound in expectation, tighter than k = 1
        r = 250
        iw = q.lower_bound(_beta_log_prob, x.repeat(r, 1), samples=32, importance_weighted=True)
        iw = iw.view(r, 16)
        iw_mean, iw_se = iw.mean(0), iw.std(0) / math.sqrt(r)
    assert bool((iw_mean - 4 * iw_se < exact).all()), (iw_mean - exact, iw_se)
    assert bool((iw_mean - 4 * iw_se > bound + 4 * se).all()), iw_mean - bound


def test_training_the_dequantizer_tightens_the_bound() -> None:
    q = VariationalDequantizer((2,), levels=L, transforms=2, hidden=16)
    x = _all_values().repeat(16, 1)
    opt = torch.optim.Adam(q.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)

    def bound() -> torch.Tensor:
        return q.lower_bound(_beta_log_prob, x, generator=g).mean()

    with torch.no_grad():
        start = bound()  # exactly the uniform-dequantization bound
    for _ in range(25):
        opt.zero_grad()
        (-bound()).backward()
        opt.step()
    with torch.no_grad():
        end = q.lower_bound(_beta_log_prob, x.repeat(8, 1), generator=g).mean()
    exact = _exact_log_p(x).mean()
    assert start + 0.1 < end <= exact, (start, end, exact)


def test_dequantizer_bad_input() -> None:
    q = VariationalDequantizer((2,), levels=L, hidden=4)
    with pytest.raises(ValueError, match=r"x: expected raw integer values in 0..3"):
        q(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"x: expected raw integer values in 0..3"):
        q(torch.tensor([[4.0, 1.0]]))
    with pytest.raises(ValueError, match="preprocess: expected discrete data with 4 levels"):
        q.lower_bound(_beta_log_prob, _all_values(), Preprocessor((2,), "discrete", levels=8))
    with pytest.raises(ValueError, match=r"log_prob: expected a result of shape \(16,\)"):
        q.lower_bound(lambda u: u, _all_values())
    with pytest.raises(ValueError, match="shape: variational dequantization needs D >= 2"):
        VariationalDequantizer((1,), levels=L)
    with pytest.raises(ValueError, match="coupling: expected"):
        VariationalDequantizer((2,), levels=L, coupling="planar")

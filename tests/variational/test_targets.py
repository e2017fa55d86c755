"""The targets of tractable.variational: formulas at hand-computed points, normalisers by
independent quadrature, exact samplers by their moments, and argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tractable.variational import TARGETS, Target, target


def _trapezoid_2d(log_f, xs: torch.Tensor, ys: torch.Tensor) -> float:
    """log of the trapezoidal rule of exp(log_f) on the grid xs x ys (float64)."""
    z = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    f = torch.exp(log_f(z).reshape(len(xs), len(ys))).numpy()
    return math.log(np.trapezoid(np.trapezoid(f, ys.numpy(), axis=1), xs.numpy()))


@pytest.mark.parametrize("name", ["u1", "u2", "u3", "u4"])
def test_energies_are_finite_with_one_value_per_row(name: str) -> None:
    t = target(name)
    z = 6 * torch.randn(500, 2)
    log_p = t.log_density(z)
    assert t.dim == 2 and log_p.shape == (500,) and log_p.dtype == torch.float64
    assert bool(torch.isfinite(log_p).all())
    assert torch.equal(t(z), log_p)  # a Target is its own log-density
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(t.log_density(zg).sum(), zg)
    assert bool(torch.isfinite(g).all())


def test_energies_match_table_1_at_hand_computed_points() -> None:
    e = math.exp
    # U1 at the origin: (1/2)(2/0.4)^2 - ln(2 exp(-(1/2)(2/0.6)^2))
    u1_origin = 0.5 * (2 / 0.4) ** 2 - math.log(2 * e(-0.5 * (2 / 0.6) ** 2))
    assert u1_origin == pytest.approx(12.5 + 50 / 9 - math.log(2), abs=1e-12)
    # U1 on the ring at (2, 0): 0 - ln(1 + exp(-(1/2)(4/0.6)^2))
    u1_ring = -math.log(1 + e(-0.5 * (4 / 0.6) ** 2))
    # at z1 = 1: w1 = sin(pi/2) = 1, w2 = 3, w3 = 3 sigma(0) = 1.5
    u3_11 = -math.log(1 + e(-0.5 * (3 / 0.35) ** 2))
    u4_11 = -math.log(1 + e(-0.5 * (1.5 / 0.35) ** 2))
    u4_10 = -math.log(e(-0.5 * (1 / 0.4) ** 2) + e(-0.5 * (0.5 / 0.35) ** 2))
    # at z1 = 0: w1 = 0, w2 = 3 exp(-(1/2)(1/0.6)^2), w3 = 3 sigma(-1/0.3)
    w2_0 = 3 * e(-0.5 * (1 / 0.6) ** 2)
    w3_0 = 3 / (1 + e(1 / 0.3))
    z2 = -0.7
    u2_0 = 0.5 * (z2 / 0.4) ** 2
    u3_0 = -math.log(e(-0.5 * (z2 / 0.35) ** 2) + e(-0.5 * ((z2 + w2_0) / 0.35) ** 2))
    u4_0 = -math.log(e(-0.5 * (z2 / 0.4) ** 2) + e(-0.5 * ((z2 + w3_0) / 0.35) ** 2))
    cases = [
        ("u1", (0.0, 0.0), u1_origin), ("u1", (2.0, 0.0), u1_ring),
        ("u2", (1.0, 1.0), 0.0), ("u2", (0.0, z2), u2_0),
        ("u3", (1.0, 1.0), u3_11), ("u3", (0.0, z2), u3_0),
        ("u4", (1.0, 1.0), u4_11), ("u4", (1.0, 0.0), u4_10), ("u4", (0.0, z2), u4_0),
    ]  # fmt: skip
    for name, point, energy in cases:
        got = float(target(name).log_density(torch.tensor([point])))
        assert got == pytest.approx(-energy, abs=1e-12), (name, point)


def test_u1_normaliser_by_an_independent_quadrature_in_polar_coordinates() -> None:
    # int exp(-U1) = int_0^inf int_0^2pi exp(-U1(r cos t, r sin t)) r dt dr
    r = torch.linspace(0.0, 6.0, 1201, dtype=torch.float64)
    th = torch.linspace(0.0, 2 * math.pi, 1201, dtype=torch.float64)
    rr, tt = torch.meshgrid(r, th, indexing="ij")
    z = torch.stack([rr * torch.cos(tt), rr * torch.sin(tt)], -1).reshape(-1, 2)
    f = (torch.exp(target("u1").log_density(z)).reshape(rr.shape) * rr).numpy()
    log_z = math.log(np.trapezoid(np.trapezoid(f, th.numpy(), axis=1), r.numpy()))
    assert target("u1").log_z == pytest.approx(log_z, abs=1e-8)


@pytest.mark.parametrize("name", ["u2", "u3", "u4"])
def test_bounded_energies_are_the_paper_inside_the_box_and_normalisable(name: str) -> None:
    bounded, raw = target(name, bound=3.0), target(name, bound=None)
    assert raw.log_z is None and bounded.log_z is not None
    inside = torch.rand(200, 2) * 6 - 3
    assert torch.equal(bounded.log_density(inside), raw.log_density(inside))
    outside = torch.tensor([[4.0, 0.5], [-5.0, -1.0]])
    gap = raw.log_density(outside) - bounded.log_density(outside)
    assert torch.allclose(gap, 0.5 * (torch.tensor([1.0, 2.0]) / 0.4) ** 2)
    xs = torch.linspace(-7.0, 7.0, 1401, dtype=torch.float64)
    ys = torch.linspace(-8.0, 6.0, 1401, dtype=torch.float64)
    assert bounded.log_z == pytest.approx(_trapezoid_2d(bounded.log_density, xs, ys), abs=1e-6)


def test_funnel_is_normalised_by_quadrature_in_2d() -> None:
    t = target("funnel", dim=2)
    assert t.log_z == 0.0
    # x = exp(v/2) u: the x-grid follows the funnel's width, with the Jacobian exp(v/2)
    v = torch.linspace(-18.0, 18.0, 1441, dtype=torch.float64)
    u = torch.linspace(-9.0, 9.0, 721, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    z = torch.stack([vv, torch.exp(vv / 2) * uu], -1).reshape(-1, 2)
    f = (torch.exp(t.log_density(z)).reshape(vv.shape) * torch.exp(vv / 2)).numpy()
    mass = np.trapezoid(np.trapezoid(f, u.numpy(), axis=1), v.numpy())
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_funnel_sampler_moments_in_10d() -> None:
    t = target("funnel", dim=10)
    x = t.sample(40_000)
    n = x.shape[0]
    assert x.shape == (n, 10)
    # v ~ N(0, 9): mean within 4 s.e. (3/sqrt(n)); E[x_i^2 e^{-v}] = 1
    assert abs(float(x[:, 0].mean())) < 4 * 3 / math.sqrt(n)
    assert float(x[:, 0].std()) == pytest.approx(3.0, abs=4 * 3 / math.sqrt(2 * n))
    scaled = (x[:, 1:] ** 2 * torch.exp(-x[:, :1])).mean()
    assert float(scaled) == pytest.approx(1.0, abs=4 * math.sqrt(2 / (9 * n)))


def test_gaussian_target_log_z_is_the_offset_and_samples_match() -> None:
    mean, cov = [0.5, -1.0], [[1.5, -0.6], [-0.6, 0.8]]
    t = target("gaussian", mean=mean, cov=cov, offset=-3.25)
    assert t.log_z == -3.25
    xs = torch.linspace(-7.0, 8.0, 751, dtype=torch.float64)
    ys = torch.linspace(-8.0, 6.0, 701, dtype=torch.float64)
    assert _trapezoid_2d(t.log_density, xs, ys) == pytest.approx(-3.25, abs=1e-6)
    x = t.sample(50_000)
    n = x.shape[0]
    assert torch.allclose(x.mean(0), torch.tensor(mean), atol=4 * math.sqrt(1.5 / n))
    s = torch.tensor(cov)
    se = ((s**2 + torch.outer(s.diagonal(), s.diagonal())) / n).sqrt()  # s.e. of each S_ij
    assert bool(((torch.cov(x.T) - s).abs() < 4 * se).all())


def test_mixture_log_z_modes_and_weights() -> None:
    for dim in (1, 2):
        t = target("mixture", dim=dim, separation=4.0, scale=0.7, weight=0.3, offset=1.5)
        assert t.log_z == 1.5 and t.modes.shape == (2, dim)
        assert t.modes[:, 0].tolist() == [-2.0, 2.0]
        x = t.sample(20_000)
        left = float((x[:, 0] < 0).double().mean())  # the modes are 2.9 scales from 0
        assert left == pytest.approx(0.3, abs=4 * math.sqrt(0.21 / 20_000) + 2e-3)
    g = torch.linspace(-8.0, 8.0, 1601, dtype=torch.float64)
    t1 = target("mixture", dim=1, separation=4.0, scale=0.7, weight=0.3, offset=1.5)
    mass = np.trapezoid(torch.exp(t1.log_density(g[:, None])).numpy(), g.numpy())
    assert math.log(mass) == pytest.approx(1.5, abs=1e-8)
    t2 = target("mixture", separation=4.0, scale=0.7, weight=0.3, offset=1.5)
    assert _trapezoid_2d(t2.log_density, g, g[200:-200]) == pytest.approx(1.5, abs=1e-6)


def test_registry_of_targets_and_errors() -> None:
    assert set(TARGETS) == {"u1", "u2", "u3", "u4", "funnel", "gaussian", "mixture"}
    for name in TARGETS:
        t = target(name)
        assert isinstance(t, Target) and t.description and TARGETS[name].__doc__
        assert t.has_sampler == (name in ("funnel", "gaussian", "mixture"))
    with pytest.raises(ValueError, match="target: expected one of u1"):
        target("banana")
    with pytest.raises(ValueError, match=r"options: unknown option\(s\) \['dims'\]"):
        target("funnel", dims=3)
    with pytest.raises(ValueError, match="has no exact sampler"):
        target("u1").sample(3)
    with pytest.raises(ValueError, match="x: expected shape \\(N, 2\\)"):
        target("u1").log_density(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="cov: expected a positive-definite"):
        target("gaussian", cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="cov: expected a finite \\(3, 3\\)"):
        target("gaussian", mean=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="weight: expected a float in \\(0, 1\\)"):
        target("mixture", weight=1.0)
    with pytest.raises(ValueError, match="bound: expected a finite float > 0"):
        target("u2", bound=-1.0)
    with pytest.raises(ValueError, match="dim: expected an int >= 2"):
        target("funnel", dim=1)
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        target("funnel").sample(0)

"""Divergence estimators against the trace of the autograd Jacobian."""

from __future__ import annotations

import math

import pytest
import torch

from tractable.continuous import exact_divergence, hutchinson_divergence, hutchinson_noise
from tractable.nn import ODEMLP


def _jacobian(net: ODEMLP, z0: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda z: net(torch.tensor(0.4), z[None])[0], z0)


def test_exact_divergence_and_frobenius_match_autograd_jacobian() -> None:
    net = ODEMLP(3, hidden=(8, 8))
    z = torch.randn(4, 3, requires_grad=True)
    div, frob = exact_divergence(net(torch.tensor(0.4), z), z, frobenius=True)
    for n in range(4):
        J = _jacobian(net, z[n].detach())
        torch.testing.assert_close(div[n], torch.trace(J))
        torch.testing.assert_close(frob[n], J.pow(2).sum())


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased(kind: str, random_field) -> None:
    # Many independent probes at one point: the mean of the estimates must match the exact
    # trace and squared Frobenius norm within 4 standard errors.
    net = random_field(3, hidden=(8, 8))
    n = 20000
    z = torch.randn(1, 3).expand(n, 3).clone().requires_grad_(True)
    f = net(torch.tensor(0.4), z)
    eps = hutchinson_noise(z, kind)
    div, frob = hutchinson_divergence(f, z, eps, frobenius=True)
    J = _jacobian(net, z[0].detach())
    for est, exact in ((div, torch.trace(J)), (frob, J.pow(2).sum())):
        se = est.std() / math.sqrt(n)
        assert est.std() > 1e-3  # a real estimate, not the exact value
        assert (est.mean() - exact).abs() < 4 * se


def test_hutchinson_rademacher_variance_formula() -> None:
    # For eps Rademacher, Var(eps^T A eps) = 2 (||S||_F^2 - sum_i S_ii^2) with S = (A + A^T)/2;
    # for Gaussian eps it is 2 ||S||_F^2.
    A = torch.tensor([[1.0, 2.0, 0.0], [-0.5, 0.3, 1.0], [0.2, 0.0, -1.0]])
    S = 0.5 * (A + A.T)
    n = 40000
    z = torch.zeros(n, 3, requires_grad=True)
    f = z @ A.T
    expected = {
        "gaussian": 2 * S.pow(2).sum(),
        "rademacher": 2 * (S.pow(2).sum() - S.diagonal().pow(2).sum()),
    }
    for kind, var in expected.items():
        div, _ = hutchinson_divergence(f, z, hutchinson_noise(z, kind))
        # the relative standard error of a sample variance is below 2 % here
        assert abs(div.var() / var - 1) < 0.06, kind


def test_noise_moments() -> None:
    for kind in ("gaussian", "rademacher"):
        eps = hutchinson_noise(torch.zeros(50000, 2), kind)
        torch.testing.assert_close(eps.mean(0), torch.zeros(2), atol=0.03, rtol=0)
        cov = eps.T @ eps / eps.shape[0]
        torch.testing.assert_close(cov, torch.eye(2), atol=0.03, rtol=0)
    with pytest.raises(ValueError, match="noise"):
        hutchinson_noise(torch.zeros(1, 2), "uniform")


def test_field_without_dependence_on_z_has_zero_divergence() -> None:
    z = torch.randn(3, 2, requires_grad=True)
    const = torch.ones(3, 2)
    assert exact_divergence(const, z)[0].abs().max() == 0
    div, frob = hutchinson_divergence(const, z, torch.randn(3, 2), frobenius=True)
    assert div.abs().max() == 0 and frob.abs().max() == 0
    with pytest.raises(ValueError, match="eps"):
        hutchinson_divergence(z * 2, z, torch.randn(3, 3))

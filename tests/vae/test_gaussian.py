"""Analytic KL terms against torch.distributions and against Monte Carlo."""

from __future__ import annotations

import math

import torch
from torch.distributions import Independent, Normal, kl_divergence

from tractable.vae import kl_normal_normal, kl_normal_standard, log_normal_diag


def diag(loc: torch.Tensor, log_scale: torch.Tensor) -> Independent:
    return Independent(Normal(loc, log_scale.exp()), 1)


def test_log_normal_diag_matches_torch() -> None:
    z, loc, ls = torch.randn(6, 3), torch.randn(6, 3), 0.5 * torch.randn(6, 3)
    torch.testing.assert_close(log_normal_diag(z, loc, ls), diag(loc, ls).log_prob(z))


def test_kl_to_standard_normal_matches_torch_and_monte_carlo() -> None:
    loc, ls = torch.randn(5, 4), 0.5 * torch.randn(5, 4)
    kl = kl_normal_standard(loc, ls)
    ref = kl_divergence(diag(loc, ls), diag(torch.zeros(4), torch.zeros(4)))
    torch.testing.assert_close(kl, ref)
    # Monte Carlo: E_q[log q(z) - log p(z)]
    z = diag(loc, ls).sample((100_000,))
    terms = diag(loc, ls).log_prob(z) - diag(torch.zeros(4), torch.zeros(4)).log_prob(z)
    se = terms.std(0) / math.sqrt(z.shape[0])
    assert ((terms.mean(0) - kl).abs() < 4 * se).all()


def test_kl_between_diagonal_gaussians_matches_torch_and_monte_carlo() -> None:
    loc1, ls1 = torch.randn(5, 3), 0.4 * torch.randn(5, 3)
    loc2, ls2 = torch.randn(5, 3), 0.4 * torch.randn(5, 3)
    kl = kl_normal_normal(loc1, ls1, loc2, ls2)
    torch.testing.assert_close(kl, kl_divergence(diag(loc1, ls1), diag(loc2, ls2)))
    z = diag(loc1, ls1).sample((100_000,))
    terms = diag(loc1, ls1).log_prob(z) - diag(loc2, ls2).log_prob(z)
    se = terms.std(0) / math.sqrt(z.shape[0])
    assert ((terms.mean(0) - kl).abs() < 4 * se).all()


def test_kl_is_zero_only_at_equality_and_reduces_to_standard_case() -> None:
    loc, ls = torch.randn(3, 2), torch.randn(3, 2)
    torch.testing.assert_close(kl_normal_normal(loc, ls, loc, ls), torch.zeros(3))
    zeros = torch.zeros(3, 2)
    torch.testing.assert_close(kl_normal_normal(loc, ls, zeros, zeros), kl_normal_standard(loc, ls))
    assert (kl_normal_standard(loc, ls) > 0).all()

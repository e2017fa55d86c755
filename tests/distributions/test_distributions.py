"""Base distributions against torch.distributions / scipy.stats, plus sampling checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import tractable as tr
from tractable import distributions as Dist


def test_standard_normal_matches_torch() -> None:
    d = Dist.StandardNormal(3)
    x = torch.randn(10, 3)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(d.log_prob(x), ref)


def test_standard_normal_image_shape() -> None:
    d = Dist.StandardNormal((1, 2, 2))
    assert d.sample(3).shape == (3, 1, 2, 2)
    assert d.log_prob(torch.zeros(2, 1, 2, 2)).shape == (2,)


def test_diag_normal_matches_torch_and_learns() -> None:
    d = Dist.DiagNormal(2, loc=torch.tensor([1.0, -2.0]), scale=torch.tensor([0.5, 3.0]))
    x = torch.randn(10, 2)
    ref = torch.distributions.Normal(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0]))
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x).sum(1))
    x = d.rsample(5)
    x.sum().backward()
    assert d.loc.grad is not None and d.log_scale.grad is not None


def test_mixture_diag_matches_manual_sum() -> None:
    d = Dist.MixtureOfGaussians(2, components=3)
    with torch.no_grad():
        d.logits.copy_(torch.tensor([0.1, -0.3, 0.7]))
        d.log_diag.copy_(0.3 * torch.randn(3, 2))
    x = torch.randn(8, 2)
    w = torch.softmax(d.logits, 0)
    dens = sum(
        w[k] * torch.distributions.Normal(d.means[k], d.log_diag[k].exp()).log_prob(x).sum(1).exp()
        for k in range(3)
    )
    torch.testing.assert_close(d.log_prob(x), dens.log())


def test_mixture_full_matches_scipy() -> None:
    d = Dist.MixtureOfGaussians(2, components=2, covariance="full")
    with torch.no_grad():
        d.off_diag.copy_(torch.randn(2, 2, 2))
        d.log_diag.copy_(0.3 * torch.randn(2, 2))
    L = d.scale_tril().detach()
    x = torch.randn(6, 2)
    w = torch.softmax(d.logits, 0).detach().numpy()
    ref = sum(
        w[k]
        * scipy.stats.multivariate_normal(d.means[k].detach().numpy(), (L[k] @ L[k].T).numpy()).pdf(
            x.numpy()
        )
        for k in range(2)
    )
    np.testing.assert_allclose(d.log_prob(x).detach().numpy(), np.log(ref), rtol=1e-10)


def test_mixture_samples_match_its_moments() -> None:
    d = Dist.MixtureOfGaussians(1, components=2)
    with torch.no_grad():
        d.means.copy_(torch.tensor([[-3.0], [3.0]]))
        d.logits.copy_(torch.tensor([math.log(0.25), math.log(0.75)]))
    s = d.sample(20000)
    # mean = 0.25 * -3 + 0.75 * 3 = 1.5; the standard error is about 0.02
    assert abs(float(s.mean()) - 1.5) < 0.1


def test_uniform_and_logistic_match_scipy() -> None:
    u = Dist.Uniform(2, low=torch.tensor([0.0, -1.0]), high=torch.tensor([2.0, 3.0]))
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    lp = u.log_prob(x)
    assert lp[0].item() == pytest.approx(-math.log(8.0)) and lp[1].item() == -math.inf
    s = u.sample(1000)
    assert (s[:, 0] >= 0).all() and (s[:, 0] <= 2).all()
    lg = Dist.Logistic(2, loc=0.5, scale=2.0)
    x = torch.randn(7, 2) * 10
    ref = scipy.stats.logistic(loc=0.5, scale=2.0).logpdf(x.numpy()).sum(1)
    np.testing.assert_allclose(lg.log_prob(x).numpy(), ref, rtol=1e-10)
    # a sampler check: Kolmogorov-Smirnov against scipy (fails about once in 1e4 runs)
    samples = lg.sample(4000)[:, 0].numpy()
    assert scipy.stats.kstest(samples, scipy.stats.logistic(loc=0.5, scale=2.0).cdf).pvalue > 1e-4


def test_normal_sampler_ks() -> None:
    s = Dist.DiagNormal(1, loc=2.0, scale=0.5).sample(4000)[:, 0].numpy()
    assert scipy.stats.kstest(s, scipy.stats.norm(2.0, 0.5).cdf).pvalue > 1e-4


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Dist.DiagNormal(2, scale=-1.0), ValueError, "scale: expected positive"),
        (lambda: Dist.MixtureOfGaussians(2, covariance="tied"), ValueError, "covariance"),
        (lambda: Dist.Uniform(1, low=1.0, high=0.0), ValueError, "high: expected high > low"),
        (lambda: Dist.StandardNormal(0), ValueError, "shape: expected a positive int"),
        (lambda: Dist.StandardNormal(2).sample(-1), ValueError, "n: expected an int >= 1"),
        (lambda: Dist.StandardNormal(2).sample(2.5), TypeError, "n: expected an int"),
        (
            lambda: Dist.StandardNormal(2).log_prob(torch.randn(3, 4)),
            ValueError,
            "x: expected shape",
        ),
        (lambda: Dist.StandardNormal(2).sample(2, temperature=-1.0), ValueError, "temperature"),
    ],
)
def test_bad_arguments(call, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_distributions_follow_dtype() -> None:
    for d in (
        Dist.StandardNormal(2),
        Dist.DiagNormal(2),
        Dist.MixtureOfGaussians(2),
        Dist.Uniform(2),
        Dist.Logistic(2),
    ):
        d = d.to(torch.float32)
        assert d.sample(3).dtype == torch.float32, type(d).__name__
        assert d.log_prob(torch.zeros(2, 2, dtype=torch.float64)).dtype == torch.float32


def test_tr_namespace() -> None:
    assert tr.distributions.StandardNormal is Dist.StandardNormal

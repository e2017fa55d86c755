"""Decoders p(x | z) against torch.distributions / scipy, normalization and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from tractable.vae import (
    BernoulliDecoder,
    CategoricalDecoder,
    DiscretizedLogisticDecoder,
    DiscretizedLogisticMixtureDecoder,
    GaussianDecoder,
    discretized_logistic_log_prob,
    discretized_logistic_mean,
)


class ConstNet(nn.Module):
    """Ignores z and outputs fixed parameters (P, *spatial) for every row."""

    def __init__(self, params: torch.Tensor) -> None:
        super().__init__()
        self.params = nn.Parameter(params)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.params.expand(z.shape[0], *self.params.shape)


def all_grid_points(shape: tuple[int, ...], levels: int) -> torch.Tensor:
    """Every point of a levels^numel grid, scaled to [0, 1]: (levels^numel, *shape)."""
    n = math.prod(shape)
    pts = torch.tensor(list(itertools.product(range(levels), repeat=n)), dtype=torch.float64)
    return pts.reshape(-1, *shape) / (levels - 1)


# -- against torch.distributions --------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_bernoulli_matches_torch(shape: tuple[int, ...]) -> None:
    dec = BernoulliDecoder(shape, latent=3, hidden=(8,))
    z, x = torch.randn(6, 3), torch.bernoulli(torch.full((6, *shape), 0.4))
    logits = dec.params(z).reshape(6, *shape)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).reshape(6, -1).sum(1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)
    torch.testing.assert_close(dec.mean(z), torch.sigmoid(logits))
    s = dec.sample(z)
    assert s.shape == (6, *shape) and bool(((s == 0) | (s == 1)).all())


@pytest.mark.parametrize("scale", [0.3, "learned", "network"])
def test_gaussian_matches_torch(scale: float | str) -> None:
    dec = GaussianDecoder(4, latent=2, hidden=(8,), scale=scale)
    if scale == "learned":
        with torch.no_grad():
            dec.raw_scale.copy_(torch.randn(4))
    z, x = torch.randn(7, 2), torch.randn(7, 4)
    loc, sd = dec._loc_scale(dec.params(z))
    if scale == 0.3:
        torch.testing.assert_close(sd, torch.full_like(loc, 0.3))
    ref = torch.distributions.Normal(loc, sd).log_prob(x).sum(1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)
    assert bool((sd >= dec.min_scale).all())
    torch.testing.assert_close(dec.mean(z), loc)


def test_gaussian_learned_scale_starts_at_one() -> None:
    dec = GaussianDecoder(3, latent=2, hidden=(4,), scale="learned")
    _, sd = dec._loc_scale(dec.params(torch.zeros(1, 2)))
    torch.testing.assert_close(sd, torch.ones(1, 3))


def test_categorical_matches_torch_and_mean() -> None:
    dec = CategoricalDecoder((2, 3, 3), latent=2, levels=5, hidden=(8,))
    z = torch.randn(4, 2)
    x = torch.randint(0, 5, (4, 2, 3, 3)) / 4
    logits = dec._logits(dec.params(z))  # (4, 2, 3, 3, 5)
    idx = torch.round(x * 4).long()
    ref = torch.distributions.Categorical(logits=logits).log_prob(idx).reshape(4, -1).sum(1)
    torch.testing.assert_close(dec.log_prob(x, z), ref)
    grid = torch.arange(5) / 4
    torch.testing.assert_close(dec.mean(z), (torch.softmax(logits, -1) * grid).sum(-1))


# -- the discretized logistic -----------------------------------------------------------------
@pytest.mark.parametrize("loc", [-3.0, -1.0, 0.0, 0.37, 0.999, 3.0])
@pytest.mark.parametrize("log_scale", [-7.0, -4.0, -1.0, 2.0])
def test_discretized_logistic_sums_to_one_over_256_bins(loc: float, log_scale: float) -> None:
    idx = torch.arange(256)
    lp = discretized_logistic_log_prob(idx, torch.tensor(loc), torch.tensor(log_scale), 256)
    assert bool(torch.isfinite(lp).all())
    assert abs(float(torch.logsumexp(lp, 0))) < 1e-10


def test_discretized_logistic_matches_scipy_cdf_differences() -> None:
    levels, loc, log_scale = 256, 0.2, -2.5
    s = math.exp(log_scale)
    y = -1 + 2 * np.arange(levels) / (levels - 1)
    upper = stats.logistic.cdf(y + 1 / (levels - 1), loc=loc, scale=s)
    lower = stats.logistic.cdf(y - 1 / (levels - 1), loc=loc, scale=s)
    ref = upper - lower
    ref[0], ref[-1] = upper[0], 1 - lower[-1]
    lp = discretized_logistic_log_prob(
        torch.arange(levels), torch.tensor(loc), torch.tensor(log_scale), levels
    )
    big = ref > 1e-250
    np.testing.assert_allclose(lp.exp().numpy()[big], ref[big], rtol=1e-9, atol=0)


def test_discretized_logistic_mean_is_exact() -> None:
    loc, ls = torch.tensor([0.3, -1.2, 0.9]), torch.tensor([-1.0, 0.5, -3.0])
    idx = torch.arange(256).unsqueeze(1)
    probs = discretized_logistic_log_prob(idx, loc, ls, 256).exp()
    ref = (probs * (idx / 255)).sum(0)
    torch.testing.assert_close(discretized_logistic_mean(loc, ls, 256), ref)


def test_discretized_logistic_decoder_samples_follow_its_probabilities() -> None:
    levels = 6
    params = torch.tensor([[0.1], [-0.5]])  # loc, log_scale for one site
    dec = DiscretizedLogisticDecoder(1, latent=1, levels=levels, net=ConstNet(params))
    x = dec.sample(torch.zeros(20_000, 1))
    counts = torch.bincount(torch.round(x[:, 0] * (levels - 1)).long(), minlength=levels)
    grid = all_grid_points((1,), levels)
    probs = dec.log_prob(grid, torch.zeros(levels, 1)).exp().detach()
    assert abs(float(probs.sum()) - 1) < 1e-12
    p_value = stats.chisquare(counts.numpy(), 20_000 * probs.numpy()).pvalue
    assert p_value > 1e-3


@pytest.mark.parametrize(("channels", "levels"), [(1, 256), (2, 8), (3, 4)])
def test_logistic_mixture_is_normalized(channels: int, levels: int) -> None:
    K = 3
    p = K * (1 + 2 * channels + channels * (channels - 1) // 2)
    params = torch.randn(p, 1, 1)
    dec = DiscretizedLogisticMixtureDecoder(
        (channels, 1, 1), latent=1, components=K, levels=levels, net=ConstNet(params)
    )
    grid = all_grid_points((channels, 1, 1), levels)
    lp = dec.log_prob(grid, torch.zeros(grid.shape[0], 1)).detach()
    assert abs(float(torch.logsumexp(lp, 0))) < 1e-10


def test_logistic_mixture_with_one_component_equals_the_single_logistic() -> None:
    loc_ls = torch.randn(2, 5)
    single = DiscretizedLogisticDecoder(5, latent=1, net=ConstNet(loc_ls))
    mixture = DiscretizedLogisticMixtureDecoder(
        5, latent=1, components=1, net=ConstNet(torch.cat([torch.randn(1, 5), loc_ls]))
    )
    x, z = torch.randint(0, 256, (4, 5)) / 255, torch.zeros(4, 1)
    torch.testing.assert_close(mixture.log_prob(x, z), single.log_prob(x, z))
    torch.testing.assert_close(mixture.mean(z), single.mean(z))


def test_logistic_mixture_samples_follow_its_coupled_probabilities() -> None:
    levels, channels, K = 4, 2, 2
    params = torch.randn(K * (1 + 2 * channels + 1), 1, 1)
    params[K + K * channels : K + 2 * K * channels] = -0.5  # log-scales: spread over the bins
    dec = DiscretizedLogisticMixtureDecoder(
        (channels, 1, 1), latent=1, components=K, levels=levels, net=ConstNet(params)
    )
    grid = all_grid_points((channels, 1, 1), levels)  # (16, 2, 1, 1), first channel slowest
    probs = dec.log_prob(grid, torch.zeros(16, 1)).exp().detach()
    x = dec.sample(torch.zeros(30_000, 1))
    cell = torch.round(x[:, 0, 0, 0] * 3).long() * levels + torch.round(x[:, 1, 0, 0] * 3).long()
    counts = torch.bincount(cell, minlength=16)
    assert stats.chisquare(counts.numpy(), 30_000 * probs.numpy()).pvalue > 1e-3


def test_logistic_mixture_mean_is_exact_for_one_channel() -> None:
    K, levels = 3, 16
    params = torch.randn(K * 3, 2)
    dec = DiscretizedLogisticMixtureDecoder(
        2, latent=1, components=K, levels=levels, net=ConstNet(params)
    )
    grid = all_grid_points((2,), levels)  # every joint value of the 2 dims
    probs = dec.log_prob(grid, torch.zeros(grid.shape[0], 1)).exp().detach()
    ref = (probs.unsqueeze(1) * grid).sum(0)
    torch.testing.assert_close(dec.mean(torch.zeros(1, 1))[0], ref)


# -- images and networks ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 7, 5), (3, 1, 1)])
def test_conv_decoders_produce_image_shapes(shape: tuple[int, ...]) -> None:
    z = torch.randn(2, 4)
    for dec in (
        BernoulliDecoder(shape, 4, hidden=(16,)),
        DiscretizedLogisticMixtureDecoder(shape, 4, components=2, hidden=(16,)),
    ):
        assert dec.params(z).shape[2:] == shape[1:]
        assert dec.sample(z).shape == (2, *shape)
        assert dec.mean(z).shape == (2, *shape)


# -- bad input ---------------------------------------------------------------------------------
def test_bernoulli_rejects_non_binary_data() -> None:
    dec = BernoulliDecoder(4, latent=2, hidden=(4,))
    with pytest.raises(ValueError, match=r"x: the Bernoulli decoder needs binary data"):
        dec.log_prob(torch.full((2, 4), 0.5), torch.zeros(2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", ["tiny", "below_one", "two", "minus", "inf", "nan"])
def test_bernoulli_check_finds_one_bad_value_among_many(dtype: torch.dtype, value: str) -> None:
    # the fast check (range, then sum x (1 - x) == 0) must catch values next to 0 and 1
    dec = BernoulliDecoder(784, latent=2, hidden=(4,)).to(dtype)
    x = torch.bernoulli(torch.full((50, 784), 0.5, dtype=dtype))
    bad = {
        "tiny": torch.finfo(dtype).tiny * torch.finfo(dtype).eps,  # the smallest subnormal
        "below_one": 1 - torch.finfo(dtype).eps / 2,  # the largest value below 1
        "two": 2.0,
        "minus": -0.0 - torch.finfo(dtype).tiny,
        "inf": math.inf,
        "nan": math.nan,
    }[value]
    x[17, 333] = bad
    assert x[17, 333] != 0 and x[17, 333] != 1 or math.isnan(bad)
    match = "expected finite values" if value in ("inf", "nan") else "needs binary data"
    with pytest.raises(ValueError, match=match):
        dec.check(x)
    x[17, 333] = 1.0
    assert dec.check(x) is not None


def test_grid_decoders_reject_off_grid_and_out_of_range_data() -> None:
    dec = DiscretizedLogisticDecoder(3, latent=2, hidden=(4,))
    with pytest.raises(ValueError, match=r"x: expected 256-level data scaled to \[0, 1\]"):
        dec.log_prob(torch.full((2, 3), 255.0), torch.zeros(2, 2))  # raw uint8 values
    with pytest.raises(ValueError, match=r"x: expected values on the grid i / 255"):
        dec.log_prob(torch.full((2, 3), 0.5), torch.zeros(2, 2))
    cat = CategoricalDecoder(3, latent=2, levels=4, hidden=(4,))
    with pytest.raises(ValueError, match="grid i / 3"):
        cat.log_prob(torch.full((2, 3), 0.5), torch.zeros(2, 2))


def test_wrong_shapes_and_nan_are_rejected() -> None:
    dec = BernoulliDecoder((1, 4, 4), latent=2, hidden=(4,))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 1, 4, 4\)"):
        dec.log_prob(torch.zeros(2, 16), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="z: expected shape"):
        dec.log_prob(torch.zeros(2, 1, 4, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="z: expected 2 rows"):
        dec.log_prob(torch.zeros(2, 1, 4, 4), torch.zeros(3, 2))
    bad = torch.zeros(2, 1, 4, 4)
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        dec.log_prob(bad, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="event_shape"):
        BernoulliDecoder((4, 4), latent=2)
    with pytest.raises(ValueError, match="net: expected an output"):
        BernoulliDecoder(4, latent=2, net=nn.Linear(2, 5)).log_prob(
            torch.zeros(1, 4), torch.zeros(1, 2)
        )
    with pytest.raises(ValueError, match="scale"):
        GaussianDecoder(4, latent=2, scale=-1.0)

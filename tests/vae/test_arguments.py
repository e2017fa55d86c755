"""Arguments the VAE refuses with an error naming them, and empty batches (issue 18, 13-14)."""

from __future__ import annotations

import math

import pytest
import torch

from tractable.vae import build_vae


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_vae(6, latent=2, hidden=(8,))


@pytest.mark.parametrize("beta", [math.nan, math.inf, -1.0])
def test_beta_must_be_finite_and_non_negative(model: torch.nn.Module, beta: float) -> None:
    x = torch.bernoulli(torch.full((3, 6), 0.5))
    for fn in (model.elbo, model.iwae):
        with pytest.raises(ValueError, match="beta: expected a finite float >= 0"):
            fn(x, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        model.beta = beta
    with pytest.raises(TypeError, match="beta"):
        model.elbo(x, beta="1")


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        (0, ValueError),
        ((-1,), ValueError),
        ((0, 8, 8), ValueError),
        ((2, 3), ValueError),
        (2.5, TypeError),
        ("6", TypeError),
        ((6.0,), TypeError),
        (True, TypeError),
    ],
)
def test_build_vae_refuses_bad_shapes(shape: object, error: type) -> None:
    with pytest.raises(error, match="shape: expected"):
        build_vae(shape, latent=2, hidden=(8,))


def test_repeats_zero_is_refused(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="repeats: expected an int >= 1"):
        model.estimate(torch.ones(2, 6), repeats=0)


def test_empty_batches_give_empty_results(model: torch.nn.Module) -> None:
    empty = torch.zeros(0, 6)
    assert model.sample(0).shape == (0, 6)
    assert model.elbo(empty).shape == (0,) and model.iwae(empty, k=3).shape == (0,)
    for method in model.estimators:
        est = model.estimate(empty, method=method, k=3)
        assert est.values.shape == (0,) and est.mean is None and est.se is None
        assert "NaN" not in str(est.to_dict())
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 6\)"):
        model.estimate(torch.zeros(0, 5))
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        model.sample(-1)

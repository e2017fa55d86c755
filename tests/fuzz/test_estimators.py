"""Fuzzing the estimators: log_mean_exp, exact, importance_sampling, elbo, iwae on the
closed-form linear-Gaussian model, and the oracles' own constructors."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from tractable.estimators import (
    LinearGaussian,
    elbo,
    exact,
    importance_sampling,
    iwae,
    log_mean_exp,
)

from .helpers import arrays, attempt, fuzz, small_ints, tensors

MODEL = LinearGaussian.random(features=3, latent=2, seed=0)
PROPOSAL = {"sample": MODEL.prior_sample, "log_q": MODEL.prior_log_prob}


@fuzz(150)
@given(t=arrays(), dim=small_ints(-3, 3))
def test_log_mean_exp(t: np.ndarray, dim: object) -> None:
    # all -inf along dim is a zero probability, -inf by design
    out = attempt(log_mean_exp, torch.as_tensor(t), dim, names=("t", "dim"), log_density=True)
    if out is not None:
        assert out.dim() == t.ndim - 1


@fuzz(150)
@given(
    x=tensors((3,)),
    estimator=st.sampled_from([importance_sampling, elbo, iwae, exact]),
    k=small_ints(-1, 4),
    max_rows=st.one_of(st.none(), small_ints(-1, 5)),
    repeats=small_ints(-1, 3),
)
def test_estimators_on_a_closed_form_model(
    x: object, estimator: object, k: object, max_rows: object, repeats: object
) -> None:
    if estimator is exact:
        est = attempt(exact, MODEL.log_marginal, x, max_rows, names=("batch_size",))
    elif estimator is iwae:
        est = attempt(iwae, MODEL.log_joint, x, k=k, repeats=repeats, max_rows=max_rows, **PROPOSAL)
    else:
        est = attempt(estimator, MODEL.log_joint, x, k=k, max_rows=max_rows, **PROPOSAL)
    if est is not None:
        assert est.values.shape == (x.shape[0],)
        attempt(est.to_dict)


@fuzz(100)
@given(
    W=st.one_of(arrays(), st.sampled_from([None, [[1.0]], "W"])),
    mu=st.one_of(arrays(), st.sampled_from([None, [0.0]])),
    sigma=st.one_of(st.floats(allow_nan=True), st.sampled_from([None, "1", True, 0, 1])),
)
def test_linear_gaussian(W: object, mu: object, sigma: object) -> None:
    W = torch.as_tensor(W) if isinstance(W, np.ndarray) else W
    mu = torch.as_tensor(mu) if isinstance(mu, np.ndarray) else mu
    model = attempt(LinearGaussian, W, mu, sigma, finite=False)
    if model is not None:
        x = torch.zeros(2, model.features)
        assert attempt(model.log_marginal, x).shape == (2,)

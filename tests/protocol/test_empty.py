"""Empty batches follow torch's convention on every registered model (issue 18, 14): an empty
batch gives an empty result of the right shape, never an error or NaN."""

from __future__ import annotations

import json

import pytest
import torch

from .cases import CASES, Case

ids = [c.name for c in CASES]
WITH_LIKELIHOOD = [c for c in CASES if c.entry.likelihood != "none"]


@pytest.fixture(params=CASES, ids=ids)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def test_sample_zero_is_empty_of_the_event_shape(case: Case) -> None:
    model = case.build().eval()
    context = case.contexts(2)
    x = model.sample(0, context)
    lead = (0,) if context is None else (2, 0)
    assert x.shape == (*lead, *case.shape)
    assert x.dtype == torch.get_default_dtype()
    if hasattr(model, "sample_and_log_prob"):
        x, log_p = model.sample_and_log_prob(0, context)
        assert x.shape == (*lead, *case.shape) and log_p.shape == lead
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        model.sample(-1, context)


def test_an_empty_batch_gives_empty_values(case: Case) -> None:
    model = case.build().eval()
    x, context = case.inputs(0), case.contexts(0)
    if case.entry.likelihood == "exact":
        log_p = model.log_prob(x, context)
        assert log_p.shape == (0,) and log_p.dtype == torch.get_default_dtype()
    for method in type(model).estimators:
        k = None if method == "exact" else 2
        est = model.estimate(x, context, method=method, k=k)
        assert est.values.shape == (0,) and est.mean is None and est.se is None
        json.dumps(est.to_dict(), allow_nan=False)


@pytest.mark.parametrize("case", WITH_LIKELIHOOD, ids=[c.name for c in WITH_LIKELIHOOD])
def test_an_empty_batch_of_the_wrong_shape_is_still_refused(case: Case) -> None:
    model = case.build().eval()
    wrong = torch.zeros(0, *case.shape[:-1], case.shape[-1] + 1)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, "):
        model.estimate(wrong, case.contexts(0))

"""The likelihood summaries: mean with standard error, data-space NLL and bits/dim (issue 18)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tractable.checks import UndefinedStandardErrorWarning
from tractable.data import Preprocessor, nll_to_report
from tractable.metrics import bits_per_dim, data_space_nll, mean_and_se


def test_the_standard_error_of_one_value_is_none_with_a_warning() -> None:
    with pytest.warns(UndefinedStandardErrorWarning, match="single value is undefined"):
        mean, se = mean_and_se(torch.tensor([2.5]))
    assert mean == 2.5 and se is None
    assert mean_and_se(torch.tensor([1.0, 3.0])) == (2.0, 1.0)


@pytest.mark.parametrize("kind", ["continuous", "discrete", "binary"])
def test_a_one_row_split_reports_json_safe_standard_errors(kind: str) -> None:
    prep = Preprocessor((3,), kind, levels=256 if kind == "discrete" else None)
    with pytest.warns(UndefinedStandardErrorWarning):
        report = nll_to_report(torch.tensor([1.5]), torch.zeros(1), prep)
    assert report["nll_se"] is None and report["bpd_se"] is None and report["n"] == 1
    assert math.isfinite(report["nll"])
    json.dumps(report, allow_nan=False)  # the run layer writes it as strict JSON


def test_data_space_nll_checks_its_arguments() -> None:
    assert data_space_nll(torch.tensor([2.0]), torch.tensor([0.5])).tolist() == [1.5]
    with pytest.raises(ValueError, match="ladj_preprocess: expected shape"):
        data_space_nll(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="nll_model: expected finite values"):
        data_space_nll(torch.tensor([math.nan]), torch.zeros(1))
    with pytest.raises(ValueError, match="ladj_preprocess: expected finite values"):
        data_space_nll(torch.zeros(1), torch.tensor([math.inf]))
    with pytest.raises(ValueError, match=r"nll_model: expected shape \(N,\)"):
        data_space_nll(torch.zeros(2, 1), torch.zeros(2))
    with pytest.raises(TypeError, match="nll_model: expected a torch.Tensor"):
        data_space_nll([1.0], torch.zeros(1))


@pytest.mark.parametrize("bad", [math.nan, math.inf, torch.tensor([0.0, math.nan])])
def test_bits_per_dim_refuses_non_finite_nll(bad: object) -> None:
    with pytest.raises(ValueError, match="nll_nats: expected finite values"):
        bits_per_dim(bad, 4)
    with pytest.raises(TypeError, match="nll_nats"):
        bits_per_dim("1.0", 4)
    assert bits_per_dim(0.0, dims=3, levels=256) == pytest.approx(8.0)


def test_mean_and_se_of_values_near_the_float64_limit_is_finite() -> None:
    # found by the fuzz suite: the sum of two 1e308 overflowed to an infinite mean
    mean, se = mean_and_se(torch.tensor([1e308, 1e308], dtype=torch.float64))
    assert mean == 1e308 and se == 0.0
    mean, se = mean_and_se(torch.tensor([1e308, -1e308], dtype=torch.float64))
    assert mean == 0.0 and math.isfinite(se)

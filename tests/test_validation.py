import pytest
import torch

from tractable.checks import check_event, check_finite


def test_finite_values_whose_sum_overflows_are_accepted():
    x = torch.full((4, 2), 3e38, dtype=torch.float32)
    assert torch.isinf(x.sum())
    check_finite(x, "x")
    assert check_event(x, "x", (2,)) is x


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_single_non_finite_entry_is_reported(bad):
    x = torch.zeros(3, 5, dtype=torch.float64)
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"x: expected finite values, found [01] NaN and [01] inf"):
        check_finite(x, "x")


def test_opposite_infinities_are_reported_not_cancelled():
    x = torch.tensor([[float("inf"), -float("inf")]])
    with pytest.raises(ValueError, match="0 NaN and 2 infinite"):
        check_finite(x, "x")


def test_empty_tensor_passes():
    check_finite(torch.empty(0, 3), "x")

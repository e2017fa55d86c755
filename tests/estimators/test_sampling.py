"""The estimators' bookkeeping: chunked accumulation, memory bounds, Estimate, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tractable.checks import UndefinedStandardErrorWarning
from tractable.estimators import (
    Estimate,
    LinearGaussian,
    elbo,
    exact,
    importance_sampling,
    iwae,
    log_mean_exp,
    naive_monte_carlo,
)


class Bank:
    """A proposal replaying fixed draws, so results can be checked to machine precision.

    Row i of x carries its index in column 0; each example consumes its own draws in order."""

    def __init__(self, z: torch.Tensor, log_q: torch.Tensor) -> None:
        self.z, self.log_q = z, log_q  # (k, N, L), (k, N)
        self.used = torch.zeros(z.shape[1], dtype=torch.long)

    def __call__(self, x: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = x[:, 0].long()
        start = int(self.used[idx[0]])
        assert bool((self.used[idx] == start).all())
        self.used[idx] += c
        return self.z[start : start + c, idx], self.log_q[start : start + c, idx]


def log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x[:, 1:] - z).pow(2).sum(1) - 0.5 * z.pow(2).sum(1)


@pytest.fixture
def problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, k, d = 6, 64, 3
    x = torch.cat([torch.arange(n, dtype=torch.float64).unsqueeze(1), torch.randn(n, d)], 1)
    z = 2 * torch.randn(k, n, d)
    log_q = -0.1 * z.pow(2).sum(-1)
    return x, z, log_q


@pytest.mark.parametrize("max_rows", [2, 5, 20, 64 * 6, None])
def test_chunked_accumulation_is_exact(
    problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor], max_rows: int | None
) -> None:
    x, z, log_q = problem
    k = z.shape[0]
    lw = torch.stack([log_joint(x, z[i]) for i in range(k)]) - log_q  # (k, N)
    w = lw.exp()
    ess_ref = w.sum(0).pow(2) / w.pow(2).sum(0)
    se_ref = (w.std(0, unbiased=True) / (math.sqrt(k) * w.mean(0))).double()

    est = importance_sampling(log_joint, x, k=k, sample_and_log_q=Bank(z, log_q), max_rows=max_rows)
    torch.testing.assert_close(est.values, w.mean(0).log(), rtol=0, atol=1e-12)
    torch.testing.assert_close(est.ess, ess_ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(est.per_example_se, se_ref, rtol=1e-9, atol=0)

    est = elbo(log_joint, x, k=k, sample_and_log_q=Bank(z, log_q), max_rows=max_rows)
    torch.testing.assert_close(est.values, lw.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(est.per_example_se, lw.std(0) / math.sqrt(k), rtol=1e-9, atol=0)


def test_iwae_repeats_average_independent_draws(
    problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    x, z, log_q = problem
    # k = 16 per repeat, 4 repeats: the bank's 64 draws split in four consecutive blocks
    lw = torch.stack([log_joint(x, z[i]) for i in range(64)]) - log_q
    per_repeat = torch.stack([log_mean_exp(lw[16 * r : 16 * (r + 1)], 0) for r in range(4)])
    est = iwae(log_joint, x, k=16, repeats=4, sample_and_log_q=Bank(z, log_q))
    torch.testing.assert_close(est.values, per_repeat.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(est.per_example_se, per_repeat.std(0) / 2, rtol=1e-9, atol=0)
    assert est.k == 16 and est.repeats == 4


def test_callables_never_see_more_than_max_rows() -> None:
    seen: list[int] = []

    def lj(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return log_joint(x, z)

    model_x = torch.randn(7, 3)
    sample = lambda x, k: torch.randn(k, x.shape[0], 2)  # noqa: E731
    log_q = lambda z, x: -0.5 * z.pow(2).sum(1)  # noqa: E731
    importance_sampling(lj, model_x, sample, log_q, k=100, max_rows=50)
    assert max(seen) <= 50 and sum(seen) == 700
    seen.clear()
    importance_sampling(lj, model_x, sample, log_q, k=10, max_rows=3)  # fewer rows than x
    assert max(seen) <= 3 and sum(seen) == 70


def test_default_chunks_bound_memory_for_k5000_on_784_dims() -> None:
    # the replicated data in a call stays within 2**24 values (64 MB in float32)
    seen: list[int] = []

    def lj(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        seen.append(x.numel())
        return -z.pow(2).sum(1)

    x = torch.zeros(10, 784, dtype=torch.float32)
    sample = lambda x, k: torch.randn(k, x.shape[0], 2, dtype=torch.float32)  # noqa: E731
    est = importance_sampling(lj, x, sample, lambda z, x: -z.pow(2).sum(1), k=5000)
    assert max(seen) <= 2**24 and len(seen) >= 3
    assert est.values.shape == (10,)
    torch.testing.assert_close(est.values, torch.zeros(10, dtype=torch.float64), atol=1e-6, rtol=0)


def test_log_mean_exp_is_stable() -> None:
    t = torch.tensor([[1000.0, -1000.0], [1000.0, -math.inf]])
    torch.testing.assert_close(log_mean_exp(t, 0), torch.tensor([1000.0, -1000.0 - math.log(2)]))
    all_zero = log_mean_exp(torch.full((3, 1), -math.inf), 0)
    assert all_zero.item() == -math.inf
    with pytest.raises(ValueError, match="t"):
        log_mean_exp(torch.zeros(0, 2), 0)
    for bad in (math.nan, math.inf):  # issue 18, 13: NaN (or +inf) in, NaN out
        with pytest.raises(ValueError, match=r"t: expected values in \[-inf, inf\)"):
            log_mean_exp(torch.tensor([0.0, bad]))


def test_estimate_fields_and_json() -> None:
    est = exact(lambda x: -x.pow(2).sum(1), torch.ones(4, 2))
    assert est.mean == -2.0 and est.se == 0.0 and est.nll == 2.0
    assert est.bits_per_dim(2) == pytest.approx(1 / math.log(2))
    json.dumps(est.to_dict())
    one = exact(lambda x: -x.pow(2).sum(1), torch.ones(1, 2))
    assert one.se is None  # one example: no spread to measure, and never NaN (issue 18, 4)
    with pytest.warns(UndefinedStandardErrorWarning, match="single value is undefined"):
        report = one.to_dict()
    assert report["se"] is None
    json.dumps(report, allow_nan=False)
    empty = exact(lambda x: -x.pow(2).sum(1), torch.ones(0, 2))
    assert empty.values.shape == (0,) and empty.mean is None and empty.nll is None
    assert empty.bits_per_dim(2) is None and empty.mc_se is None
    json.dumps(empty.to_dict(), allow_nan=False)
    str(one), str(empty)
    with pytest.raises(ValueError, match="kind"):
        Estimate("x", "guess", torch.zeros(2), 0.0, 0.0)


def test_exact_batches_and_accepts_models() -> None:
    model = LinearGaussian.random(3, 2, seed=0)
    x = model.sample(10)
    full = exact(model.log_marginal, x)
    batched = exact(model.log_marginal, x, batch_size=3)
    torch.testing.assert_close(full.values, batched.values)

    class WithLogProb:
        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return model.log_marginal(x)

    torch.testing.assert_close(exact(WithLogProb(), x).values, full.values)


def test_exact_splits_the_context_with_x() -> None:
    # a conditional density N(x; c, I): the chunks must pair each row with its own context
    def log_prob(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(c, 1.0).log_prob(x).sum(1)

    x, c = torch.randn(7, 2), torch.randn(7, 2)
    est = exact(log_prob, x, batch_size=3, context=c)
    torch.testing.assert_close(est.values, log_prob(x, c))
    with pytest.raises(ValueError, match=r"context: expected a tensor with 7 rows to match x"):
        exact(log_prob, x, context=c[:2])
    with pytest.raises(ValueError, match="context: expected a tensor"):
        exact(log_prob, x, context=[0.0] * 7)


def test_zero_probability_examples_give_minus_infinity_not_nan() -> None:
    def lj(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = -z.pow(2).sum(1)
        return torch.where(x[:, 0] > 0, out, torch.full_like(out, -math.inf))

    x = torch.tensor([[1.0], [-1.0]])
    sample = lambda x, k: torch.randn(k, x.shape[0], 1)  # noqa: E731
    est = importance_sampling(lj, x, sample, lambda z, x: -z.pow(2).sum(1), k=10)
    assert math.isfinite(est.values[0]) and est.values[1] == -math.inf
    assert est.ess[1] == 0 and est.per_example_se[1] == math.inf
    assert est.se == math.inf
    est = elbo(lj, x, sample, lambda z, x: -z.pow(2).sum(1), k=10)
    assert est.values[1] == -math.inf and est.per_example_se[1] == math.inf


# -- bad input ----------------------------------------------------------------------------------
def _args() -> dict:
    return {
        "sample": lambda x, k: torch.randn(k, x.shape[0], 2),
        "log_q": lambda z, x: -0.5 * z.pow(2).sum(1),
    }


@pytest.mark.parametrize("fn", [importance_sampling, elbo, iwae])
@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_rejected(fn, k: int) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        fn(log_joint, torch.randn(3, 3), **_args(), k=k)


def test_non_integer_k_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="k"):
        importance_sampling(log_joint, torch.randn(3, 3), **_args(), k=2.5)


def test_nan_data_is_rejected() -> None:
    x = torch.randn(3, 3)
    x[1, 2] = math.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        importance_sampling(log_joint, x, **_args(), k=5)


def test_nan_from_the_model_is_rejected() -> None:
    def bad(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = log_joint(x, z)
        out[0] = math.nan
        return out

    with pytest.raises(ValueError, match="log_joint: returned 1 NaN"):
        importance_sampling(bad, torch.randn(3, 3), **_args(), k=5)


def test_wrong_shapes_from_callables_are_rejected() -> None:
    x = torch.randn(3, 3)
    with pytest.raises(ValueError, match="log_joint: expected to return shape"):
        importance_sampling(lambda x, z: torch.zeros(x.shape[0], 1), x, **_args(), k=2)
    with pytest.raises(ValueError, match="sample: expected to return shape"):
        importance_sampling(
            log_joint,
            x,
            sample=lambda x, k: torch.randn(x.shape[0], k, 2),
            log_q=_args()["log_q"],
            k=2,
        )


def test_proposal_must_be_given_once() -> None:
    x = torch.randn(3, 3)
    with pytest.raises(ValueError, match="sample"):
        importance_sampling(log_joint, x, k=2)
    with pytest.raises(ValueError, match="sample_and_log_q"):
        importance_sampling(
            log_joint, x, **_args(), k=2, sample_and_log_q=lambda x, k: (None, None)
        )
    with pytest.raises(TypeError, match="log_joint"):
        importance_sampling("not callable", x, **_args(), k=2)


def test_bad_support_is_rejected() -> None:
    with pytest.raises(ValueError, match="support"):
        naive_monte_carlo(log_joint, torch.randn(2, 3), 0, k=2)
    with pytest.raises(ValueError, match="support"):
        naive_monte_carlo(log_joint, torch.randn(2, 3), torch.zeros(0), k=2)

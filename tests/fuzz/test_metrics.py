"""Fuzzing the metrics: likelihood summaries and the sample-based measures."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from tractable import metrics

from .helpers import arrays, attempt, float_args, fuzz, small_ints


def matrices(special: bool = True) -> st.SearchStrategy:
    r"""Mostly ``(N, F)`` arrays with a few rows and features, sometimes anything else."""
    good = st.tuples(st.integers(0, 6), st.integers(0, 3)).flatmap(
        lambda s: arrays(s, special=special)
    )
    return st.one_of(good, good, good, arrays(), st.sampled_from([None, [[1.0]], "a"]))


def maybe_tensor(value: object, as_tensor: bool) -> object:
    return torch.as_tensor(value) if as_tensor and isinstance(value, np.ndarray) else value


@fuzz(100)
@given(values=arrays(), as_tensor=st.booleans())
def test_mean_and_se(values: np.ndarray, as_tensor: bool) -> None:
    out = attempt(metrics.mean_and_se, torch.as_tensor(values) if as_tensor else values)
    if out is not None:
        assert len(out) == 2


@fuzz(100)
@given(
    nll=st.one_of(float_args(-10, 10), arrays()), dims=small_ints(-1, 5), levels=small_ints(-1, 5)
)
def test_bits_per_dim(nll: object, dims: object, levels: object) -> None:
    attempt(metrics.bits_per_dim, maybe_tensor(nll, True), dims, levels)


@fuzz(100)
@given(a=arrays(), b=arrays())
def test_data_space_nll(a: np.ndarray, b: np.ndarray) -> None:
    out = attempt(metrics.data_space_nll, torch.as_tensor(a), torch.as_tensor(b))
    if out is not None:
        assert out.shape == a.shape


@fuzz(80)
@given(a=matrices(), b=matrices(), eps=st.sampled_from([1e-6, 0.0, -1.0]))
def test_fid(a: object, b: object, eps: float) -> None:
    attempt(metrics.fid, a, b, eps)


@fuzz(80)
@given(a=matrices(), b=matrices(), subsets=small_ints(-1, 3), size=small_ints(-1, 4))
def test_kid(a: object, b: object, subsets: object, size: object) -> None:
    attempt(metrics.kid, a, b, subsets, size)


@fuzz(80)
@given(a=matrices(), b=matrices(), k=small_ints(-1, 4), tensor=st.booleans())
def test_prdc(a: object, b: object, k: object, tensor: bool) -> None:
    attempt(metrics.prdc, maybe_tensor(a, tensor), maybe_tensor(b, tensor), k)


@fuzz(80)
@given(
    a=matrices(),
    b=matrices(),
    method=st.sampled_from(["exact", "sliced", "sinkhorn", "nope"]),
    p=float_args(-1, 3),
    max_samples=st.one_of(st.none(), small_ints(-1, 5)),
)
def test_wasserstein(a: object, b: object, method: str, p: object, max_samples: object) -> None:
    attempt(metrics.wasserstein, a, b, method, p, 8, max_samples)


@fuzz(80)
@given(
    samples=matrices(),
    modes=matrices(special=False),
    std=st.one_of(float_args(-1, 2), arrays((3,))),
    min_count=small_ints(-1, 3),
    n_std=float_args(-1, 4),
)
def test_mode_coverage(
    samples: object, modes: object, std: object, min_count: object, n_std: object
) -> None:
    attempt(metrics.mode_coverage, samples, modes, std, min_count, n_std)


@fuzz(60)
@given(probs=matrices(), splits=small_ints(-1, 4))
def test_inception_score(probs: object, splits: object) -> None:
    if isinstance(probs, np.ndarray) and probs.ndim == 2 and probs.size:
        probs = np.abs(probs) / np.abs(probs).sum(1, keepdims=True).clip(1e-12)
    attempt(metrics.inception_score, probs, splits)


@fuzz(60)
@given(scores=arrays(), labels=arrays(special=False))
def test_auroc(scores: np.ndarray, labels: np.ndarray) -> None:
    attempt(metrics.auroc, scores, np.round(np.abs(labels)) % 2)


@fuzz(60)
@given(a=matrices(), b=matrices(), k=small_ints(-1, 4))
def test_pca_and_mmd(a: object, b: object, k: object) -> None:
    attempt(metrics.pca_comparison, a, b, k)
    attempt(metrics.mmd2_unbiased, a, b)

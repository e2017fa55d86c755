r"""Kernel Inception Distance: the unbiased squared MMD with a cubic polynomial kernel.

Binkowski et al. 2018, "Demystifying MMD GANs". With the kernel

.. math:: k(x, y) = \left(\frac{x^\top y}{d} + 1\right)^3

on ``d``-dimensional features and ``m`` samples :math:`x_i` and :math:`y_j` from each set, the
unbiased estimator of :math:`\mathrm{MMD}^2` is

.. math::
    \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{m(m-1)} \sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j).

Its expectation is exactly zero when both sets come from the same distribution, so unlike FID
it can be negative and is comparable across sample sizes. KID averages it over random subsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import warn_undefined_se
from .inputs import (
    ArrayLike,
    as_matrix,
    check_int,
    check_same_features,
    check_seed,
    overflow_error,
)

__all__ = ["KIDResult", "kid", "mmd2_unbiased"]


@dataclass(frozen=True)
class KIDResult:
    r"""KID over random subsets.

    Attributes:
        mean: mean of the per-subset unbiased MMD² estimates.
        std: their standard deviation (ddof = 1; ``None``, with a warning, for a single
            subset: undefined, and never NaN). Subsets overlap, so
            ``std / sqrt(subsets)`` is not a standard error of ``mean``.
        values: the per-subset estimates, shape ``(subsets,)``.
    """

    mean: float
    std: float | None
    values: np.ndarray


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: ArrayLike, y: ArrayLike) -> float:
    r"""Unbiased :math:`\mathrm{MMD}^2` with the cubic kernel between ``x`` ``(M, F)`` and
    ``y`` ``(N, F)``, both with at least 2 rows.

    For unequal sizes the cross term is averaged over all :math:`M N` pairs, which keeps the
    estimator unbiased.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0], [1.0]])
        >>> # k(0,1) = 1, k(1,2) = 27, mean cross term (1 + 1 + 8 + 27) / 4
        >>> round(mmd2_unbiased(x, x + 1.0), 6)
        9.5
    """
    a = as_matrix(x, "x", min_rows=2)
    b = as_matrix(y, "y", min_rows=2)
    check_same_features(a, "x", b, "y")
    value = _mmd2(a, b)
    if not math.isfinite(value):
        raise overflow_error("x, y", a, b)
    return value


def _mmd2(a: np.ndarray, b: np.ndarray) -> float:
    # non-finite (NaN or inf) when the cubic kernel overflows: the callers say so
    m, n = a.shape[0], b.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        k_aa = _polynomial_kernel(a, a)
        k_bb = _polynomial_kernel(b, b)
        k_ab = _polynomial_kernel(a, b)
        term_aa = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        term_bb = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        return float(term_aa + term_bb - 2.0 * k_ab.mean())


def kid(
    features_a: ArrayLike,
    features_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int | None = 0,
) -> KIDResult:
    r"""KID between feature sets ``(N, F)`` and ``(M, F)`` (Binkowski et al. 2018).

    Draws ``subsets`` pairs of subsets of ``subset_size`` rows (without replacement within a
    subset) and returns the mean and spread of :func:`mmd2_unbiased` over them. The defaults
    (100 subsets of 1000) are those of the common implementations; ``subset_size`` must not
    exceed either set's size.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
        >>> abs(kid(x, y, subsets=10, subset_size=100).mean) < 0.05
        True
        >>> kid(x, y + 1.0, subsets=10, subset_size=100).mean > 0.5
        True
    """
    a = as_matrix(features_a, "features_a", min_rows=2)
    b = as_matrix(features_b, "features_b", min_rows=2)
    check_same_features(a, "features_a", b, "features_b")
    subsets = check_int(subsets, "subsets")
    subset_size = check_int(subset_size, "subset_size", minimum=2)
    smallest = min(a.shape[0], b.shape[0])
    if subset_size > smallest:
        raise ValueError(
            f"subset_size: expected at most {smallest} (the smaller set's size; features_a has "
            f"{a.shape[0]} rows, features_b {b.shape[0]}), got {subset_size}"
        )
    rng = np.random.default_rng(check_seed(seed))
    values = np.empty(subsets)
    for s in range(subsets):
        ia = rng.choice(a.shape[0], size=subset_size, replace=False)
        ib = rng.choice(b.shape[0], size=subset_size, replace=False)
        values[s] = _mmd2(a[ia], b[ib])
    if not np.isfinite(values).all():
        raise overflow_error("features_a, features_b", a, b)
    std = None
    if subsets > 1:
        std = float(values.std(ddof=1))
    else:
        warn_undefined_se("kid")
    return KIDResult(mean=float(values.mean()), std=std, values=values)

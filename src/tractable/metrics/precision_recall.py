r"""Precision, recall, density and coverage from k-nearest-neighbour balls.

Each real sample :math:`x_i` gets the ball :math:`B(x_i, r_i)` whose radius is the distance to
its ``k``-th nearest other real sample; likewise for the fake samples :math:`y_j`. Then
(Kynkäänniemi et al. 2019, "Improved precision and recall metric for assessing generative
models"; Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models"):

.. math::
    \text{precision} &= \frac{1}{M} \sum_j 1\left[\exists i: y_j \in B(x_i, r_i)\right], \\
    \text{recall} &= \frac{1}{N} \sum_i 1\left[\exists j: x_i \in B(y_j, r'_j)\right], \\
    \text{density} &= \frac{1}{k M} \sum_j \sum_i 1\left[y_j \in B(x_i, r_i)\right], \\
    \text{coverage} &= \frac{1}{N} \sum_i 1\left[\exists j: y_j \in B(x_i, r_i)\right].

The balls are open (strict ``<``, the convention of Naeem et al.'s reference code), so a set
compared with itself scores 1 on all four. Density can exceed 1. Distances are Euclidean,
computed in float64 with ``torch.cdist`` in row chunks, so memory stays at
``chunk_size * max(N, M)`` floats. ``cdist`` uses a matrix product, whose round-off can break
exact ties such as the ``k``-th neighbour lying on its own ball's boundary; both sets are
therefore centred on the real mean first, and a point counts as inside only when its distance is
below the radius by a relative margin of ``1e-9``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .inputs import ArrayLike, as_matrix, check_int, check_same_features

__all__ = ["PRDC", "knn_radii", "prdc"]

# Relative margin below a ball's radius that a distance must clear to count as inside.
_RTOL = 1e-9


@dataclass(frozen=True)
class PRDC:
    r"""Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al.
    2020), each in :math:`[0, 1]` except density, which is in :math:`[0, N/k]`."""

    precision: float
    recall: float
    density: float
    coverage: float


def _chunks(n: int, size: int) -> range:
    return range(0, n, size)


def _knn_radii(x: Tensor, k: int, chunk_size: int) -> Tensor:
    radii = torch.empty(x.shape[0], dtype=x.dtype)
    for start in _chunks(x.shape[0], chunk_size):
        d = torch.cdist(x[start : start + chunk_size], x)
        # The smallest distance in each row is the point itself (0), hence k + 1.
        radii[start : start + chunk_size] = torch.topk(d, k + 1, dim=1, largest=False).values[:, -1]
    return radii


def knn_radii(x: ArrayLike, k: int = 5, chunk_size: int = 1024) -> np.ndarray:
    r"""Distance from each row of ``x`` ``(N, F)`` to its ``k``-th nearest other row, ``(N,)``.

    Example:
        >>> import numpy as np
        >>> knn_radii(np.array([[0.0], [1.0], [3.0]]), k=1).tolist()
        [1.0, 1.0, 2.0]
    """
    a = as_matrix(x, "x")
    k = check_int(k, "k")
    chunk_size = check_int(chunk_size, "chunk_size")
    if a.shape[0] <= k:
        raise ValueError(f"k: expected k < N = {a.shape[0]} (rows of x), got {k}")
    return _knn_radii(torch.from_numpy(a - a.mean(axis=0)), k, chunk_size).numpy()


def prdc(real: ArrayLike, fake: ArrayLike, k: int = 5, chunk_size: int = 1024) -> PRDC:
    r"""Precision, recall, density and coverage of ``fake`` ``(M, F)`` against ``real``
    ``(N, F)`` with ``k``-NN balls (Kynkäänniemi et al. 2019; Naeem et al. 2020).

    Naeem et al. recommend ``k = 5`` and at least 10,000 samples per set on real features.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> prdc(x, x, k=3)
        PRDC(precision=1.0, recall=1.0, density=1.0, coverage=1.0)
        >>> prdc(x, x + 100.0, k=3)
        PRDC(precision=0.0, recall=0.0, density=0.0, coverage=0.0)
    """
    x = as_matrix(real, "real")
    y = as_matrix(fake, "fake")
    check_same_features(x, "real", y, "fake")
    k = check_int(k, "k")
    chunk_size = check_int(chunk_size, "chunk_size")
    for name, arr in (("real", x), ("fake", y)):
        if arr.shape[0] <= k:
            raise ValueError(f"k: expected k < N = {arr.shape[0]} (rows of {name}), got {k}")
    center = x.mean(axis=0)
    xt, yt = torch.from_numpy(x - center), torch.from_numpy(y - center)
    r_real = _knn_radii(xt, k, chunk_size) * (1.0 - _RTOL)
    r_fake = _knn_radii(yt, k, chunk_size) * (1.0 - _RTOL)

    # Fake rows against all real balls: precision, density and (through a running minimum of
    # the fake-to-real distance per real ball, relative to its radius) coverage.
    in_some_real_ball = 0
    real_ball_hits = 0
    covered = torch.zeros(x.shape[0], dtype=torch.bool)
    for start in _chunks(y.shape[0], chunk_size):
        inside = torch.cdist(yt[start : start + chunk_size], xt) < r_real[None, :]  # (c, N)
        in_some_real_ball += int(inside.any(dim=1).sum())
        real_ball_hits += int(inside.sum())
        covered |= inside.any(dim=0)

    # Real rows against all fake balls: recall.
    in_some_fake_ball = 0
    for start in _chunks(x.shape[0], chunk_size):
        inside = torch.cdist(xt[start : start + chunk_size], yt) < r_fake[None, :]  # (c, M)
        in_some_fake_ball += int(inside.any(dim=1).sum())

    n, m = x.shape[0], y.shape[0]
    return PRDC(
        precision=in_some_real_ball / m,
        recall=in_some_fake_ball / n,
        density=real_ball_hits / (k * m),
        coverage=int(covered.sum()) / n,
    )

r"""Inception Score from class probabilities :math:`p(y \mid x)`.

Salimans et al. 2016, "Improved techniques for training GANs":

.. math::
    \mathrm{IS} = \exp\left(\mathbb{E}_x \mathrm{KL}\left(p(y \mid x) \Vert p(y)\right)\right),
    \qquad p(y) = \mathbb{E}_x\, p(y \mid x),

computed on ``splits`` disjoint chunks of the samples, reporting the mean and standard deviation
over chunks as in the original code. It lies in :math:`[1, C]` for ``C`` classes: 1 when every
prediction is the same, ``C`` when predictions are confident and the classes balanced.
Barratt and Sharma 2018 ("A note on the Inception Score") list its caveats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .inputs import ArrayLike, as_matrix, check_int

__all__ = ["ISResult", "inception_score"]


@dataclass(frozen=True)
class ISResult:
    r"""Inception Score over splits: ``mean`` and ``std`` (ddof = 0, as in Salimans et al.)
    of the per-split scores ``values`` ``(splits,)``."""

    mean: float
    std: float
    values: np.ndarray


def inception_score(probs: ArrayLike, splits: int = 10, atol: float = 1e-4) -> ISResult:
    r"""Inception Score of class probabilities ``probs`` ``(N, C)`` (Salimans et al. 2016).

    Args:
        probs: rows are :math:`p(y \mid x_i)`: non-negative and summing to 1 within ``atol``
            (softmax outputs, not logits).
        splits: number of disjoint chunks (``numpy.array_split`` order, so shuffle first if
            the rows are sorted); needs ``N >= splits``.

    Example:
        >>> import numpy as np
        >>> inception_score(np.full((20, 4), 0.25), splits=2).mean  # uninformative
        1.0
        >>> round(inception_score(np.tile(np.eye(4), (5, 1)), splits=5).mean, 12)  # confident
        4.0
    """
    p = as_matrix(probs, "probs")
    splits = check_int(splits, "splits")
    if (p < 0).any():
        raise ValueError(f"probs: expected non-negative probabilities, found minimum {p.min()}")
    sums = p.sum(axis=1)
    worst = float(np.abs(sums - 1.0).max())
    if worst > atol:
        raise ValueError(
            f"probs: expected rows summing to 1 (within atol={atol}), found a row summing to "
            f"{sums[np.argmax(np.abs(sums - 1.0))]:.6g}; pass softmax probabilities, not logits"
        )
    if p.shape[0] < splits:
        raise ValueError(f"splits: expected at most N = {p.shape[0]} splits, got {splits}")
    p = p / sums[:, None]
    from scipy.special import xlogy  # imported on use: scipy costs 0.2 s at start-up

    scores = np.empty(splits)
    for s, chunk in enumerate(np.array_split(p, splits)):
        marginal = chunk.mean(axis=0, keepdims=True)
        # xlogy makes 0 log 0 = 0; a positive p(y|x) implies a positive marginal p(y).
        kl = (xlogy(chunk, chunk) - xlogy(chunk, marginal)).sum(axis=1)
        scores[s] = np.exp(kl.mean())
    return ISResult(mean=float(scores.mean()), std=float(scores.std()), values=scores)

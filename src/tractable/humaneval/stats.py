r"""The statistics of human evaluation: Wilson score intervals for the fraction of raters fooled
(the generative Turing test) and Bradley–Terry strengths with bootstrap intervals (side-by-side
comparisons). Pure functions of counts; nothing here knows about the web application.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    r"""The Wilson score interval for a binomial proportion, ``k`` successes in ``n`` trials.

    .. math::
        \frac{\hat p + \frac{z^2}{2n} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n}
        + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}},
        \qquad z = \Phi^{-1}\big(\tfrac{1 + \text{level}}{2}\big)

    Unlike the Wald interval it stays inside :math:`[0, 1]` and keeps its coverage at
    :math:`\hat p \in \{0, 1\}`; ``n = 0`` gives the uninformative ``(0, 1)``.

    Example:
        >>> [round(v, 4) for v in wilson_interval(81, 263)]   # Newcombe (1998), Table I
        [0.2553, 0.3662]

    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    """
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    if k > n:
        raise ValueError(f"k: expected at most n = {n}, got {k}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a value in (0, 1), got {level!r}")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import norm  # imported on use: scipy costs 0.2 s at start-up

    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _wins(pairs: np.ndarray, m: int) -> np.ndarray:
    wins = np.zeros((m, m))
    np.add.at(wins, (pairs[:, 0], pairs[:, 1]), 1.0)
    return wins


def _fit(wins: np.ndarray, prior: float, iters: int = 2000, tol: float = 1e-10) -> np.ndarray:
    # Hunter's (2004) MM updates; the prior adds `prior` virtual wins each way between every
    # pair, so that a model that won (or lost) every comparison keeps a finite strength.
    m = len(wins)
    if m == 1:
        return np.zeros(1)  # one item: nothing to compare, its centred strength is 0
    w = wins + prior * (1 - np.eye(m))
    games = w + w.T
    p = np.ones(m)
    for _ in range(iters):
        denom = (games / (p[:, None] + p[None, :])).sum(1)
        new = w.sum(1) / np.maximum(denom, 1e-300)
        new = new / math.exp(np.log(np.maximum(new, 1e-300)).mean())
        if np.max(np.abs(np.log(np.maximum(new, 1e-300)) - np.log(p))) < tol:
            p = new
            break
        p = new
    score = np.log(np.maximum(p, 1e-300))
    return score - score.mean()


def bradley_terry(
    pairs: Sequence[tuple[int, int]] | np.ndarray,
    m: int,
    *,
    prior: float = 0.5,
    bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""Bradley–Terry strengths of ``m`` items from ``(winner, loser)`` index pairs.

    .. math::
        P(i \text{ beats } j) = \frac{e^{s_i}}{e^{s_i} + e^{s_j}}

    fitted by Hunter's minorise–maximise algorithm with ``prior`` virtual wins each way per pair
    (a small shrinkage that keeps a model that won every comparison finite), scores centred to
    mean 0. Intervals are percentiles of ``bootstrap`` refits on comparisons resampled with
    replacement.

    Returns:
        ``{"score": (m,), "low": (m,), "high": (m,), "wins": (m, m)}``.

    Example:
        >>> out = bradley_terry([(0, 1)] * 30 + [(1, 0)] * 10, 2, bootstrap=200)
        >>> bool(out["score"][0] > 0 > out["score"][1]), bool(out["low"][0] < out["score"][0])
        (True, True)

    Bradley, R. A. and Terry, M. E. (1952); Hunter, D. R. (2004). MM algorithms for generalized
    Bradley–Terry models.
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m: expected an int >= 1, got {m!r}")
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if arr.size and (arr.min() < 0 or arr.max() >= m or np.any(arr[:, 0] == arr[:, 1])):
        raise ValueError(f"pairs: expected (winner, loser) indices in 0..{m - 1}, distinct")
    if prior <= 0:
        raise ValueError(f"prior: expected a value > 0, got {prior!r}")
    wins = _wins(arr, m)
    score = _fit(wins, prior)
    low, high = np.full(m, np.nan), np.full(m, np.nan)
    if bootstrap > 0 and len(arr):
        rng = np.random.default_rng(seed)
        draws = np.stack(
            [
                _fit(_wins(arr[rng.integers(0, len(arr), len(arr))], m), prior)
                for _ in range(bootstrap)
            ]
        )
        alpha = (1 - level) / 2
        low, high = np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)
    return {"score": score, "low": low, "high": high, "wins": wins}

r"""Divergences between distributions in low dimensions.

:func:`grid_divergences` compares two densities known up to normalisation (a model's
``log_prob`` and a target's, say) on a 2D grid; :func:`wasserstein` compares two sample sets
with optimal transport (POT: Flamary et al. 2021, "POT: Python Optimal Transport").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .inputs import (
    ArrayLike,
    as_matrix,
    check_finite_array,
    check_float,
    check_int,
    check_same_features,
    check_seed,
)

__all__ = ["GridDivergences", "grid_divergences", "wasserstein"]

LogDensity = Callable[[torch.Tensor], torch.Tensor | np.ndarray]


@dataclass(frozen=True)
class GridDivergences:
    r"""Divergences (nats) between two densities discretised on a grid.

    Attributes:
        kl_pq: :math:`\mathrm{KL}(p \Vert q)`; ``inf`` when ``q`` vanishes where ``p`` does not.
        kl_qp: :math:`\mathrm{KL}(q \Vert p)`.
        js: the Jensen-Shannon divergence, in :math:`[0, \log 2]`.
        mass_p, mass_q: :math:`\int p` and :math:`\int q` over the grid's box by the midpoint
            rule, before normalisation; far from 1 (for normalised densities) means the box or
            the resolution is too small.
    """

    kl_pq: float
    kl_qp: float
    js: float
    mass_p: float
    mass_q: float


def _check_bounds(bounds: object) -> tuple[tuple[float, float], tuple[float, float]]:
    message = f"bounds: expected ((x_min, x_max), (y_min, y_max)) with min < max, got {bounds!r}"
    if not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ValueError(message)
    out = []
    for pair in bounds:
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(message)
        low = check_float(pair[0], "bounds", positive=False)
        high = check_float(pair[1], "bounds", positive=False)
        if not low < high:
            raise ValueError(message)
        out.append((low, high))
    return out[0], out[1]


def _evaluate(fn: LogDensity, name: str, points: torch.Tensor, batch_size: int) -> np.ndarray:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable mapping (G, 2) to (G,), got {type(fn)}")
    pieces = []
    with torch.no_grad():
        for start in range(0, points.shape[0], batch_size):
            block = points[start : start + batch_size]
            out = fn(block)
            if isinstance(out, torch.Tensor):
                out = out.detach().cpu().to(torch.float64).numpy()
            elif isinstance(out, np.ndarray):
                out = out.astype(np.float64)
            else:
                raise TypeError(
                    f"{name}: expected it to return a torch.Tensor or numpy.ndarray, got "
                    f"{type(out).__name__}"
                )
            if out.shape != (block.shape[0],):
                raise ValueError(
                    f"{name}: expected it to return shape ({block.shape[0]},) for input "
                    f"{tuple(block.shape)}, got {out.shape}"
                )
            pieces.append(out)
    values = np.concatenate(pieces)
    if np.isnan(values).any() or np.isposinf(values).any():
        raise ValueError(
            f"{name}: returned {int(np.isnan(values).sum())} NaN and "
            f"{int(np.isposinf(values).sum())} +inf log-densities on the grid"
        )
    if np.isneginf(values).all():
        raise ValueError(f"{name}: the density is zero (log-density -inf) on the whole grid")
    return values


def _kl(log_p: np.ndarray, log_q: np.ndarray) -> float:
    r""":math:`\sum_i p_i (\log p_i - \log q_i)` for normalised log-probabilities."""
    support = np.isfinite(log_p)
    if np.isneginf(log_q[support]).any():
        return math.inf
    value = float(np.sum(np.exp(log_p[support]) * (log_p[support] - log_q[support])))
    return max(value, 0.0)  # KL >= 0; clip round-off


def grid_divergences(
    log_p_fn: LogDensity,
    log_q_fn: LogDensity,
    bounds: Sequence[Sequence[float]] = ((-4.0, 4.0), (-4.0, 4.0)),
    resolution: int = 200,
    batch_size: int = 65536,
) -> GridDivergences:
    r"""KL both ways and Jensen-Shannon between two 2D densities on a grid.

    Both log-densities are evaluated at the centres of a ``resolution x resolution`` grid over
    ``bounds`` and normalised to probability vectors :math:`p_i, q_i` on the cells (so either may
    be unnormalised); the cell area cancels. Then

    .. math::
        \mathrm{KL}(p \Vert q) = \sum_i p_i \log\frac{p_i}{q_i}, \qquad
        \mathrm{JS} = \tfrac12 \mathrm{KL}(p \Vert m) + \tfrac12 \mathrm{KL}(q \Vert m),
        \quad m = \tfrac12 (p + q).

    This is the midpoint rule, accurate when both densities are smooth on the scale of a cell
    and negligible outside the box (check ``mass_p`` and ``mass_q``).

    Args:
        log_p_fn, log_q_fn: map float64 points ``(G, 2)`` to log-densities ``(G,)``, as a
            tensor or array; a model's ``log_prob`` works. Called under ``torch.no_grad()`` on
            at most ``batch_size`` points at a time. ``-inf`` is allowed, NaN is not.
        bounds: ``((x_min, x_max), (y_min, y_max))``.

    Example:
        >>> import math, torch
        >>> def normal(mean):
        ...     return lambda x: -0.5 * ((x - mean) ** 2).sum(1) - math.log(2 * math.pi)
        >>> out = grid_divergences(normal(0.0), normal(torch.tensor([1.0, 0.0])),
        ...                        bounds=((-9, 10), (-9, 9)), resolution=300)
        >>> round(out.kl_pq, 6), round(out.kl_qp, 6), round(out.mass_p, 6)  # analytic KL: 0.5
        (0.5, 0.5, 1.0)
    """
    (x_lo, x_hi), (y_lo, y_hi) = _check_bounds(bounds)
    resolution = check_int(resolution, "resolution", minimum=2)
    batch_size = check_int(batch_size, "batch_size")
    hx, hy = (x_hi - x_lo) / resolution, (y_hi - y_lo) / resolution
    xs = x_lo + (np.arange(resolution) + 0.5) * hx
    ys = y_lo + (np.arange(resolution) + 0.5) * hy
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    points = torch.from_numpy(np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1))

    raw_p = _evaluate(log_p_fn, "log_p_fn", points, batch_size)
    raw_q = _evaluate(log_q_fn, "log_q_fn", points, batch_size)
    from scipy.special import logsumexp  # imported on use: scipy costs 0.2 s at start-up

    norm_p, norm_q = logsumexp(raw_p), logsumexp(raw_q)
    log_p, log_q = raw_p - norm_p, raw_q - norm_q
    log_m = np.logaddexp(log_p, log_q) - math.log(2.0)
    js = 0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m)
    log_area = math.log(hx * hy)
    return GridDivergences(
        kl_pq=_kl(log_p, log_q),
        kl_qp=_kl(log_q, log_p),
        js=js,
        mass_p=math.exp(norm_p + log_area),
        mass_q=math.exp(norm_q + log_area),
    )


def _subsample(x: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or x.shape[0] <= max_samples:
        return x
    return x[rng.choice(x.shape[0], size=max_samples, replace=False)]


def wasserstein(
    a: ArrayLike,
    b: ArrayLike,
    method: str = "exact",
    p: float = 1.0,
    n_projections: int = 200,
    max_samples: int | None = 2000,
    seed: int | None = 0,
) -> float:
    r"""The :math:`p`-Wasserstein distance between the empirical distributions of ``a``
    ``(N, D)`` and ``b`` ``(M, D)`` with Euclidean ground cost.

    .. math::
        W_p(\mu, \nu) = \left(\min_{\pi \in \Pi(\mu, \nu)}
            \sum_{ij} \pi_{ij} \lVert a_i - b_j \rVert^p\right)^{1/p}

    Args:
        method: ``"exact"`` solves the transport problem with ``ot.emd2`` (cost
            :math:`O(n^3)`, so sets above ``max_samples`` rows are subsampled without
            replacement); ``"sliced"`` averages :math:`W_p^p` of 1D projections on
            ``n_projections`` random directions (``ot.sliced_wasserstein_distance``, Bonneel et
            al. 2015), cheap in any dimension but a different (smaller) quantity.
        p: the order, ``>= 1``.
        max_samples: the most rows used from each set (``None``: all).
        seed: for the subsampling and the projections.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> round(wasserstein(x, x + np.array([3.0, 4.0])), 6)  # a shift by v costs ||v||
        5.0
    """
    import ot  # imported on use: POT is slow to import

    x = as_matrix(a, "a")
    y = as_matrix(b, "b")
    check_same_features(x, "a", y, "b")
    if method not in ("exact", "sliced"):
        raise ValueError(f"method: expected 'exact' or 'sliced', got {method!r}")
    p = check_float(p, "p")
    if p < 1:
        raise ValueError(f"p: expected p >= 1, got {p}")
    n_projections = check_int(n_projections, "n_projections")
    if max_samples is not None:
        max_samples = check_int(max_samples, "max_samples")
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = _subsample(x, max_samples, rng), _subsample(y, max_samples, rng)
    if method == "sliced":
        projection_seed = int(rng.integers(2**31 - 1))
        value = ot.sliced_wasserstein_distance(
            x, y, n_projections=n_projections, p=p, seed=projection_seed
        )
        return float(value)
    # Centring leaves distances unchanged and reduces round-off in the squared-distance product.
    centre = x.mean(axis=0)
    cost = np.maximum(ot.dist(x - centre, y - centre, metric="sqeuclidean"), 0.0) ** (p / 2)
    check_finite_array(cost, "a, b (ground cost)")
    wa = np.full(x.shape[0], 1.0 / x.shape[0])
    wb = np.full(y.shape[0], 1.0 / y.shape[0])
    total, log = ot.emd2(wa, wb, cost, numItermax=10_000_000, log=True)
    if log.get("warning"):
        raise RuntimeError(f"wasserstein: the exact transport solver did not converge: {log}")
    return float(max(float(total), 0.0) ** (1.0 / p))

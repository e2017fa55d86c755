r"""The birthday-paradox test of support size.

Arora and Zhang 2017, "Do GANs learn the distribution? Some theory and empirics": if a batch of
:math:`s` samples from a distribution contains a duplicate with good probability, its support is
about :math:`s^2`. In practice one finds the closest pairs of a batch (in pixel or feature
space) and inspects them by eye; :func:`birthday` finds them and counts the pairs within a
distance ``threshold``, and :func:`plot_birthday_pairs` draws them.

For a uniform distribution over :math:`S` items, the expected number of duplicate pairs among
:math:`N` draws is :math:`\binom{N}{2} / S`, which gives the collision estimate
:math:`\hat S = \binom{N}{2} / n_\text{dup}`. For a non-uniform distribution it estimates
:math:`1 / \sum_i p_i^2 \le S`, an "effective" support size. :func:`birthday_support` follows the
paper's own reading instead: the smallest batch size :math:`s` whose batches hold a duplicate
with probability at least 1/2, squared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .inputs import ArrayLike, as_matrix, check_float, check_int, check_seed

__all__ = [
    "BirthdayResult",
    "BirthdaySupport",
    "birthday",
    "birthday_support",
    "plot_birthday_pairs",
]

# Squared distances from the matrix-product form of cdist are trusted only when they differ from
# the threshold by more than this fraction of |x_i|^2 + |x_j|^2; closer calls are recomputed.
_ROUNDOFF = 1e-10


@dataclass(frozen=True)
class BirthdayResult:
    r"""Closest pairs and duplicate count of a batch.

    Attributes:
        pairs: ``(K, 2)`` int indices ``(i, j)`` with ``i < j``, closest first.
        distances: ``(K,)`` Euclidean distances of those pairs.
        n_duplicates: number of pairs ``i < j`` with distance ``<= threshold``.
        threshold: the distance threshold used.
        n_samples: the batch size ``N``.
        support_estimate: :math:`\binom{N}{2} / n_\text{dup}`, or ``None`` when no pair is
            a duplicate.
    """

    pairs: np.ndarray
    distances: np.ndarray
    n_duplicates: int
    threshold: float
    n_samples: int
    support_estimate: float | None


def birthday(
    samples: ArrayLike,
    threshold: float | None = None,
    top_k: int = 20,
    chunk_size: int = 1024,
) -> BirthdayResult:
    r"""Closest pairs among ``samples`` ``(N, ...)`` and the number of near-duplicate pairs.

    Samples with more than one trailing dimension (images ``(N, C, H, W)``) are flattened.
    Distances are Euclidean, computed with ``torch.cdist`` in row chunks (memory
    ``chunk_size * N``); the reported distances and any comparison with ``threshold`` that
    round-off could flip are recomputed exactly.

    Args:
        samples: the batch, at least 2 rows.
        threshold: pairs at distance ``<= threshold`` count as duplicates; ``None`` means 0
            (exact duplicates only).
        top_k: how many closest pairs to return (fewer if the batch has fewer pairs).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(50, 8))
        >>> x[40] = x[3]  # plant a duplicate
        >>> result = birthday(x, top_k=3)
        >>> result.n_duplicates, result.pairs[0].tolist(), float(result.distances[0])
        (1, [3, 40], 0.0)
    """
    x = as_matrix(samples, "samples", min_rows=2, flatten=True)
    threshold = 0.0 if threshold is None else check_float(threshold, "threshold", positive=False)
    if threshold < 0:
        raise ValueError(f"threshold: expected a float >= 0 or None, got {threshold}")
    top_k = check_int(top_k, "top_k")
    chunk_size = check_int(chunk_size, "chunk_size")
    n = x.shape[0]
    x = x - x.mean(axis=0)
    xt = torch.from_numpy(x)
    norms = (xt**2).sum(dim=1)
    thr2 = threshold**2
    best_d = torch.empty(0, dtype=torch.float64)
    best_ij = torch.empty(0, 2, dtype=torch.long)
    n_dup = 0
    columns = torch.arange(n)
    for start in range(0, n - 1, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n))
        upper = columns[None, :] > rows[:, None]  # each unordered pair once
        d2 = (torch.cdist(xt[rows], xt) ** 2).masked_fill(~upper, torch.inf)  # (c, N)

        tol = _ROUNDOFF * (norms[rows][:, None] + norms[None, :])
        close_call = upper & ((d2 - thr2).abs() <= tol)
        sure = upper & ~close_call & (d2 <= thr2)
        n_dup += int(sure.sum())
        ci, cj = torch.nonzero(close_call, as_tuple=True)
        if ci.numel():
            exact = ((xt[rows[ci]] - xt[cj]) ** 2).sum(dim=1)
            n_dup += int((exact <= thr2).sum())

        k = min(top_k, int(upper.sum()))
        if k:
            vals, flat = torch.topk(d2.reshape(-1), k, largest=False)
            ij = torch.stack([rows[flat // n], flat % n], dim=1)
            best_d = torch.cat([best_d, vals])
            best_ij = torch.cat([best_ij, ij])
            keep = torch.topk(best_d, min(top_k, best_d.numel()), largest=False).indices
            best_d, best_ij = best_d[keep], best_ij[keep]

    pairs = best_ij.numpy()
    distances = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1)
    order = np.argsort(distances, kind="stable")
    n_pairs = n * (n - 1) / 2
    return BirthdayResult(
        pairs=pairs[order],
        distances=distances[order],
        n_duplicates=n_dup,
        threshold=threshold,
        n_samples=n,
        support_estimate=n_pairs / n_dup if n_dup else None,
    )


@dataclass(frozen=True)
class BirthdaySupport:
    r"""The birthday-paradox estimate of a support size (:func:`birthday_support`).

    Attributes:
        estimate: :math:`s_{1/2}^2`, or :math:`N^2` when ``lower_bound``.
        batch_size: :math:`s_{1/2}`, the smallest batch size whose estimated duplicate
            probability is at least 1/2, or ``None`` when no batch of the pool reaches it.
        lower_bound: ``True`` when fewer than half the orderings hold a duplicate at all: the
            support is larger than the pool can tell, ``estimate`` is only a lower bound.
        duplicate_rate: the estimated duplicate probability at ``batch_size`` (or of the
            whole pool when ``lower_bound``).
        draws: the number of random orderings :math:`R`.
        n_samples: the pool size :math:`N`.
        threshold: pairs at distance ``<= threshold`` are duplicates.
    """

    estimate: float
    batch_size: int | None
    lower_bound: bool
    duplicate_rate: float
    draws: int
    n_samples: int
    threshold: float


def birthday_support(
    samples: ArrayLike,
    threshold: float | None = None,
    draws: int = 200,
    seed: int | None = 0,
    chunk_size: int = 1024,
) -> BirthdaySupport:
    r"""The support size of the distribution behind ``samples`` ``(N, ...)`` by the birthday
    paradox (Arora and Zhang 2017, "Do GANs learn the distribution? Some theory and
    empirics"): if batches of :math:`s` samples hold a duplicate with probability at least 1/2,
    the support has about :math:`s^2` elements.

    The duplicate probability of a batch of :math:`s` is estimated from :math:`R` = ``draws``
    random orderings of the pool: with :math:`T_r` the length of the shortest prefix of
    ordering :math:`r` that holds a pair at distance ``<= threshold`` (the first collision),

    .. math::
        \hat P(s) = rac{1}{R} \#\{r : T_r \le s\}, \qquad
        s_{1/2} = \min\{s : \hat P(s) \ge 1/2\}, \qquad \hat S = s_{1/2}^2,

    every prefix of length :math:`s` being a batch of :math:`s` drawn without replacement from
    the pool. For a uniform distribution over :math:`S` items,
    :math:`P(s) pprox 1 - e^{-s(s-1)/2S}`, so :math:`s_{1/2}^2 pprox 2 \ln 2 \, S
    pprox 1.39 S`: the estimate has the right order, not a precise value. The pool should
    hold several times :math:`s_{1/2}` samples; when fewer than half the orderings of the
    whole pool hold a duplicate, :math:`N^2` is returned as a lower bound.

    Distances are Euclidean on flattened rows, with the round-off care of :func:`birthday`.

    Args:
        samples: the pool, at least 2 rows.
        threshold: the duplicate distance (``None``: 0, exact duplicates only).
        draws: the number of random orderings :math:`R`.
        seed: seeds the orderings.

    Example:
        >>> import numpy as np
        >>> atoms = np.random.default_rng(0).normal(size=(1000, 4))  # a support of 1,000
        >>> x = atoms[np.random.default_rng(1).integers(0, 1000, size=3000)]
        >>> out = birthday_support(x)
        >>> out.batch_size, 500 < out.estimate < 2000
        (38, True)
    """
    x = as_matrix(samples, "samples", min_rows=2, flatten=True)
    threshold = 0.0 if threshold is None else check_float(threshold, "threshold", positive=False)
    if threshold < 0:
        raise ValueError(f"threshold: expected a float >= 0 or None, got {threshold}")
    draws = check_int(draws, "draws")
    chunk_size = check_int(chunk_size, "chunk_size")
    seed = check_seed(seed)
    n = x.shape[0]
    x = x - x.mean(axis=0)
    xt = torch.from_numpy(x)
    norms = (xt**2).sum(dim=1)
    thr2 = threshold**2
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    # pos[r, i]: the place of sample i in ordering r (a random permutation of 0..N-1)
    pos = torch.argsort(torch.rand(draws, n, generator=g, dtype=torch.float64), dim=1)
    pos = torch.argsort(pos, dim=1)
    first = torch.full((draws,), n + 1, dtype=torch.long)  # N + 1: no collision in the pool
    columns = torch.arange(n)
    for start in range(0, n - 1, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n))
        upper = columns[None, :] > rows[:, None]
        d2 = torch.cdist(xt[rows], xt) ** 2  # (c, N)
        tol = _ROUNDOFF * (norms[rows][:, None] + norms[None, :])
        close = upper & ((d2 - thr2).abs() <= tol)
        dup = upper & ~close & (d2 <= thr2)
        ci, cj = torch.nonzero(close, as_tuple=True)
        if ci.numel():
            exact = ((xt[rows[ci]] - xt[cj]) ** 2).sum(dim=1) <= thr2
            dup[ci[exact], cj[exact]] = True
        di, dj = torch.nonzero(dup, as_tuple=True)
        for block in range(0, di.numel(), 1 << 14):
            i, j = rows[di[block : block + (1 << 14)]], dj[block : block + (1 << 14)]
            # a pair is in the prefix of length max(pos_i, pos_j) + 1 and every longer one
            t = torch.maximum(pos[:, i], pos[:, j]).min(dim=1).values + 1  # (R,)
            first = torch.minimum(first, t)
    ordered = torch.sort(first).values
    median = int(ordered[(draws + 1) // 2 - 1])  # the smallest s with #{T_r <= s} >= R / 2
    if median > n:
        rate = float((first <= n).double().mean())
        return BirthdaySupport(float(n) ** 2, None, True, rate, draws, n, threshold)
    rate = float((first <= median).double().mean())
    return BirthdaySupport(float(median) ** 2, median, False, rate, draws, n, threshold)


def _to_image(row: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    image = row.reshape(image_shape)
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1)  # (C, H, W) -> (H, W, C)
        if image.shape[-1] == 1:
            image = image[..., 0]
    return image


def plot_birthday_pairs(
    samples: ArrayLike,
    pairs: BirthdayResult | ArrayLike,
    image_shape: Sequence[int],
    path: str | Path,
    columns: int = 5,
) -> Path:
    r"""Write a PNG showing each pair of ``pairs`` side by side, for inspection by eye.

    Args:
        samples: the batch that :func:`birthday` searched, ``(N, ...)`` with
            ``prod(image_shape)`` values per row.
        pairs: a :class:`BirthdayResult` (distances go in the titles) or ``(K, 2)`` indices.
        image_shape: ``(H, W)`` for grey images or ``(C, H, W)`` with ``C`` in {1, 3}.
        path: where to write the PNG; parent directories are created.
        columns: pairs per row of the figure.

    Values already in :math:`[0, 1]` are shown as they are; otherwise all shown images share
    one min-max scaling, so brightness stays comparable between them.

    Example:
        >>> import numpy as np, tempfile, os
        >>> x = np.random.default_rng(0).random((10, 64))
        >>> x[7] = x[2]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "pairs.png")
        ...     plot_birthday_pairs(x, birthday(x, top_k=2), (8, 8), path).stat().st_size > 0
        True
    """
    from matplotlib.figure import Figure  # imported on use; no pyplot state is touched

    x = as_matrix(samples, "samples", min_rows=2, flatten=True)
    shape = tuple(int(s) for s in image_shape)
    if (
        len(shape) not in (2, 3)
        or any(s < 1 for s in shape)
        or (len(shape) == 3 and shape[0] not in (1, 3))
    ):
        raise ValueError(
            f"image_shape: expected (H, W) or (C, H, W) with C in {{1, 3}}, got {image_shape!r}"
        )
    if int(np.prod(shape)) != x.shape[1]:
        raise ValueError(
            f"image_shape: expected {x.shape[1]} values per image to match samples "
            f"{x.shape}, got {shape} ({int(np.prod(shape))} values)"
        )
    distances = None
    if isinstance(pairs, BirthdayResult):
        index, distances = pairs.pairs, pairs.distances
    else:
        index = as_matrix(pairs, "pairs")
        if index.shape[1] != 2 or not np.array_equal(index, np.round(index)):
            raise ValueError(f"pairs: expected integer indices of shape (K, 2), got {index.shape}")
        index = index.astype(np.int64)
    if index.shape[0] == 0:
        raise ValueError("pairs: expected at least one pair, got none")
    if index.min() < 0 or index.max() >= x.shape[0]:
        raise ValueError(
            f"pairs: expected indices in [0, {x.shape[0] - 1}], got range "
            f"[{index.min()}, {index.max()}]"
        )
    columns = check_int(columns, "columns")

    shown = x[index.reshape(-1)]
    low, high = float(shown.min()), float(shown.max())
    if low < 0 or high > 1:
        shown = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
    shown = shown.reshape(index.shape[0], 2, -1)

    k = index.shape[0]
    cols = min(columns, k)
    rows = -(-k // cols)
    fig = Figure(figsize=(2.2 * cols, 1.3 * rows), constrained_layout=True)
    axes = fig.subplots(rows, 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for p in range(k):
        r, c = divmod(p, cols)
        for side in range(2):
            ax = axes[r, 2 * c + side]
            ax.imshow(_to_image(shown[p, side], shape), cmap="gray", vmin=0.0, vmax=1.0)
        title = f"{index[p, 0]}-{index[p, 1]}"
        if distances is not None:
            title += f" d={distances[p]:.3g}"
        axes[r, 2 * c].set_title(title, fontsize=7, loc="left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path

r"""The birthday-paradox test of support size.

Arora and Zhang 2017, "Do GANs learn the distribution? Some theory and empirics": if a batch of
:math:`s` samples from a distribution contains a duplicate with good probability, its support is
about :math:`s^2`. In practice one finds the closest pairs of a batch (in pixel or feature
space) and inspects them by eye; :func:`birthday` finds them and counts the pairs within a
distance ``threshold``, and :func:`plot_birthday_pairs` draws them.

For a uniform distribution over :math:`S` items, the expected number of duplicate pairs among
:math:`N` draws is :math:`\binom{N}{2} / S`, which gives the collision estimate
:math:`\hat S = \binom{N}{2} / n_\text{dup}`. For a non-uniform distribution it estimates
:math:`1 / \sum_i p_i^2 \le S`, an "effective" support size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .inputs import ArrayLike, as_matrix, check_float, check_int

__all__ = ["BirthdayResult", "birthday", "plot_birthday_pairs"]

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

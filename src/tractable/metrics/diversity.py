r"""Pluralistic diversity: how different the outputs of a conditional model are for one input.

For each input :math:`c_m` with outputs :math:`y_{m,1}, \dots, y_{m,K}` (in a feature space),

.. math:: \mathrm{PD} = \frac{1}{MK} \sum_{m=1}^M \sum_{k=1}^K
          \min_{j \ne k} \lVert y_{m,k} - y_{m,j} \rVert_2,

the mean over outputs of the distance to the nearest other output for the same input (in the
spirit of the diversity score of pluralistic image completion, Zheng et al. 2019, which
averages pairwise distances instead). A model that ignores its noise and gives one output per
input scores 0; it says nothing about whether the outputs are good, only how many different
ones there are.

Example:
    >>> import numpy as np
    >>> square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> pluralistic_diversity([square, 2 * square])  # nearest neighbours at 1 and 2
    1.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .inputs import ArrayLike, as_matrix, check_same_features


def pluralistic_diversity(outputs: Sequence[ArrayLike] | ArrayLike) -> float:
    r"""The pluralistic diversity of ``outputs``: a sequence with one ``(K_m, F)`` array per
    input (``K_m >= 2``), or one ``(M, K, F)`` array. Features are float64; the distance is
    Euclidean."""
    if isinstance(outputs, np.ndarray) or hasattr(outputs, "shape"):
        array = np.asarray(outputs, dtype=np.float64)
        if array.ndim != 3:
            raise ValueError(f"outputs: expected an (M, K, F) array, got shape {array.shape}")
        outputs = list(array)
    if isinstance(outputs, str | bytes) or not isinstance(outputs, Sequence) or not outputs:
        raise ValueError("outputs: expected one (K, F) array of outputs per input, got none")
    groups = [as_matrix(o, f"outputs[{m}]", min_rows=2) for m, o in enumerate(outputs)]
    for m, g in enumerate(groups[1:], start=1):
        check_same_features(groups[0], "outputs[0]", g, f"outputs[{m}]")
    nearest = []
    for g in groups:
        d = np.sqrt(np.maximum(((g[:, None, :] - g[None, :, :]) ** 2).sum(-1), 0.0))
        np.fill_diagonal(d, np.inf)
        nearest.append(d.min(axis=1))
    return float(np.concatenate(nearest).mean())


__all__ = ["pluralistic_diversity"]

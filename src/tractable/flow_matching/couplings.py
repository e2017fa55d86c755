r"""Couplings of noise and data for flow matching: independent, minibatch optimal transport, and
the rectified-flow (reflow) couplings of a trained flow.

Minibatch OT (Tong et al. 2024, "Improving and generalizing flow-based generative models with
minibatch optimal transport"; Pooladian et al. 2023): within a batch of :math:`N` noise draws
:math:`x_0^i` and :math:`N` data :math:`x_1^j`, pair them by the permutation :math:`\pi` that
minimises :math:`\sum_i \lVert x_0^i - x_1^{\pi(i)} \rVert^2`, the exact OT plan between the two
empirical measures with uniform weights (an assignment problem, solved by POT's network simplex
``ot.emd``). The conditional paths then cross less, and the learned field is straighter.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    r"""The permutation ``perm`` ``(N,)`` such that ``x0[perm]`` is paired with ``x1`` by the
    exact minibatch OT plan for the squared Euclidean cost (rows flattened).

    Example:
        >>> import torch
        >>> x = torch.randn(6, 2)
        >>> ot_permutation(x, x).tolist()
        [0, 1, 2, 3, 4, 5]
    """
    if x0.shape != x1.shape or x0.dim() < 2:
        raise ValueError(
            f"x0, x1: expected two batches of the same shape (N, ...), got {tuple(x0.shape)} "
            f"and {tuple(x1.shape)}"
        )
    n = x0.shape[0]
    if n <= 1:
        return torch.arange(n, device=x0.device)
    a = x0.detach().reshape(n, -1).double().cpu()
    b = x1.detach().reshape(n, -1).double().cpu()
    cost = torch.cdist(a, b).pow(2).numpy()
    weights = np.full(n, 1.0 / n)
    import ot  # POT imports scipy (1.7 s): on first use, not with the package

    plan = ot.emd(weights, weights, cost)
    # a vertex of the assignment polytope: one entry 1/N per row and column
    rows_for_columns = plan.argmax(axis=0)
    return torch.as_tensor(rows_for_columns, device=x0.device, dtype=torch.long)


def ot_coupling(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(x0 reordered, x1)``: the noise batch paired with the data by minibatch OT
    (:func:`ot_permutation`)."""
    return x0[ot_permutation(x0, x1)], x1


__all__ = ["ot_coupling", "ot_permutation"]

r"""The input checks and row bookkeeping shared by the estimators of this package.

Estimators take user callables (a model's ``log_prob``, a ``log_joint``, a proposal) and call
them on flat batches of rows. These helpers check what goes in and what comes back, with errors
that name the argument, and bound how many rows one call may see: by default the replicated data
of one call holds at most :data:`DEFAULT_MAX_ELEMENTS` values (64 MB in float32).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_finite, check_positive_int

DEFAULT_MAX_ELEMENTS = 2**24


def check_examples(x: object) -> Tensor:
    r"""Check a batch of examples ``(N, ...)`` (finite if floating) and return it. An empty
    batch (:math:`N = 0`) is allowed: the estimators give it an empty :class:`Estimate`.

    Example:
        >>> import torch
        >>> check_examples(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"x: expected shape (N, ...), got a scalar {tuple(x.shape)}")
    if x.is_floating_point() or x.is_complex():
        check_finite(x, "x")
    return x


def check_callable(fn: object, name: str) -> None:
    r"""A ``TypeError`` naming ``name`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")


def check_output(value: object, name: str, shape: tuple[int, ...]) -> Tensor:
    r"""Check what the callable ``name`` returned: a tensor of exactly ``shape`` without NaN.

    Example:
        >>> import torch
        >>> check_output(torch.zeros(4), "log_joint", (4,)).shape
        torch.Size([4])
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected to return a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name}: expected to return shape {shape}, got {tuple(value.shape)}")
    if bool(torch.isnan(value).any()):
        raise ValueError(f"{name}: returned {int(torch.isnan(value).sum())} NaN values")
    return value


def row_limit(x: Tensor, max_rows: int | None) -> int:
    r"""How many rows one call may see: ``max_rows`` (checked), or by default as many rows
    like those of ``x`` as hold :data:`DEFAULT_MAX_ELEMENTS` values (at least one).

    Example:
        >>> import torch
        >>> row_limit(torch.zeros(10, 2**20), None), row_limit(torch.zeros(10, 3), 7)
        (16, 7)
    """
    if max_rows is None:
        row = max(1, math.prod(x.shape[1:]))
        return max(1, DEFAULT_MAX_ELEMENTS // row)
    return check_positive_int(max_rows, "max_rows")


def repeat_rows(x: Tensor, c: int) -> Tensor:
    r"""``c`` copies of ``x`` stacked in the order of the draws: ``(b, ...) -> (c * b, ...)``.

    Example:
        >>> import torch
        >>> repeat_rows(torch.tensor([[1], [2]]), 2).flatten().tolist()
        [1, 2, 1, 2]
    """
    return x.unsqueeze(0).expand(c, *x.shape).reshape(c * x.shape[0], *x.shape[1:])


def latent_states(support: Tensor | int, like: Tensor) -> Tensor:
    r"""Every state of a finite latent space: an int :math:`K` gives the ``long`` tensor
    ``0..K-1`` (on ``like``'s device); a non-empty tensor ``(S, *z_shape)`` is returned as is.

    Example:
        >>> import torch
        >>> latent_states(3, torch.zeros(1)).tolist()
        [0, 1, 2]
    """
    if isinstance(support, int) and not isinstance(support, bool):
        check_positive_int(support, "support")
        return torch.arange(support, device=like.device)
    if not isinstance(support, Tensor) or support.dim() < 1 or support.shape[0] == 0:
        raise ValueError(
            "support: expected an int K (states 0..K-1) or a non-empty tensor (S, ...) of latent "
            f"states, got {support!r}"
        )
    return support


__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "check_callable",
    "check_examples",
    "check_output",
    "latent_states",
    "repeat_rows",
    "row_limit",
]

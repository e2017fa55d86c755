r"""Training data as in-memory tensors: checks, fingerprints, and a resumable batch order.

A dataset is a tensor ``x`` of shape ``(N, ...)`` or a tuple ``(x, context, ...)`` of tensors
sharing ``N``. Epoch :math:`e` visits the rows in the order of ``torch.randperm`` drawn from a
generator seeded with a hash of ``(seed, e)``, and the last ``N mod B`` rows of each epoch are
dropped, so the position in the data is just ``(epoch, batch index)``: a resumed run recomputes
the same permutation instead of storing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import check_finite

Batch = Tensor | tuple[Tensor, ...]


def derive_seed(seed: int, *tags: object) -> int:
    r"""A 63-bit seed for an independent stream, from ``seed`` and any tags.

    Example:
        >>> derive_seed(0, "epoch", 1) == derive_seed(0, "epoch", 1) != derive_seed(0, "epoch", 2)
        True
    """
    text = ":".join(str(t) for t in (seed, *tags)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def as_parts(data: object, name: str) -> tuple[Tensor, ...]:
    r"""Check a dataset and return it as a tuple of tensors with a common first dimension."""
    parts = (data,) if isinstance(data, Tensor) else data
    if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts:
        raise TypeError(
            f"{name}: expected a Tensor (N, ...) or a tuple of tensors (x, context), "
            f"got {type(data).__name__}"
        )
    parts = tuple(parts)
    for i, t in enumerate(parts):
        label = name if len(parts) == 1 else f"{name}[{i}]"
        if not isinstance(t, Tensor):
            raise TypeError(f"{label}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() == 0:
            raise ValueError(f"{label}: expected shape (N, ...), got a scalar")
        if t.shape[0] != parts[0].shape[0]:
            raise ValueError(
                f"{label}: expected {parts[0].shape[0]} rows to match {name}[0], got {t.shape[0]}"
            )
        if t.is_floating_point():
            check_finite(t, label)
    if parts[0].shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {tuple(parts[0].shape)}")
    return parts


def fingerprint(parts: tuple[Tensor, ...] | None) -> list[dict[str, Any]] | None:
    r"""Shape, dtype and SHA-256 of each tensor, to check that a resumed run sees the same data."""
    if parts is None:
        return None
    out = []
    for t in parts:
        flat = t.detach().to("cpu").contiguous().reshape(-1)
        digest = hashlib.sha256(flat.view(torch.uint8).numpy().data).hexdigest()
        out.append({"shape": list(t.shape), "dtype": str(t.dtype), "sha256": digest})
    return out


def permutation(n: int, seed: int, epoch: int) -> Tensor:
    r"""The visiting order of epoch ``epoch`` (a permutation of ``range(n)``)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    return torch.randperm(n, generator=gen)


def take(parts: tuple[Tensor, ...], rows: Tensor | slice) -> tuple[Tensor, ...]:
    return tuple(t[rows] for t in parts)


def to_batch(parts: tuple[Tensor, ...], device: torch.device) -> Batch:
    r"""A tensor for one-part data, else a tuple, on ``device``."""
    moved = tuple(t.to(device) for t in parts)
    return moved[0] if len(moved) == 1 else moved


def batch_size_of(batch: Batch) -> int:
    return int(batch.shape[0] if isinstance(batch, Tensor) else batch[0].shape[0])


__all__ = ["Batch", "as_parts", "derive_seed", "fingerprint", "permutation", "take", "to_batch"]

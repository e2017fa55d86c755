r"""The :class:`Dataset` container and the seeded split helpers every loader shares.

Splits are deterministic functions of ``(seed, dataset name, purpose)``: each random choice
draws from its own :class:`numpy.random.Generator`, never from numpy's or torch's global state,
so loading twice with the same seed gives the same tensors, and the test split of a toy does
not change with the size of its training split.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .preprocess import KINDS, Preprocessor

__all__ = ["SPLITS", "Dataset", "seeded_rng", "split_indices", "to_tensor"]

SPLITS = ("train", "val", "test")


@dataclass(eq=False, repr=False)
class Dataset:
    r"""Train, validation and test splits of one dataset, with what is needed to use them.

    Attributes:
        name: canonical name (``"moons"``, ``"mnist5k-binary"``, or a file's name).
        train, val, test: raw data, float tensors of shape ``(N, *shape)``. Discrete data hold
            integer values ``0 .. levels-1``; dynamically binarized data hold intensities in
            ``[0, 1]`` in ``train`` and fixed 0/1 draws in ``val``/``test``. Feed models
            ``preprocess.train_batch(batch)`` in training and ``preprocess.eval(batch, g)``
            in evaluation, never the raw values.
        shape: event shape of one example, e.g. ``(2,)`` or ``(1, 28, 28)``.
        kind: ``"continuous"``, ``"discrete"`` or ``"binary"``.
        levels: values per dimension (17 for digits, 256 for MNIST, 2 for binary) or ``None``.
        preprocess: the :class:`~tractable.data.Preprocessor` from raw data to model space.
        train_labels, val_labels, test_labels: ``(N,)`` int64 class labels, or ``None``.
        source: the name or path given to :func:`~tractable.data.load`.
        seed, n, options: the other arguments of that call (to rebuild it).
        info: a one-line note on the origin of the data.
    """

    name: str
    train: Tensor
    val: Tensor
    test: Tensor
    shape: tuple[int, ...]
    kind: str
    levels: int | None
    preprocess: Preprocessor
    train_labels: Tensor | None = None
    val_labels: Tensor | None = None
    test_labels: Tensor | None = None
    source: str = ""
    seed: int = 0
    n: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    info: str = ""

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        for split in SPLITS:
            x = getattr(self, split)
            if not isinstance(x, Tensor) or not x.is_floating_point():
                raise TypeError(f"{split}: expected a floating torch.Tensor")
            if tuple(x.shape[1:]) != self.shape:
                raise ValueError(
                    f"{split}: expected shape (N, {', '.join(map(str, self.shape))}), "
                    f"got {tuple(x.shape)}"
                )
            if x.shape[0] == 0:
                raise ValueError(f"{split}: the split is empty (shape {tuple(x.shape)})")
            labels = getattr(self, f"{split}_labels")
            if labels is not None and (labels.dim() != 1 or labels.shape[0] != x.shape[0]):
                raise ValueError(
                    f"{split}_labels: expected shape ({x.shape[0]},), got {tuple(labels.shape)}"
                )
        if (
            self.preprocess.shape != self.shape
            or self.preprocess.kind != self.kind
            or self.preprocess.levels != self.levels
        ):
            raise ValueError(
                f"preprocess: built for shape {self.preprocess.shape}, kind "
                f"{self.preprocess.kind!r} and levels {self.preprocess.levels}, but the data "
                f"have {self.shape}, {self.kind!r} and {self.levels}"
            )

    @property
    def dims(self) -> int:
        r"""Number of dimensions :math:`D` of one example."""
        return math.prod(self.shape)

    def split(self, name: str) -> Tensor:
        r"""The raw data of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"name: expected a split name, one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def labels(self, name: str) -> Tensor | None:
        r"""The labels of split ``name``, or ``None``."""
        self.split(name)
        return getattr(self, f"{name}_labels")

    def sizes(self) -> dict[str, int]:
        r"""Number of examples per split."""
        return {s: int(getattr(self, s).shape[0]) for s in SPLITS}

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serialisable description (for a run's ``config.json``).

        ``load_from_dict`` of this dict rebuilds the same splits (given the same files).
        """
        return {
            "name": self.name,
            "source": self.source or self.name,
            "seed": self.seed,
            "n": self.n,
            "options": dict(self.options),
            "kind": self.kind,
            "shape": list(self.shape),
            "levels": self.levels,
            "sizes": self.sizes(),
            "labels": self.train_labels is not None,
            "preprocess": self.preprocess.to_dict(),
            "info": self.info,
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        levels = f", levels={self.levels}" if self.levels is not None else ""
        return (
            f"Dataset(name={self.name!r}, shape={self.shape}, kind={self.kind!r}{levels}, {sizes})"
        )


def seeded_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    r"""An independent numpy generator for one random choice of one dataset.

    Example:
        >>> a = seeded_rng(0, "moons", "test").random()
        >>> b = seeded_rng(0, "moons", "test").random()
        >>> a == b, a == seeded_rng(1, "moons", "test").random()
        (True, False)
    """
    key = [int(seed), zlib.crc32(name.encode()), zlib.crc32(purpose.encode())]
    return np.random.default_rng(key)


def split_indices(
    n_total: int,
    fractions: tuple[float, float],
    rng: np.random.Generator,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Shuffled, disjoint train/val/test indices covering ``range(n_total)``.

    ``fractions`` are the validation and test fractions. With ``labels`` the split is
    stratified: each class contributes ``round(fraction * count)`` examples to val and test,
    so every split keeps the class balance.

    Example:
        >>> import numpy as np
        >>> tr_, va, te = split_indices(10, (0.2, 0.2), np.random.default_rng(0))
        >>> len(tr_), len(va), len(te)
        (6, 2, 2)
        >>> sorted(np.concatenate([tr_, va, te]).tolist()) == list(range(10))
        True
    """
    f_val, f_test = fractions
    if not (0 <= f_val < 1 and 0 <= f_test < 1 and f_val + f_test < 1):
        raise ValueError(f"fractions: expected val, test fractions summing to < 1, got {fractions}")
    groups = (
        [np.arange(n_total)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    parts: list[list[np.ndarray]] = [[], [], []]
    for idx in groups:
        idx = rng.permutation(idx)
        n_test = int(round(f_test * len(idx)))
        n_val = int(round(f_val * len(idx)))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def to_tensor(array: np.ndarray, dtype: torch.dtype | None = None) -> Tensor:
    r"""A float tensor (default dtype unless ``dtype``) holding a copy of ``array``."""
    return torch.tensor(np.asarray(array), dtype=dtype or torch.get_default_dtype())

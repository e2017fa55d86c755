r"""User data from CSV, NPY or NPZ files, and the text-table reader the benchmarks share.

``tractable.data.load("path/to/file.csv")`` reads a numeric table (rows are examples), an
``.npy`` array ``(N, *shape)``, or an ``.npz`` archive holding either ``train``/``val``/``test``
arrays (``validation`` is accepted for ``val``) or a single array. Without explicit splits the
rows are shuffled with ``seed`` and split 80/10/10. Arrays are read with
``allow_pickle=False``; NaN, infinities, non-numeric cells and wrong ranks are refused with a
message naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset, seeded_rng, split_indices, to_tensor
from .preprocess import Preprocessor, fit_standardizer

__all__ = ["SUFFIXES", "load_file", "read_table"]

SUFFIXES = (".csv", ".txt", ".tsv", ".npy", ".npz")


def _parse_row(line: str, delimiter: str | None) -> list[float] | None:
    try:
        return [float(v) for v in line.split(delimiter)]
    except ValueError:
        return None


def read_table(
    path: str | Path, delimiter: str | None = None, header: bool | None = None
) -> tuple[np.ndarray, list[str] | None]:
    r"""Read a numeric text table ``(N, K)`` and its header names (or ``None``).

    ``header=None`` treats the first line as a header when it is not numeric.
    ``delimiter=None`` picks ``","`` when the first data row has a comma, else whitespace.
    Lines starting with ``#`` after the first are comments.
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        first, second = f.readline().strip(), f.readline().strip()
    if not first:
        raise ValueError(f"{path}: the file is empty or starts with a blank line")
    if header is None:
        seps = [delimiter] if delimiter is not None else [",", None]
        header = all(_parse_row(first, sep) is None for sep in seps)
    data_line = second if header else first
    if delimiter is None:
        # decided on the first data row: a header may be comma-separated over whitespace data
        delimiter = "," if "," in data_line else None
    names = None
    if header:
        sep = "," if "," in first else None
        names = [v.strip().lstrip("#").strip() for v in first.split(sep)]
    try:
        table = np.loadtxt(
            path,
            delimiter=delimiter,
            skiprows=int(header),
            comments="#",
            ndmin=2,
            dtype=np.float64,
        )
    except ValueError as err:
        raise ValueError(
            f"{path}: expected a numeric table (one example per row, "
            f"{'comma' if delimiter == ',' else 'whitespace'}-separated"
            f"{', after one header line' if header else ''}); {err}"
        ) from None
    if table.size == 0:
        raise ValueError(f"{path}: no data rows")
    return table, names


def _check_array(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{where}: expected a numeric array, got dtype {x.dtype}")
    if np.iscomplexobj(x):
        raise ValueError(f"{where}: expected real values, got dtype {x.dtype}")
    if x.ndim < 2:
        hint = "; for one feature per example reshape to (N, 1)" if x.ndim == 1 else ""
        raise ValueError(
            f"{where}: expected shape (N, D) or (N, *shape) with one example per row, got "
            f"{x.shape}{hint}"
        )
    if x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(f"{where}: expected at least one example and feature, got {x.shape}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{where}: expected finite values, found {int(np.isnan(x).sum())} NaN and "
            f"{int(np.isinf(x).sum())} infinite entries (first in row {row})"
        )
    return x


def _check_range(x: np.ndarray, dtype: torch.dtype, where: str) -> None:
    r"""A ``ValueError`` naming ``where`` (the file) when a value of ``x`` does not fit in
    ``dtype``: it would become infinite, e.g. 1e308 in float32."""
    limit = torch.finfo(dtype).max
    big = np.abs(x) > limit
    if big.any():
        first = np.argwhere(big)[0]
        raise ValueError(
            f"{where}: the value {float(x[tuple(first)]):g} (data row {int(first[0])}) overflows "
            f"{str(dtype).replace('torch.', '')}, whose largest finite value is {limit:g}; "
            "rescale the data, or load it with dtype=torch.float64"
        )


def _check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"{where}: expected numeric labels of shape ({n},), got {labels.shape}")
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{where}: expected integer class labels")
    return labels.astype(np.int64)


def _label_column(table: np.ndarray, names: list[str] | None, label: int | str, path: Path) -> int:
    if isinstance(label, str):
        if names is None or label not in names:
            raise ValueError(f"label_column: no column named {label!r} in {path} (header: {names})")
        return names.index(label)
    if isinstance(label, bool) or not isinstance(label, int):
        raise TypeError(f"label_column: expected an int or a str, got {type(label).__name__}")
    k = table.shape[1]
    if not -k <= label < k:
        raise ValueError(f"label_column: expected an index in [-{k}, {k}), got {label}")
    return label % k


def load_file(
    path: Path,
    *,
    seed: int,
    n: int | None,
    dtype: torch.dtype | None = None,
    label_column: int | str | None = None,
    labels_key: str | None = None,
    key: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    levels: int | None = None,
    binary: bool = False,
    logit: float | None = None,
    standardize: bool | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Dataset:
    r"""A :class:`Dataset` from a user file (see the module docstring).

    Args:
        label_column: CSV column (index or header name) holding integer class labels.
        labels_key: NPZ array of labels for a single-array archive (``key``).
        key: NPZ array to use when the archive holds several but no ``train``.
        levels: the data are integers ``0 .. levels-1`` (discrete, dequantized in training).
        binary: the data are 0/1 (binary kind).
        logit: logit-transform lambda for discrete data.
        standardize: standardise continuous data with training statistics (default ``True``).
        val_fraction, test_fraction: held-out fractions when the file has no splits.
    """
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; expected a data file ({', '.join(SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {SUFFIXES}")
    if levels is not None and (
        isinstance(levels, bool) or not isinstance(levels, int) or levels < 2
    ):
        raise ValueError(f"levels: expected an int >= 2 or None, got {levels!r}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__}")
        if not 0 <= value < 1:
            raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction, test_fraction: expected a sum < 1 (some rows left to train on), got "
            f"{val_fraction} + {test_fraction}"
        )
    if label_column is not None and suffix not in (".csv", ".txt", ".tsv"):
        raise ValueError(
            f"label_column: only text tables have label columns, not {suffix!r} "
            "files (use labels_key for .npz)"
        )
    if labels_key is not None and suffix != ".npz":
        raise ValueError(f"labels_key: only .npz archives take labels_key, not {suffix!r}")
    labels = None
    split_labels: dict[str, np.ndarray] | None = None
    splits: dict[str, np.ndarray] | None = None
    if suffix == ".npy":
        x = _check_array(np.load(path, allow_pickle=False), str(path))
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            files = list(f.files)
            if "train" in files:
                val = "val" if "val" in files else "validation" if "validation" in files else None
                if val is None or "test" not in files:
                    raise ValueError(f"{path}: has 'train' but not both 'val' and 'test' ({files})")
                keys = {"train": "train", "val": val, "test": "test"}
                splits = {s: _check_array(f[k], f"{path}[{k}]") for s, k in keys.items()}
                if "train_labels" in files:
                    split_labels = {s: np.asarray(f[f"{k}_labels"]) for s, k in keys.items()}
            else:
                name = key or (files[0] if len(files) == 1 else None)
                if name is None or name not in files:
                    raise ValueError(
                        f"{path}: holds {files}; pass key=... to choose the data array, or store "
                        "'train', 'val' and 'test'"
                    )
                x = _check_array(f[name], f"{path}[{name}]")
                if labels_key is not None:
                    if labels_key not in files:
                        raise ValueError(f"labels_key: no array {labels_key!r} in {path} ({files})")
                    labels = np.asarray(f[labels_key])
    elif suffix in (".csv", ".txt", ".tsv"):
        table, names = read_table(
            path, delimiter="\t" if suffix == ".tsv" else delimiter, header=header
        )
        if label_column is not None:
            j = _label_column(table, names, label_column, path)
            labels = table[:, j]
            table = np.delete(table, j, axis=1)
        x = _check_array(table, str(path))
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {SUFFIXES}")

    target = dtype or torch.get_default_dtype()
    if splits is None:
        _check_range(x, target, str(path))
    else:
        for s, v in splits.items():
            _check_range(v, target, f"{path}[{s}]")
    if labels is not None:
        labels = _check_labels(labels, len(x), f"{path} labels")
    if splits is None:
        tr_i, va_i, te_i = split_indices(
            len(x), (val_fraction, test_fraction), seeded_rng(seed, path.name, "split")
        )
        if min(len(tr_i), len(va_i), len(te_i)) == 0:
            raise ValueError(f"{path}: {len(x)} rows are too few for a train/val/test split")
        splits = {"train": x[tr_i], "val": x[va_i], "test": x[te_i]}
        ys = (
            None
            if labels is None
            else {"train": labels[tr_i], "val": labels[va_i], "test": labels[te_i]}
        )
    else:
        ys = None
        if split_labels is not None:
            ys = {
                s: _check_labels(v, len(splits[s]), f"{path}[{s}_labels]")
                for s, v in split_labels.items()
            }
    shape = splits["train"].shape[1:]
    for s, v in splits.items():
        if v.shape[1:] != shape:
            raise ValueError(f"{path}: split {s!r} has shape {v.shape}, expected (N, *{shape})")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(splits["train"]):
            raise ValueError(f"n: expected an int in 1..{len(splits['train'])}, got {n!r}")
        splits["train"] = splits["train"][:n]
        if ys is not None:
            ys["train"] = ys["train"][:n]

    if levels is not None and binary:
        raise ValueError("levels, binary: give one of them, not both")
    if (levels is not None or binary) and standardize:
        raise ValueError("standardize: only continuous data are standardised")
    if levels is not None or binary:
        top = 1 if binary else levels - 1
        for s, v in splits.items():
            if v.min() < 0 or v.max() > top or not np.array_equal(v, np.round(v)):
                raise ValueError(f"{path}: split {s!r} must hold integers in 0..{top}")
    tensors = {s: to_tensor(v, dtype) for s, v in splits.items()}
    if binary:
        kind, prep = "binary", Preprocessor(shape, "binary")
    elif levels is not None:
        kind, prep = "discrete", Preprocessor(shape, "discrete", levels=levels, logit=logit)
    else:
        if logit is not None:
            raise ValueError("logit: the logit transform needs discrete data (pass levels=...)")
        kind = "continuous"
        standardize = True if standardize is None else standardize
        try:
            prep = fit_standardizer(tensors["train"]) if standardize else Preprocessor(shape)
        except ValueError as err:
            # the values fit the dtype but their spread does not (e.g. 1e300 and -1e300)
            raise ValueError(
                f"{path}: cannot standardise the training split, its mean or spread overflows "
                f"{str(tensors['train'].dtype).replace('torch.', '')} ({err}); rescale the data "
                "or pass standardize=False"
            ) from None
    options = {
        k: v
        for k, v in {
            "label_column": label_column,
            "labels_key": labels_key,
            "key": key,
            "delimiter": delimiter,
            "header": header,
            "levels": levels,
            "logit": logit,
            "standardize": standardize,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }.items()
        if v is not None
    }
    if binary:
        options["binary"] = True
    lab = {} if ys is None else {f"{s}_labels": torch.as_tensor(v) for s, v in ys.items()}
    return Dataset(
        name=path.name,
        train=tensors["train"],
        val=tensors["val"],
        test=tensors["test"],
        shape=tuple(shape),
        kind=kind,
        levels=2 if binary else levels,
        preprocess=prep,
        source=str(path),
        seed=seed,
        n=n,
        options=options,
        info=f"user data from {path}",
        **lab,
    )

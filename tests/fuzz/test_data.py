"""Fuzzing the loading of user files: CSV text and NPY arrays written by the test, with the
options of ``tractable.data.load``."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tractable as tr

from .helpers import arrays, attempt, fuzz

COUNTER = itertools.count()
GOOD = st.one_of(
    st.floats(-5, 5, allow_nan=False).map(lambda v: f"{v:.3g}"), st.integers(0, 3).map(str)
)
CELLS = st.one_of(
    GOOD,
    GOOD,
    GOOD,
    GOOD,
    st.sampled_from(["nan", "inf", "-inf", "1e308", "1e39", "", "abc", "0x1", "1,5", " "]),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-data")


def options() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {},
        optional={
            "levels": st.sampled_from([None, 1, 2, 4, 2.0]),
            "binary": st.booleans(),
            "standardize": st.sampled_from([None, True, False]),
            "label_column": st.sampled_from([0, -1, 9, "a", 1.5]),
            "dtype": st.sampled_from([torch.float32, torch.float64, "float32"]),
            "n": st.sampled_from([None, 0, 1, 3, 10**6]),
            "val_fraction": st.sampled_from([0.1, 0.0, 0.5, 1.5, math.nan]),
        },
    )


def check(path: Path, opts: dict) -> None:
    names = {str(path), *opts, "name_or_path", "options", f"{path} labels"}
    ds = attempt(tr.data.load, str(path), names=names, finite=False, **opts)
    if ds is not None:
        for split in ("train", "val", "test"):
            x = getattr(ds, split)
            assert x.shape[1:] == ds.shape and x.shape[0] >= 1
            assert bool(torch.isfinite(x).all())


@fuzz(150)
@given(
    rows=st.integers(1, 3).flatmap(
        lambda k: st.lists(st.lists(CELLS, min_size=k, max_size=k), min_size=0, max_size=14)
    ),
    header=st.booleans(),
    sep=st.sampled_from([",", " ", "\t", ";"]),
    opts=st.one_of(st.just({}), st.just({}), options()),
)
def test_csv(folder: Path, rows: list[list[str]], header: bool, sep: str, opts: dict) -> None:
    path = folder / f"table{next(COUNTER)}.csv"
    lines = ([sep.join("abc"[: len(rows[0])])] if header and rows else []) + [
        sep.join(r) for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    check(path, opts)


@fuzz(100)
@given(
    array=st.one_of(arrays(), st.integers(1, 14).flatmap(lambda n: arrays((n, 2)))),
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex64]),
    opts=st.one_of(st.just({}), st.just({}), options()),
)
def test_npy(folder: Path, array: np.ndarray, dtype: type, opts: dict) -> None:
    path = folder / f"array{next(COUNTER)}.npy"
    with np.errstate(all="ignore"):
        np.save(
            path, np.nan_to_num(array, nan=0.0).astype(dtype) if dtype is not np.float64 else array
        )
    opts.pop("label_column", None)
    check(path, opts)

r"""The dataset registry: :func:`load` by name or path, :func:`names`, :func:`describe`."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .dataset import Dataset
from .download import default_data_root
from .files import SUFFIXES, load_file
from .images import IMAGES, load_image
from .tabular import TABULAR, load_tabular
from .toy import TOYS, load_toy

__all__ = ["describe", "load", "load_from_dict", "names"]

# name -> (builder, group, needs files under data_root)
_REGISTRY: dict[str, tuple[Callable[..., Dataset], str, bool]] = {}
for _name in TOYS:
    _REGISTRY[_name] = (load_toy, "toy", False)
for _name in IMAGES:
    _REGISTRY[_name] = (load_image, "image", _name.split("-")[0] in ("mnist", "cifar10"))
for _name in TABULAR:
    _REGISTRY[_name] = (load_tabular, "tabular", True)
_DESCRIPTIONS = {**TOYS, **IMAGES, **TABULAR}
_ALIASES = {"8gaussian": "8gaussians", "swiss_roll": "swissroll", "two_spirals": "2spirals"}


def names() -> list[str]:
    r"""Every registered dataset name, sorted.

    Example:
        >>> "moons" in names() and "mnist5k-binary" in names()
        True
    """
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    r"""A one-line description of dataset ``name``: group, origin and files needed.

    Example:
        >>> describe("moons").startswith("moons [toy]")
        True
    """
    name = _canonical(name)
    _, group, needs_files = _REGISTRY[name]
    where = " (local files under data_root)" if needs_files else ""
    return f"{name} [{group}]{where}: {_DESCRIPTIONS[name]}"


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name_or_path: expected a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(
            f"name_or_path: unknown dataset {name!r}; expected one of {', '.join(names())}, or "
            f"the path of a {'/'.join(s.lstrip('.') for s in SUFFIXES)} file"
        )
    return key


def _looks_like_path(name: str) -> bool:
    return (
        os.sep in name
        or "/" in name
        or Path(name).suffix.lower() in SUFFIXES
        or (name.lower() not in _REGISTRY and Path(name).exists())
    )


def _dtype(value: object) -> torch.dtype | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = getattr(torch, value, None)
    if isinstance(value, torch.dtype) and value.is_floating_point and not value.is_complex:
        return value
    raise ValueError(
        f"dtype: expected a floating torch dtype or its name (e.g. 'float32'), got {value!r}"
    )


def load(
    name_or_path: str | os.PathLike,
    *,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    n: int | None = None,
    **options: Any,
) -> Dataset:
    r"""Load a dataset by registered name or from a CSV/NPY/NPZ file.

    Args:
        name_or_path: a name from :func:`names` or the path of a user file.
        seed: seeds every random choice made while building the dataset (toy samples, splits
            of datasets without an official split, fixed binarizations, GAS subsampling). Keep
            it fixed across training runs to compare them on the same test set.
        data_root: folder of local benchmark files (default ``$TRACTABLE_DATA`` or
            ``~/.cache/tractable/data``).
        n: number of training examples (toys: how many to draw, default 20,000; other
            datasets: keep the first ``n`` of the training split). Validation and test are
            never shrunk by ``n``.
        **options: dataset-specific options, e.g. ``image=True`` (image event shape),
            ``logit=1e-6`` (logit transform of discrete data), ``standardize=True``,
            ``n_val``/``n_test`` (toys), ``std`` (grid25), ``trust_pickle``/``subsample``
            (gas), ``label_column``/``levels``/``binary`` (user files), ``dtype`` (tensor dtype,
            default torch's default dtype; not recorded in ``to_dict``).

    Returns:
        a :class:`~tractable.data.Dataset`.

    Example:
        >>> import tractable as tr
        >>> ds = tr.data.load("moons", n=1000)
        >>> ds.train.shape, ds.val.shape, ds.kind
        (torch.Size([1000, 2]), torch.Size([5000, 2]), 'continuous')
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected an int >= 1 or None, got {n!r}")
    dtype = _dtype(options.pop("dtype", None))
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            raise ValueError(
                f"name_or_path: {name_or_path!r} is a directory, not a data file; give a "
                f"{', '.join(SUFFIXES)} file inside it, or a registered dataset name"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"name_or_path: {name_or_path!r} looks like a file path but no such file exists; "
                f"registered datasets are {', '.join(names())}"
            )
        builder: Callable[..., Dataset] = load_file
        args: dict[str, Any] = {"path": path}
    else:
        name = _canonical(name_or_path)
        builder = _REGISTRY[name][0]
        args = {"name": name}
        if "data_root" in inspect.signature(builder).parameters:
            root = Path(data_root).expanduser() if data_root is not None else default_data_root()
            args["data_root"] = root
    accepted = [
        p.name
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.name not in ("seed", "n", "data_root", "dtype")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        target = args.get("name", "a file")
        raise TypeError(
            f"options: unknown option(s) {unknown} for {target!r}; accepted: "
            f"{', '.join(accepted) or 'none'}"
        )
    ds = builder(**args, seed=seed, n=n, dtype=dtype, **options)
    try:
        json.dumps(ds.options)
    except TypeError as err:
        raise TypeError(f"options: expected JSON-serialisable values ({err})") from None
    if not ds.source:
        ds.source = args.get("name", "")
    return ds


def load_from_dict(d: dict[str, Any], *, data_root: str | os.PathLike | None = None) -> Dataset:
    r"""Rebuild a dataset from :meth:`Dataset.to_dict` output (e.g. a run's ``config.json``).

    Example:
        >>> import tractable as tr
        >>> ds = tr.data.load("8gaussians", n=100, seed=3)
        >>> bool((tr.data.load_from_dict(ds.to_dict()).train == ds.train).all())
        True
    """
    if not isinstance(d, dict) or "source" not in d:
        raise ValueError("d: expected a dict from Dataset.to_dict() with a 'source' key")
    return load(
        d["source"],
        seed=d.get("seed", 0),
        data_root=data_root,
        n=d.get("n"),
        **d.get("options", {}),
    )

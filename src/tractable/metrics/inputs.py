r"""Input checks shared by the sample-based metrics.

Every metric accepts numpy arrays or torch tensors and computes in float64; these helpers turn
either into a float64 numpy array after checking its type, shape and values, so that a bad
argument fails with a message that names it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(value: object, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
        return value.detach().cpu().to(torch.float64).numpy()
    if isinstance(value, np.ndarray):
        if np.iscomplexobj(value):
            raise TypeError(f"{name}: expected a real array, got dtype {value.dtype}")
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise TypeError(f"{name}: expected a numeric array, got dtype {value.dtype}")
        return value.astype(np.float64)
    raise TypeError(f"{name}: expected a numpy.ndarray or torch.Tensor, got {type(value).__name__}")


def check_finite_array(value: np.ndarray, name: str) -> None:
    r"""Raise a ``ValueError`` naming ``name`` when ``value`` holds NaN or infinity."""
    if not np.isfinite(value).all():
        n_nan = int(np.isnan(value).sum())
        n_inf = int(np.isinf(value).sum())
        raise ValueError(
            f"{name}: expected finite values, found {n_nan} NaN and {n_inf} infinite entries "
            f"in an array of shape {value.shape}"
        )


def as_matrix(
    value: object, name: str, min_rows: int = 1, flatten: bool = False, finite: bool = True
) -> np.ndarray:
    r"""Return ``value`` as a float64 array of shape ``(N, F)``.

    With ``flatten``, an array ``(N, *shape)`` (e.g. images ``(N, C, H, W)``) is flattened to
    ``(N, prod(shape))``; otherwise anything but two dimensions is an error.
    """
    array = _to_numpy(value, name)
    if flatten and array.ndim >= 2:
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2:
        expected = "(N, ...) with at least 2 dimensions" if flatten else "(N, F)"
        raise ValueError(f"{name}: expected shape {expected}, got {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} rows, got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one feature column, got shape {array.shape}")
    if finite:
        check_finite_array(array, name)
    return array


def overflow_error(names: str, *arrays: np.ndarray) -> ValueError:
    r"""The error for a statistic of ``arrays`` that overflows float64 (values near its limit):
    it names the arguments ``names`` and the largest magnitude."""
    largest = max(float(np.abs(a).max()) for a in arrays if a.size)
    return ValueError(
        f"{names}: a statistic of the values overflows float64 (largest magnitude "
        f"{largest:g}); rescale them"
    )


def as_vector(value: object, name: str, length: int | None = None) -> np.ndarray:
    r"""Return ``value`` as a finite float64 array of shape ``(N,)`` (of ``length`` if given)."""
    array = _to_numpy(value, name)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected shape (N,), got {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name}: expected shape ({length},), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    check_finite_array(array, name)
    return array


def check_same_features(a: np.ndarray, name_a: str, b: np.ndarray, name_b: str) -> None:
    r"""Raise a ``ValueError`` when two ``(N, F)`` arrays disagree on ``F``."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_b}: expected {a.shape[1]} features to match {name_a} {a.shape}, "
            f"got shape {b.shape}"
        )


def check_int(value: object, name: str, minimum: int = 1) -> int:
    r"""Return ``value`` after checking it is an int ``>= minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_float(value: object, name: str, positive: bool = True) -> float:
    r"""Return ``value`` as a finite float (``> 0`` when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a finite float > 0" if positive else "a finite float"
        raise ValueError(f"{name}: expected {kind}, got {value}")
    return value


def check_seed(seed: object) -> int | None:
    r"""Return ``seed`` after checking it is ``None`` or a non-negative int."""
    if seed is None:
        return None
    return check_int(seed, "seed", minimum=0)

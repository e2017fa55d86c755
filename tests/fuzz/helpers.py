"""What every fuzzed call must do, and the strategies that draw its arguments.

A call either returns finite results of the expected shape or raises ``ValueError`` /
``TypeError`` whose message starts with the name of the argument at fault (``"x: expected
..."``; for user files, the file's path). Anything else (another exception, NaN or infinity in
a result, a message that names nothing) is a bug in the library.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# derandomized, no example database: the same cases on every run, in well under a minute
# a longer run: TRACTABLE_FUZZ_SCALE=10 generates ten times as many cases
SCALE = float(os.environ.get("TRACTABLE_FUZZ_SCALE", "1"))


def fuzz(max_examples: int) -> settings:
    r"""The suite's settings with ``max_examples`` generated cases (times ``SCALE``)."""
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


CALLS = {"returned": 0, "refused": 0}


class RefusedError(Exception):
    """The call raised a well-formed ValueError/TypeError naming an argument."""


def subjects(message: str) -> list[str]:
    r"""The names a message starts with: ``"x: ..."`` -> ``["x"]``, ``"levels, binary: ..."`` ->
    ``["levels", "binary"]``."""
    head = message.split(": ", 1)[0] if ": " in message else ""
    return [s.strip() for s in head.split(", ")]


def names_of(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def call(
    fn: Callable[..., Any],
    *args: Any,
    names: Iterable[str] = (),
    finite: bool = True,
    log_density: bool = False,
    **kwargs: Any,
) -> Any:
    r"""Call ``fn``; return its result after checking it is finite, or raise :class:`RefusedError`
    after checking the error names one of ``fn``'s parameters or ``names``.

    ``log_density``: the result is a log-density, which may be :math:`-\infty` (a density that
    underflows at an extreme but finite input, e.g. 1e308, as in :mod:`torch.distributions`),
    never NaN or :math:`+\infty`."""
    allowed = names_of(fn) | set(names)
    try:
        out = fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        named = subjects(message)
        assert named and all(n in allowed for n in named), (
            f"{type(err).__name__} does not name an argument of {getattr(fn, '__name__', fn)} "
            f"({sorted(allowed)}): {message!r}"
        )
        CALLS["refused"] += 1
        raise RefusedError(message) from None
    if finite:
        assert_finite(out, allow_neg_inf=log_density)
    CALLS["returned"] += 1
    return out


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    r""":func:`call`, with a refusal returned as ``None``."""
    try:
        return call(fn, *args, **kwargs)
    except RefusedError:
        return None


def assert_finite(value: Any, where: str = "result", allow_neg_inf: bool = False) -> None:
    r"""Every number reachable from ``value`` is finite (no NaN, no infinity; ``-inf`` and, for
    the standard error of a mean over such values, ``+inf`` too when ``allow_neg_inf``)."""
    if allow_neg_inf:
        value = _drop_infinite_log_densities(value)
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), f"{where}: non-finite tensor {value}"
        return
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            assert np.isfinite(value).all(), f"{where}: non-finite array {value}"
        return
    if isinstance(value, (int, float, np.floating, np.integer)):
        assert math.isfinite(float(value)), f"{where}: non-finite number {value}"
        return
    if isinstance(value, dict):
        for k, v in value.items():
            assert_finite(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            assert_finite(v, f"{where}[{i}]")
        return
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            assert_finite(getattr(value, f.name), f"{where}.{f.name}")
        return
    if isinstance(value, torch.nn.Module):
        return
    raise AssertionError(f"{where}: unexpected result type {type(value).__name__}")


def _drop_infinite_log_densities(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        assert not bool(torch.isnan(value).any()), f"NaN in a log-density: {value}"
        assert not bool((value == math.inf).any()), f"+inf in a log-density: {value}"
        return torch.where(value == -math.inf, torch.zeros_like(value), value)
    if dataclasses.is_dataclass(value) and hasattr(value, "values"):  # an Estimate
        values = _drop_infinite_log_densities(value.values)
        if bool((value.values == -math.inf).any()):
            return values  # its mean is -inf and its spread inf: checked through the values
        return value
    if isinstance(value, dict) and value.get("mean") == -math.inf:
        return {k: v for k, v in value.items() if k not in ("mean", "nll", "se", "mc_se")}
    return value


# -- strategies ------------------------------------------------------------------------------
SPECIAL = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-310, 0.0, -0.0]


def reals(bound: float = 4.0) -> st.SearchStrategy[float]:
    r"""Mostly moderate floats, sometimes a special value (NaN, infinities, huge, subnormal)."""
    return st.one_of(
        st.floats(-bound, bound, allow_nan=False, width=32),
        st.sampled_from(SPECIAL),
    )


def moderate(bound: float = 4.0) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, width=32)


@st.composite
def arrays(
    draw: st.DrawFn,
    shape: tuple[int, ...] | None = None,
    special: bool = True,
    bound: float = 4.0,
) -> np.ndarray:
    r"""A float array of ``shape`` (or a small random one), values from :func:`reals` when
    ``special`` else moderate ones."""
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    elements = reals(bound) if special and draw(st.booleans()) else moderate(bound)
    return draw(hnp.arrays(np.float64, shape, elements=elements))


@st.composite
def tensors(
    draw: st.DrawFn,
    event: tuple[int, ...],
    rows: tuple[int, int] = (0, 5),
    binary: bool = False,
) -> Any:
    r"""A batch for a model of event shape ``event``: usually a well-formed ``(N, *event)``
    tensor (N may be 0), sometimes a wrong shape, dtype, special values or not a tensor."""
    kind = draw(st.sampled_from(["good"] * 6 + ["special", "shape", "dtype", "object", "single"]))
    n = draw(st.integers(*rows))
    if kind == "object":
        return draw(st.sampled_from([None, 1.0, "x", [[0.0] * max(1, math.prod(event))]]))
    if kind == "shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
        return torch.as_tensor(draw(arrays(shape, special=False)))
    if kind == "single":  # one example without its batch dimension
        return torch.zeros(event)
    shape = (n, *event)
    if binary and kind == "good":
        values = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
    else:
        values = draw(arrays(shape, special=kind == "special", bound=3.0))
    x = torch.as_tensor(values)
    if kind == "dtype":
        dtype = draw(st.sampled_from([torch.float32, torch.int64, torch.bool, torch.complex64]))
        x = x.round().to(dtype) if not dtype.is_floating_point else x.to(dtype)
    return x


def small_ints(lo: int = -2, hi: int = 4) -> st.SearchStrategy[Any]:
    r"""An int argument, or something that is not one (a float, a bool, None, a string)."""
    return st.one_of(
        st.integers(lo, hi),
        st.integers(lo, hi),
        st.sampled_from([None, True, 2.0, 2.5, "2", math.nan]),
    )


def float_args(lo: float = -2.0, hi: float = 4.0) -> st.SearchStrategy[Any]:
    r"""A float argument: moderate, special, or not a number at all."""
    return st.one_of(
        st.floats(lo, hi, allow_nan=False, width=32),
        st.sampled_from([*SPECIAL, None, "1", True, 1]),
    )

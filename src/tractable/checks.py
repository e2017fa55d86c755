r"""Argument checks shared by every public entry point.

Validation is on by default and can be switched off for speed, globally with
:func:`set_validation` or for one block with the :class:`validation` context manager.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

_ENABLED = True


def set_validation(enabled: bool) -> None:
    r"""Switch input validation on or off for the whole library."""
    global _ENABLED
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    _ENABLED = enabled


def validation_enabled() -> bool:
    r"""Whether the library currently validates its inputs."""
    return _ENABLED


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    r"""Context manager that sets validation for the duration of a block.

    Example:
        >>> import tractable as tr
        >>> with tr.validation(False):
        ...     tr.validation_enabled()
        False
    """
    previous = _ENABLED
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def as_float_tensor(value: object, name: str, like: Tensor | None = None) -> Tensor:
    r"""Return ``value`` as a floating tensor, casting integers and booleans.

    ``like`` gives the dtype and device to cast to (a model's parameters, typically).
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name}: expected a real floating tensor, got dtype {value.dtype}")
    if like is not None:
        if (
            not value.is_floating_point()
            or value.dtype != like.dtype
            or value.device != like.device
        ):
            value = value.to(dtype=like.dtype, device=like.device)
    elif not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    return value


class NonFiniteError(ValueError):
    r"""A tensor holds NaN or infinity (a ``ValueError``; the trainer tells a model's own
    non-finite values during training from bad data by this type)."""


def check_finite(value: Tensor, name: str) -> None:
    r"""Raise a ``ValueError`` naming ``name`` when ``value`` holds NaN or infinity.

    Any NaN or infinity makes the sum non-finite, so one reduction clears the common case; only
    a non-finite sum (which may also be an overflow of finite values) pays for the elementwise
    check.
    """
    if value.numel() == 0 or bool(torch.isfinite(value.sum())):
        return
    if not bool(torch.isfinite(value).all()):
        n_nan = int(torch.isnan(value).sum())
        n_inf = int(torch.isinf(value).sum())
        raise NonFiniteError(
            f"{name}: expected finite values, found {n_nan} NaN and {n_inf} infinite entries "
            f"in a tensor of shape {tuple(value.shape)}"
        )


def check_event(
    value: object,
    name: str,
    event_shape: Sequence[int],
    like: Tensor | None = None,
    finite: bool = True,
    allow_empty: bool = False,
) -> Tensor:
    r"""Validate a batch whose trailing dimensions must equal ``event_shape``.

    Returns the (possibly cast) tensor with exactly one batch dimension in front. An empty batch
    ``(0, *event_shape)`` is refused unless ``allow_empty`` (model entry points that follow
    torch's convention of an empty result for an empty batch).
    """
    value = as_float_tensor(value, name, like)
    if not _ENABLED:
        return value
    event_shape = tuple(event_shape)
    expected = "(N, " + ", ".join(str(s) for s in event_shape) + ")"
    if value.dim() != len(event_shape) + 1 or tuple(value.shape[1:]) != event_shape:
        hint = ""
        if value.dim() == len(event_shape) and tuple(value.shape) == event_shape:
            hint = "; for a single example add a batch dimension, e.g. x.unsqueeze(0)"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(value.shape)}{hint}")
    if value.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one row, got shape {tuple(value.shape)}")
    if finite:
        check_finite(value, name)
    return value


def check_context(
    context: object, features: int, batch: int | None, like: Tensor | None = None
) -> Tensor | None:
    r"""Validate a context of shape ``(N, features)``, or ``None`` when ``features == 0``."""
    if features == 0:
        if context is not None:
            raise ValueError(
                "context: this model is unconditional (context features = 0) but a context "
                "tensor was given"
            )
        return None
    if context is None:
        raise ValueError(
            f"context: this model is conditional and needs a context of shape (N, {features}), "
            "got None"
        )
    context = as_float_tensor(context, "context", like)
    if not _ENABLED:
        return context
    if context.dim() != 2 or context.shape[1] != features:
        raise ValueError(f"context: expected shape (N, {features}), got {tuple(context.shape)}")
    if batch is not None and context.shape[0] != batch:
        raise ValueError(f"context: expected {batch} rows to match x, got {context.shape[0]}")
    check_finite(context, "context")
    return context


def split_batch(batch: object, context: int) -> tuple[object, object]:
    r"""``(x, c)`` of a training batch ``x`` or ``(x, c)``: ``c`` is ``None`` for a model
    without context (``context == 0``); integer class labels ``(N,)`` become one-hot rows
    ``(N, context)``. The caller checks both (``check_event``, ``check_context``)."""
    if isinstance(batch, Tensor):
        x, c = batch, None
    elif isinstance(batch, tuple | list) and batch:
        x, c = batch[0], (batch[1] if len(batch) > 1 else None)
    else:
        raise TypeError(f"batch: expected a tensor x or a tuple (x, context), got {batch!r}")
    if not context:
        return x, None
    if isinstance(c, Tensor) and c.dim() == 1 and not c.is_floating_point():
        c = torch.nn.functional.one_hot(c.long(), context)
    return x, c


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    r"""Return ``value`` as an int after checking it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


class UndefinedStandardErrorWarning(UserWarning):
    r"""A standard error over a single value was asked for: it is undefined and reported as
    ``None`` (JSON ``null``), never NaN."""


def warn_undefined_se(what: str, stacklevel: int = 3) -> None:
    r"""Warn that the standard error of ``what`` over one value is undefined (``None``)."""
    warnings.warn(
        f"{what}: the standard error of a single value is undefined; it is reported as None",
        UndefinedStandardErrorWarning,
        stacklevel=stacklevel,
    )

r"""Size bounds: a model is measured while it is built, and refused before it grows too large.

:func:`build_checked` builds the model with hooks that count the elements of every parameter
and buffer, and every module, as they are registered; the build stops with one line as soon as
it crosses a limit, so a runaway configuration (``transforms=10**7``) costs seconds, not memory.
A single huge tensor (``hidden=[10**9]``, a tampered ``shape=[10**9]``) would be allocated before
it is registered, so on Linux the build also runs under an address-space limit (``RLIMIT_AS``)
a little above what the element limit allows: such an allocation fails at once instead of
swapping the machine. The limits can be raised with the environment variables
``TRACTABLE_MAX_PARAMS`` (elements of parameters and buffers, default 200 million: 800 MB in
float32 before the optimiser's state) and ``TRACTABLE_MAX_MODULES`` (default 20,000).

Example:
    >>> m = build_checked({"model": "maf", "shape": [2], "options": {"hidden": [8]}})
    >>> sum(p.numel() for p in m.parameters()) > 0
    True
    >>> build_checked({"model": "maf", "shape": [2], "options": {"hidden": [10**9]}})
    Traceback (most recent call last):
        ...
    ValueError: model: more than 200000000 parameter and buffer elements ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module

from ..registry import build_model

MAX_PARAMS_ENV = "TRACTABLE_MAX_PARAMS"
MAX_MODULES_ENV = "TRACTABLE_MAX_MODULES"
DEFAULT_MAX_PARAMS = 200_000_000
DEFAULT_MAX_MODULES = 20_000
MAX_ROWS_ENV = "TRACTABLE_MAX_ROWS"
DEFAULT_MAX_ROWS = 10_000_000


def _limit(env: str, default: int) -> int:
    text = os.environ.get(env)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise ValueError(f"{env}: expected a positive integer, got {text!r}")
    return value


class _TooLargeError(Exception):
    pass


@contextlib.contextmanager
def _counting(max_elements: int, max_modules: int) -> Iterator[dict[str, int]]:
    seen = {"elements": 0, "modules": 0}

    def on_tensor(module: nn.Module, name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            seen["elements"] += tensor.numel()
            if seen["elements"] > max_elements:
                raise _TooLargeError

    def on_module(module: nn.Module, name: str, sub: nn.Module | None) -> None:
        seen["modules"] += 1
        if seen["modules"] > max_modules:
            raise _TooLargeError

    handles = [
        torch_module.register_module_parameter_registration_hook(on_tensor),
        torch_module.register_module_buffer_registration_hook(on_tensor),
        torch_module.register_module_module_registration_hook(on_module),
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def check_rows(n: int | None) -> None:
    r"""Refuse, before any data is generated, a number of examples beyond ``TRACTABLE_MAX_ROWS``
    (default 10 million)."""
    limit = _limit(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)
    if isinstance(n, int) and not isinstance(n, bool) and n > limit:
        raise ValueError(
            f"n: {n} examples is more than the limit of {limit}; refusing to generate or load "
            f"them (set {MAX_ROWS_ENV} to raise the limit)"
        )


def build_checked(config: dict[str, Any]) -> nn.Module:
    r"""``build_model(config)``, refused in one line (``ValueError``) when the model would have
    more parameter and buffer elements or more modules than the limits allow."""
    max_elements = _limit(MAX_PARAMS_ENV, DEFAULT_MAX_PARAMS)
    max_modules = _limit(MAX_MODULES_ENV, DEFAULT_MAX_MODULES)
    size = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    try:
        with _counting(max_elements, max_modules) as seen, _address_space(3 * max_elements * size):
            return build_model(config)
    except _TooLargeError:
        _refuse(seen, max_elements, max_modules)
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "alloc" not in str(err).lower():
            raise
        seen["elements"] = max_elements + 1
        _refuse(seen, max_elements, max_modules)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _address_space(budget: int) -> Iterator[None]:
    r"""Cap this process's virtual memory at its current size plus ``budget`` bytes (Linux)."""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as f:
            line = next(x for x in f if x.startswith("VmSize:"))
        current = int(line.split()[1]) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    cap = current + budget + (1 << 30)  # a gigabyte for everything else a build allocates
    if (
        soft != resource.RLIM_INFINITY
        and soft <= cap
        or hard != resource.RLIM_INFINITY
        and (hard < cap)
    ):
        yield  # already tighter than ours
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _refuse(seen: dict[str, int], max_elements: int, max_modules: int) -> None:
    if seen["modules"] > max_modules:
        raise ValueError(
            f"model: more than {max_modules} modules; refusing to build it (set "
            f"{MAX_MODULES_ENV} to raise the limit)"
        ) from None
    gb = max_elements * torch.empty((), dtype=torch.get_default_dtype()).element_size() / 1e9
    raise ValueError(
        f"model: more than {max_elements} parameter and buffer elements (over {gb:.1f} GB "
        f"before the optimiser's state); refusing to allocate it (set {MAX_PARAMS_ENV} to raise "
        "the limit)"
    ) from None


__all__ = [
    "DEFAULT_MAX_MODULES",
    "DEFAULT_MAX_PARAMS",
    "DEFAULT_MAX_ROWS",
    "build_checked",
    "check_rows",
]

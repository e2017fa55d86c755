r"""How many intra-op threads a run uses.

PyTorch's default is one thread per core. For a small model that is a loss: the work of one
operation is too short to split, the threads mostly wait for each other, and when another
process keeps a core busy the waiting turns into spinning against it. Measured on this
project's 2-core machine under a load of about 9 (other training processes), the default
MAF on moons took 52.8 ms a training step with one thread and 2,652 ms with two (50x).

:func:`choose_threads` therefore takes, in order:

1. the number the user asked for (``tractable train --threads N``);
2. the environment's choice, when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set;
3. one thread when the machine is busy: the 1-minute load average is at least the number of
   cores less one half (another process holds at least one core);
4. one thread when one forward pass of a training batch costs under :data:`SMALL_FLOPS`
   floating-point operations (its weight products, counted on a few rows and scaled to the
   batch: :func:`forward_flops`);
5. otherwise PyTorch's default, one per core.

The choice and its reason are recorded in ``metrics.json`` (``threads``,
``threads_reason``).

Example:
    >>> choose_threads(3, None, cores=2, load=0.0, environ={})
    (3, 'asked for')
    >>> choose_threads(None, 5e6, cores=2, load=0.1, environ={})
    (1, 'a small model: 5 MFLOP per forward pass of a batch')
    >>> choose_threads(None, 5e10, cores=2, load=1.9, environ={})
    (1, 'a busy machine: load 1.9 on 2 cores')
    >>> choose_threads(None, 5e10, cores=2, load=0.2, environ={})
    (2, 'one per core')
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

SMALL_FLOPS = 2e8
PROBE_ROWS = 8
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    r"""The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def forward_flops(
    model: nn.Module, batch: tuple[torch.Tensor, ...], batch_size: int
) -> float | None:
    r"""Floating-point operations of one training loss on ``batch_size`` rows, counted on at
    most :data:`PROBE_ROWS` rows of ``batch`` and scaled; ``None`` when the loss cannot be
    run (the caller then decides without it).

    The count is that of the matrix products and convolutions, which dominate these models:
    ``F.linear``, ``matmul``-like calls and convolutions are intercepted with a
    :class:`torch.overrides.TorchFunctionMode` and their FLOPs (two per multiply-add) read
    from the shapes. This costs one forward pass of a few rows; it agrees with
    :class:`torch.utils.flop_counter.FlopCounterMode` on the default MAF, Glow, DCGAN and VAE,
    which takes a second to set up on first use, a tenth of the default run. It runs on a copy
    of the model (a data-dependent initialisation such as ActNorm's must see the first
    training batch, not this probe) and leaves the random state alone."""
    rows = min(PROBE_ROWS, batch[0].shape[0])
    if rows == 0:
        return None
    probe = tuple(part[:rows] for part in batch)
    counter = _ProductCounter()
    try:
        with torch.random.fork_rng(devices=[]):
            twin = copy.deepcopy(model).train()
            with counter:
                twin.loss(probe if len(probe) > 1 else probe[0])
        return counter.flops * batch_size / rows
    except Exception:  # noqa: BLE001 - counting is advice; any failure means "unknown"
        return None


def _matmul_flops(a: torch.Tensor, out: object) -> float:
    # one multiply-add per output element and per term of the contracted dimension
    if not isinstance(out, torch.Tensor) or a.dim() == 0:
        return 0.0
    return 2.0 * out.numel() * a.shape[-1]


class _ProductCounter(TorchFunctionMode):
    r"""FLOPs of the matrix products and convolutions called inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self.flops += self._cost(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 - an unusual call is not counted
            pass
        return out

    @staticmethod
    def _cost(func, args, kwargs, out) -> float:  # noqa: ANN001
        F = torch.nn.functional
        if func is F.linear:
            x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            return 2.0 * (x.numel() / x.shape[-1]) * w.numel()
        if func in (torch.matmul, torch.mm, torch.bmm, torch.Tensor.matmul,
                    torch.Tensor.__matmul__, torch.Tensor.mm, torch.Tensor.bmm):  # fmt: skip
            return _matmul_flops(args[0], out)
        if func in (torch.addmm, torch.baddbmm):
            return _matmul_flops(args[1], out)
        if func in (F.conv1d, F.conv2d, F.conv3d):
            # the weight holds C_out x C_in / groups x kernel: one multiply-add each per
            # output position
            return 2.0 * args[1].numel() * (out.numel() / out.shape[1])
        if func in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d):
            x, w = args[0], args[1]
            return 2.0 * w.numel() * (x.numel() / x.shape[1])
        return 0.0


def choose_threads(
    requested: int | None,
    flops: float | None,
    *,
    cores: int | None = None,
    load: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    r"""``(threads, reason)`` by the rules in the module docstring."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads: expected an int >= 1, got {requested!r}")
        return requested, "asked for"
    environ = os.environ if environ is None else environ
    for name in THREAD_ENV:
        if environ.get(name):
            return torch.get_num_threads(), f"{name}={environ[name]}"
    cores = available_cores() if cores is None else cores
    load = os.getloadavg()[0] if load is None else load
    if cores > 1 and load >= cores - 0.5:
        return 1, f"a busy machine: load {load:.1f} on {cores} cores"
    if flops is not None and math.isfinite(flops) and flops < SMALL_FLOPS:
        return 1, f"a small model: {flops / 1e6:.0f} MFLOP per forward pass of a batch"
    return cores, "one per core"


__all__ = ["SMALL_FLOPS", "available_cores", "choose_threads", "forward_flops"]

r"""Checks at the trainer's boundaries, and the error raised when training diverges.

Bad arguments raise ``ValueError``/``TypeError`` naming the argument; a run whose loss,
gradients or weights stop being finite raises :class:`DivergenceError` (section 6 of the
project's reliability notes: skip a bad step, count it, stop loudly after a few in a row, and
never write non-finite weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from ..checks import NonFiniteError
from .batches import Batch
from .checkpoint import latest_step
from .config import TrainConfig
from .distributed import DistContext
from .serialization import atomic_write_bytes, check_finite_tensors, model_state

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]
T = TypeVar("T")


class DivergenceError(RuntimeError):
    r"""Training stopped because the loss, the gradients or the weights stopped being finite.

    ``step`` is the number of steps taken, ``consecutive`` the non-finite steps in a row at the
    end and ``total`` all the non-finite (skipped) steps of the run.
    """

    def __init__(self, message: str, step: int, consecutive: int, total: int) -> None:
        super().__init__(message)
        self.step = step
        self.consecutive = consecutive
        self.total = total


def model_loss(model: nn.Module, batch: Batch) -> Tensor:
    return model.loss(batch)


def check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(getattr(model, "loss", None)):
        raise TypeError(f"model: expected a loss(batch) method, {type(model).__name__} has none")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model: expected at least one parameter with requires_grad=True, got none")


def check_json(value: object, name: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}: expected a JSON-serialisable dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a JSON-serialisable dict ({err})") from err


def check_setup(
    config: TrainConfig, train: tuple[Tensor, ...], val: tuple[Tensor, ...] | None, ctx: DistContext
) -> None:
    n = train[0].shape[0]
    if config.batch_size > n:
        raise ValueError(
            f"config.batch_size: expected at most the number of training rows ({n}), "
            f"got {config.batch_size}"
        )
    if config.batch_size % ctx.world_size:
        raise ValueError(
            f"config.batch_size: expected a multiple of the number of processes "
            f"({ctx.world_size}), got {config.batch_size}"
        )
    if val is None and (config.schedule == "plateau" or config.patience is not None):
        raise ValueError(
            "val_data: the 'plateau' schedule and early stopping (patience) need validation "
            "data, got None"
        )


def check_loss(loss: object, name: str = "model.loss(batch)", need_grad: bool = True) -> None:
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"{name}: expected a scalar tensor (the batch mean), got {shape}")
    if need_grad and not loss.requires_grad:
        raise ValueError(f"{name}: returned a tensor that does not require grad")


def apply_transform(fn: BatchTransform, x: Tensor, generator: torch.Generator) -> Tensor:
    out = fn(x, generator)
    if not isinstance(out, Tensor) or out.shape[:1] != x.shape[:1]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"batch_transform: expected a tensor with {x.shape[0]} rows, got {got}")
    return out


def finite_batch(batch: Batch) -> bool:
    parts = (batch,) if isinstance(batch, Tensor) else tuple(batch)
    floats = [t for t in parts if isinstance(t, Tensor) and t.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in floats)


def guarded_loss(compute: Callable[[], T], batch: Batch) -> T | None:
    r"""``compute()``, or ``None`` when the model's own values overflowed on a finite batch.

    At a very large learning rate a model's finite weights can map finite data to infinity, and
    an input check inside the model (a base distribution's) then raises
    :class:`~tractable.checks.NonFiniteError`. That is a non-finite step for the divergence
    guard, not a data error; on a batch that is itself not finite the error stands.
    """
    try:
        return compute()
    except NonFiniteError:
        if finite_batch(batch):
            return None
        raise


def where_good(run_dir: Path | None) -> str:
    r"""Where the last good weights of a diverged run are, in words."""
    if run_dir is None:
        return ""
    step = latest_step(run_dir)
    if step is None:
        return f"; {str(run_dir)!r} holds no checkpoint yet"
    return (
        f"; the last finite weights are in the checkpoint of step {step} in {str(run_dir)!r} "
        f"('tractable eval {run_dir}' evaluates them)"
    )


def check_finite_model(
    model: nn.Module, what: str, step: int, consecutive: int, total: int,
    run_dir: Path | None = None,
) -> None:  # fmt: skip
    r"""Raise :class:`DivergenceError` when a weight or buffer of ``model`` is not finite."""
    try:
        check_finite_tensors(model_state(model), "model", action="save")
    except ValueError as err:
        raise DivergenceError(
            f"training diverged: the weights became non-finite by step {step}, so {what} was "
            f"not written ({err}){where_good(run_dir)}. Try a lower lr, gradient "
            "clipping (grad_clip) or float64.",
            step, consecutive, total,
        ) from err  # fmt: skip


def divergence_error(
    step: int, consecutive: int, total: int, limit: int, loss: float, grad_norm: float,
    run_dir: Path | None,
) -> DivergenceError:  # fmt: skip
    r"""The error raised after ``limit`` non-finite steps in a row, ``step`` steps completed."""
    first = step - consecutive + 2
    where = where_good(run_dir)
    return DivergenceError(
        f"training diverged: the loss or the gradient norm was non-finite for {consecutive} "
        f"steps in a row (steps {first}..{step + 1}; last loss {loss}, gradient norm "
        f"{grad_norm}; {total} non-finite steps in all, limit max_consecutive_nonfinite={limit})."
        f" Skipped steps did not change the weights{where}. Try a lower lr, gradient clipping "
        "(grad_clip), float64, or check the data and the model's loss for NaN/inf.",
        step, consecutive, total,
    )  # fmt: skip


def truncate_log(path: Path, step: int) -> None:
    r"""Keep the log lines of steps up to ``step`` (written before the checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by the kill
        if record.get("step", math.inf) > step:
            break
        kept.append(line + "\n")
    atomic_write_bytes(path, "".join(kept).encode("utf-8"))


__all__ = ["DivergenceError"]

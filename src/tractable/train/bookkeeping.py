r"""The training loop's state and bookkeeping (see :mod:`tractable.train.loop`).

:class:`Counters` is the JSON part of the trainer state and :class:`TrainState` everything one run
carries; the helpers here are what the loop does besides stepping: validate and early-stop
(:func:`validate`), write a log line and the status line (:func:`log_step`), write an
exact-resume checkpoint (:func:`checkpoint`) and end the run with its summary (:func:`finish`).

Example:
    >>> _duration(42), _duration(75), _duration(7384)
    ('42 s', '1 min 15 s', '2 h 03 min')
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .batches import Batch
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .distributed import DistContext, all_gather_objects
from .evaluate import evaluate_loss
from .guards import BatchTransform, check_finite_model, guarded_loss, model_loss
from .rng import capture_globals
from .schedule import LRSchedule
from .serialization import atomic_write_json, model_state, write_weights
from .updates import optimizer_state

ValLossFn = Callable[[nn.Module, Batch], Tensor]
LogExtra = Callable[[nn.Module, int], Mapping[str, float]]

VALIDATION_SEED = 20_240_601  # the random draws of every validation loss


@dataclass
class Counters:
    r"""The JSON part of the trainer state (everything that is not a tensor)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val: float = math.inf
    best_step: int | None = None
    last_val: float | None = None
    evals_since_best: int = 0
    consecutive_nonfinite: int = 0
    nonfinite_total: int = 0
    loss_sum: float = 0.0  # finite training losses since the last log line
    loss_count: int = 0
    last_loss: float | None = None  # the mean training loss of the last log line
    last_grad_norm: float | None = None
    seconds: float = 0.0
    stop_reason: str | None = None


@dataclass
class TrainState:
    model: nn.Module
    train: tuple[Tensor, ...]
    val: tuple[Tensor, ...] | None
    config: TrainConfig
    run_dir: Path | None
    ctx: DistContext
    optimizers: dict[str, torch.optim.Optimizer]  # one per part (see train.updates)
    schedule: LRSchedule
    noise: torch.Generator
    counters: Counters
    best_weights: dict[str, Tensor] | None
    batch_transform: BatchTransform | None
    val_loss_fn: ValLossFn | None
    log_extra: LogExtra | None
    progress: bool
    # where this process took over (a resumed run's rate counts only its own steps)
    first_step: int = 0
    first_seconds: float = 0.0
    # wall time of this process's validations and checkpoints (not saved: a timing report)
    validation_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    step_seconds: float = 0.0  # the optimisation steps alone: batch, forward, backward, update


def validate(run: TrainState) -> None:
    started = time.perf_counter()
    try:
        _validate(run)
    finally:
        run.validation_seconds += time.perf_counter() - started


def _validate(run: TrainState) -> None:
    cfg, c = run.config, run.counters
    assert run.val is not None
    fn = run.val_loss_fn if run.val_loss_fn is not None else model_loss
    val = run.val
    # The same random draws at every validation (a flow-matching or diffusion loss samples
    # times and noise, a VAE's its latents), so that evaluations differ only by the weights
    # and the best one is chosen on them, not on noise; the training stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(VALIDATION_SEED)
        loss = guarded_loss(
            lambda: evaluate_loss(run.model, val, cfg.val_batch_size, fn, run.ctx), val
        )
    val_loss = math.nan if loss is None else loss
    c.last_val = val_loss
    if not math.isfinite(val_loss):
        warnings.warn(f"validation loss at step {c.step} is {val_loss}", stacklevel=3)
    if math.isfinite(val_loss) and val_loss < c.best_val - cfg.min_delta:
        c.best_val, c.best_step, c.evals_since_best = val_loss, c.step, 0
        check_finite_run(run, "best.safetensors")
        run.best_weights = {k: v.to("cpu", copy=True) for k, v in model_state(run.model).items()}
        if run.run_dir is not None and run.ctx.is_main:
            meta = {"format": "tractable-model/1", "step": str(c.step)}
            write_weights(run.run_dir, "best", run.best_weights, meta)
    else:
        c.evals_since_best += 1
    run.schedule.observe(val_loss)
    if cfg.patience is not None and c.evals_since_best >= cfg.patience:
        c.stop_reason = "early_stopping"


def log_step(
    run: TrainState,
    log: Any,
    bar: tqdm,
    lr: float,
    evaluated: bool,
    part_rates: dict[str, float] | None = None,
) -> None:
    c = run.counters
    record: dict[str, Any] = {
        "step": c.step,
        "epoch": c.epoch,
        "loss": c.loss_sum / c.loss_count if c.loss_count else None,
        "lr": lr,
        "grad_norm": c.last_grad_norm,
        "seconds": round(c.seconds, 3),
        "nonfinite_steps": c.nonfinite_total,
    }
    if part_rates:  # a model with several optimisers: each part's own rate (train.updates)
        record.update({f"lr_{name}": rate for name, rate in part_rates.items()})
    c.loss_sum, c.loss_count = 0.0, 0
    c.last_loss = record["loss"]
    if evaluated:
        record["val_loss"] = c.last_val
        record["best_val_loss"] = c.best_val
    if not run.ctx.is_main:
        return
    extra = getattr(run.model, "extra_log", None)
    if callable(extra):
        record.update({str(k): float(v) for k, v in extra().items()})
    if evaluated and run.log_extra is not None:
        record.update({str(k): float(v) for k, v in run.log_extra(run.model, c.step).items()})
    record = {
        k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in record.items()
    }
    if log is not None:
        with named_os_errors(log.name):
            log.write(json.dumps(record, allow_nan=False) + "\n")
            log.flush()
    shown = {"loss": record["loss"]}
    if c.last_val is not None:
        shown["val"] = c.last_val
    bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items() if v is not None}, refresh=False)
    if evaluated and run.progress and bar.disable:
        # not a terminal (a batch job, a log file): one line per evaluation instead of a bar
        print(_status_line(run), file=sys.stderr, flush=True)


def _status_line(run: TrainState) -> str:
    cfg, c = run.config, run.counters
    done = c.step - run.first_step
    per_step = (c.seconds - run.first_seconds) / done if done > 0 else float("nan")
    parts = [f"train: step {c.step}/{cfg.steps}"]
    if c.last_loss is not None:
        parts.append(f"loss {c.last_loss:.4g}")
    if c.last_val is not None:
        parts.append(f"val {c.last_val:.4g} (best {c.best_val:.4g} at step {c.best_step})")
    if math.isfinite(per_step):
        left = per_step * (cfg.steps - c.step)
        parts.append(f"{per_step:.3g} s/step, about {_duration(left)} left")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def checkpoint(run: TrainState, log: Any) -> None:
    started = time.perf_counter()
    try:
        _checkpoint(run, log)
    finally:
        run.checkpoint_seconds += time.perf_counter() - started


def _checkpoint(run: TrainState, log: Any) -> None:
    check_finite_run(run, "a checkpoint")
    rng = all_gather_objects(capture_globals(), run.ctx)  # a collective: every rank takes part
    if not run.ctx.is_main or run.run_dir is None:
        return
    if log is not None:
        with named_os_errors(log.name):
            log.flush()
            os.fsync(log.fileno())
    state = {
        "format": "tractable-trainer/1",
        "counters": dataclasses.asdict(run.counters),
        **optimizer_state(run.optimizers),
        "schedule": run.schedule.state_dict(),
        "noise": run.noise.get_state(),
        "rng": rng,
    }
    weights = {"model": model_state(run.model)}
    if run.best_weights is not None:
        weights["best"] = run.best_weights
    save_checkpoint(
        run.run_dir, run.counters.step, weights, state, keep=run.config.keep_checkpoints
    )


@contextlib.contextmanager
def named_os_errors(path: str | os.PathLike) -> Iterator[None]:
    r"""Give an ``OSError`` raised without a file name (a buffered write, a flush) ``path``."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None


def check_finite_run(run: TrainState, what: str) -> None:
    c = run.counters
    check_finite_model(
        run.model, what, c.step, c.consecutive_nonfinite, c.nonfinite_total, run.run_dir
    )


def finish(run: TrainState) -> dict[str, Any]:
    c = run.counters
    restored = run.config.restore_best and run.best_weights is not None
    if restored:
        run.model.load_state_dict(run.best_weights)
    check_finite_run(run, "the final model")
    summary = {
        "steps": c.step,
        "stop_reason": c.stop_reason or "completed",
        "best_val_loss": c.best_val if math.isfinite(c.best_val) else None,
        "best_step": c.best_step,
        "final_val_loss": c.last_val if c.last_val is None or math.isfinite(c.last_val) else None,
        "train_loss": c.last_loss,
        "nonfinite_steps": c.nonfinite_total,
        "seconds": round(c.seconds, 3),
        "validation_seconds": round(run.validation_seconds, 3),
        "checkpoint_seconds": round(run.checkpoint_seconds, 3),
        "step_seconds": round(run.step_seconds, 3),
        "restored_best": restored,
        "run_dir": str(run.run_dir) if run.run_dir is not None else None,
    }
    if run.run_dir is not None and run.ctx.is_main:
        meta = {"format": "tractable-model/1", "step": str(c.step)}
        write_weights(run.run_dir, "model", model_state(run.model), meta)
        atomic_write_json(run.run_dir / "metrics.json", summary)
    return summary

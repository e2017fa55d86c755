r"""The training loop: :func:`fit` starts a run, :func:`resume` continues one exactly.

Any ``torch.nn.Module`` with ``loss(batch) -> scalar Tensor`` trains here, where ``batch`` is a
tensor ``x`` or a tuple ``(x, context)``. The loop reads top to bottom: draw the next global
batch, add batch noise, forward and backward, guard against divergence, step, validate, log,
checkpoint (the last three, and the run's state, are in :mod:`tractable.train.bookkeeping`).
A run directory holds

* ``config.json``: ``{"model": model_config, "data": data_config, "train": TrainConfig,
  "data_fingerprint": ..., ...}``;
* ``log.jsonl``: one JSON object per logged step (``step, epoch, loss, lr, grad_norm, seconds,
  nonfinite_steps``, and at evaluations ``val_loss, best_val_loss``, plus ``model.extra_log()``
  and ``log_extra(model, step)``);
* ``best.safetensors``: the best-validation weights, rewritten at each improvement;
* ``checkpoints/step-<step>.<k>/``: the latest exact-resume checkpoint(s)
  (see :mod:`tractable.train.checkpoint`);
* ``model.safetensors`` and ``metrics.json``: the final weights and the summary, at the end;
* ``MANIFEST.json``: the size and SHA-256 of ``model.safetensors`` and ``best.safetensors``,
  checked whenever they are loaded;
* ``.lock``: the file whose OS lock the one process writing the run holds
  (:mod:`tractable.train.lock`).

A run is never a dead end: a checkpoint of step 0 is written right after ``config.json``, so a
run stopped at any moment can be resumed; a directory whose run stopped before that
checkpoint may be started again, and a run that fails before its first step leaves nothing
behind. SIGINT and SIGTERM stop after the current step with a checkpoint
(:mod:`tractable.train.signals`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .batches import as_parts, derive_seed, fingerprint, permutation, take, to_batch
from .bookkeeping import (
    Counters,
    LogExtra,
    TrainState,
    ValLossFn,
    checkpoint,
    finish,
    log_step,
    validate,
)
from .checkpoint import (
    CHECKPOINTS,
    has_checkpoint,
    load_latest_checkpoint,
    remove_stale_temp_files,
)
from .config import TrainConfig
from .distributed import (
    DistContext,
    LossModule,
    all_reduce_sum,
    barrier,
    setup_distributed,
    teardown_distributed,
)
from .guards import (
    BatchTransform,
    DivergenceError,
    apply_transform,
    check_json,
    check_loss,
    check_model,
    check_setup,
    divergence_error,
    guarded_loss,
    truncate_log,
)
from .lock import run_lock
from .rng import restore_globals, seed_globals
from .schedule import LRSchedule, clip_gradients
from .serialization import (
    MANIFEST,
    CheckpointError,
    atomic_write_json,
    check_matches,
    forget_weights,
    read_json,
    write_weights,
)
from .signals import Interrupted, deferred_stop
from .updates import (
    SINGLE,
    base_rates,
    has_parts,
    load_optimizer_state,
    make_optimizers,
    plan,
    update_parts,
)


def fit(
    model: nn.Module,
    train_data: Tensor | tuple[Tensor, ...],
    val_data: Tensor | tuple[Tensor, ...] | None = None,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    model_config: Mapping[str, Any] | None = None,
    data_config: Mapping[str, Any] | None = None,
    batch_transform: BatchTransform | None = None,
    val_loss_fn: ValLossFn | None = None,
    progress: bool = True,
    log_extra: LogExtra | None = None,
) -> dict[str, Any]:
    r"""Train ``model`` in place by minimising ``model.loss(batch)``; returns the summary dict.

    Args:
        model: an ``nn.Module`` with ``loss(batch) -> scalar Tensor``; an optional
            ``extra_log() -> dict`` is logged (e.g. a CNF's function evaluations).
        train_data: a tensor ``(N, ...)`` or a tuple ``(x, context)`` of tensors.
        val_data: the same for validation (mean loss under ``torch.no_grad`` and ``eval()``).
        config: the :class:`TrainConfig` (defaults to ``TrainConfig()``).
        run_dir: where to write the run (must not hold a run already); ``None`` writes nothing.
        model_config, data_config: JSON dicts stored in ``config.json`` (what the caller needs
            to rebuild the model and the data).
        batch_transform: ``batch_transform(x, generator) -> x`` applied to every training
            ``x`` (dequantization, dynamic binarization), drawing only from ``generator``, which
            the trainer seeds and checkpoints.
        val_loss_fn: ``val_loss_fn(model, batch) -> scalar`` mean validation loss of a batch
            (default ``model.loss(batch)``).
        progress: show a tqdm bar (only on an interactive terminal, only on rank 0).
        log_extra: ``log_extra(model, step) -> dict`` of extra numbers logged at each
            evaluation (rank 0 only).

    Returns:
        ``{"steps", "stop_reason", "best_val_loss", "best_step", "final_val_loss",
        "train_loss", "nonfinite_steps", "seconds", "restored_best", "run_dir"}``, also
        written to ``metrics.json``.

    Raises:
        DivergenceError: after ``max_consecutive_nonfinite`` non-finite steps in a row, or
            when the weights themselves become non-finite. Nothing non-finite is ever saved.

    The global torch, NumPy and Python generators are seeded from ``config.seed`` (and the
    rank); under ``torchrun`` the run is data parallel (:mod:`tractable.train.distributed`).

    Example:
        >>> import torch, tractable as tr
        >>> base = tr.distributions.DiagNormal(2)  # a learnable Gaussian, no transform
        >>> flow = tr.flows.Flow(tr.transforms.Compose(), base=base)
        >>> x = 3.0 + 0.5 * torch.randn(512, 2)
        >>> cfg = TrainConfig(steps=300, batch_size=64, lr=0.05, eval_every=100)
        >>> out = fit(flow, x[:400], x[400:], cfg, progress=False)
        >>> out["steps"], out["stop_reason"], round(out["best_val_loss"], 1)
        (300, 'completed', 1.6)
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    check_model(model)
    train = as_parts(train_data, "train_data")
    val = as_parts(val_data, "val_data") if val_data is not None else None
    for name, value in (("model_config", model_config), ("data_config", data_config)):
        if value is not None:
            check_json(value, name)
    run_path = Path(run_dir) if run_dir is not None else None
    ctx = setup_distributed()
    try:
        check_setup(config, train, val, ctx)
        writes = run_path is not None and ctx.is_main
        with run_lock(run_path) if writes else contextlib.nullcontext():
            if writes:
                _claim(run_path)
            barrier(ctx)  # every rank has checked before rank 0 writes
            if writes:
                version = getattr(sys.modules.get("tractable"), "__version__", None)
                atomic_write_json(
                    run_path / "config.json",
                    {
                        "format": "tractable-run/1",
                        "tractable_version": version,
                        "model": None if model_config is None else dict(model_config),
                        "data": None if data_config is None else dict(data_config),
                        "data_fingerprint": {"train": fingerprint(train), "val": fingerprint(val)},
                        "train": config.to_dict(),
                        "world_size": ctx.world_size,
                    },
                )
            run = None
            try:
                run = _start(
                    model, train, val, config, run_path, ctx, batch_transform=batch_transform,
                    val_loss_fn=val_loss_fn, log_extra=log_extra, progress=progress,
                )  # fmt: skip
                if run_path is not None:
                    # step 0: a run stopped from here on is resumable, never a dead end
                    checkpoint(run, None)
                return _loop(run, saved_at=0 if run_path is not None else None)
            except Exception as err:
                # A run that fails before its first step (a check inside the model, a full
                # disk) leaves nothing behind: the same command can simply be run again.
                if (
                    writes
                    and (run is None or run.counters.step == 0)
                    and not isinstance(err, DivergenceError)
                ):
                    _clear(run_path)
                raise
    finally:
        teardown_distributed(ctx)


# what a run writes into its directory (removed when a run that never started is cleared)
RUN_FILES = ("config.json", "log.jsonl", "best.safetensors", "model.safetensors", "metrics.json",
             MANIFEST)  # fmt: skip


def _claim(run_path: Path) -> None:
    r"""Refuse a directory that holds a run; clear one whose run never reached a checkpoint."""
    remove_stale_temp_files(run_path)
    if has_checkpoint(run_path) or (run_path / "model.safetensors").exists():
        raise FileExistsError(
            f"run_dir: {str(run_path)!r} already holds a run; continue it with "
            f"'tractable train --resume {run_path}' (tractable.train.resume) or choose a new "
            "directory"
        )
    if (run_path / "config.json").exists():
        warnings.warn(
            f"{str(run_path)!r} holds a run stopped before its first checkpoint; starting it again",
            stacklevel=3,
        )
        _clear(run_path)


def _clear(run_path: Path) -> None:
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            (run_path / name).unlink()
    shutil.rmtree(run_path / CHECKPOINTS, ignore_errors=True)
    with contextlib.suppress(OSError):
        remove_stale_temp_files(run_path)


def resume(
    run_dir: str | Path,
    model: nn.Module,
    train_data: Tensor | tuple[Tensor, ...],
    val_data: Tensor | tuple[Tensor, ...] | None = None,
    *,
    batch_transform: BatchTransform | None = None,
    val_loss_fn: ValLossFn | None = None,
    progress: bool = True,
    log_extra: LogExtra | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    r"""Continue the run in ``run_dir`` from its latest complete checkpoint, exactly.

    ``model`` is a freshly built model of the same architecture (e.g. from
    ``build_fn(read_json(run_dir / "config.json")["model"])``); its weights, the optimiser,
    schedule, RNG states, data position and early-stopping bookkeeping are restored, so the
    run ends with the same parameters, bit for bit, as one never interrupted (same world size
    and hardware). The data must be the same as at :func:`fit` (checked by SHA-256), and
    ``batch_transform``/``val_loss_fn``/``log_extra`` should be the same callables. Log lines
    written after the checkpoint are dropped. A finished run is not trained further; its
    summary is rewritten and returned.

    ``steps`` raises the run's total number of steps (it is recorded in ``config.json``), so a
    finished run can be continued further; a cosine schedule is then stretched to the new total
    from the resumed step on.
    """
    run_path = Path(run_dir)
    if not run_path.is_dir():
        raise FileNotFoundError(f"run_dir: no such directory {str(run_path)!r}")
    main = int(os.environ.get("RANK", "0")) == 0  # only one process writes
    with run_lock(run_path, create=False) if main else contextlib.nullcontext():
        saved = read_json(run_path / "config.json")
        if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
            raise CheckpointError(
                f"run_dir: {str(run_path / 'config.json')!r} has no 'train' settings"
            )
        config = TrainConfig.from_dict(saved["train"])
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < config.steps:
                raise ValueError(
                    f"steps: expected an int >= the run's current total of {config.steps}, "
                    f"got {steps!r}"
                )
            config = TrainConfig.from_dict({**config.to_dict(), "steps": steps})
        check_model(model)
        train = as_parts(train_data, "train_data")
        val = as_parts(val_data, "val_data") if val_data is not None else None
        expected = saved.get("data_fingerprint", {})
        for name, parts in (("train", train), ("val", val)):
            if fingerprint(parts) != expected.get(name):
                raise ValueError(
                    f"{name}_data: differs from the data the run in {str(run_path)!r} was "
                    f"started with (expected {expected.get(name)}, got {fingerprint(parts)}); "
                    "an exact resume needs the same data"
                )
        ctx = setup_distributed()
        try:
            check_setup(config, train, val, ctx)
            step, weights, state = load_latest_checkpoint(run_path)
            # the same set-up as fit(), then the checkpoint's state on top of it
            run = _start(
                model, train, val, config, run_path, ctx, batch_transform=batch_transform,
                val_loss_fn=val_loss_fn, log_extra=log_extra, progress=progress,
            )  # fmt: skip
            for key, values in weights.items():
                check_matches(model, values, f"{run_path}/checkpoints (step {step}, {key})")
            model.load_state_dict(weights["model"])
            load_optimizer_state(run.optimizers, state)
            run.schedule.load_state_dict(state["schedule"])
            run.noise.set_state(state["noise"])
            run.counters = Counters(**state["counters"])
            run.best_weights = weights.get("best")
            if len(state["rng"]) == ctx.world_size:
                restore_globals(state["rng"][ctx.rank])
            else:
                warnings.warn(
                    f"resume: the run was checkpointed with {len(state['rng'])} processes and "
                    f"now has {ctx.world_size}; noise drawn inside model.loss will differ",
                    stacklevel=2,
                )
                seed_globals(derive_seed(config.seed, "resume", step), ctx.rank)
            if ctx.is_main:
                if config.steps != saved["train"].get("steps"):
                    # recorded only now that nothing can refuse the resume any more
                    atomic_write_json(
                        run_path / "config.json", {**saved, "train": config.to_dict()}
                    )
                # Forget what happened after the checkpoint: log lines and newer best weights.
                truncate_log(run_path / "log.jsonl", step)
                remove_stale_temp_files(run_path)
                if "best" in weights:
                    meta = {"format": "tractable-model/1", "step": str(step)}
                    write_weights(run_path, "best", weights["best"], meta)
                else:
                    forget_weights(run_path, "best")
            return _loop(run, saved_at=step)
        finally:
            teardown_distributed(ctx)


def _start(
    model: nn.Module,
    train: tuple[Tensor, ...],
    val: tuple[Tensor, ...] | None,
    config: TrainConfig,
    run_path: Path | None,
    ctx: DistContext,
    *,
    batch_transform: BatchTransform | None,
    val_loss_fn: ValLossFn | None,
    log_extra: LogExtra | None,
    progress: bool,
) -> TrainState:
    r"""A freshly started run: the model on its device, the global generators seeded, a new
    optimiser, schedule and batch-noise generator, zeroed counters. :func:`resume` loads a
    checkpoint's state on top of it."""
    if ctx.device is not None:
        model.to(ctx.device)
    seed_globals(config.seed, ctx.rank)
    noise = torch.Generator(device=train[0].device)
    noise.manual_seed(derive_seed(config.seed, "batch_transform"))
    return TrainState(
        model=model,
        train=train,
        val=val,
        config=config,
        run_dir=run_path,
        ctx=ctx,
        optimizers=make_optimizers(model, config),
        schedule=LRSchedule(config),
        noise=noise,
        counters=Counters(),
        best_weights=None,
        batch_transform=batch_transform,
        val_loss_fn=val_loss_fn,
        log_extra=log_extra,
        progress=progress,
    )


def out_of_time(cfg: TrainConfig, seconds: float, ctx: Any) -> bool:
    r"""Whether the run has used its ``max_seconds``; every process of a distributed run
    takes the same decision (any rank out of time stops them all)."""
    if cfg.max_seconds is None:
        return False
    over = float(seconds >= cfg.max_seconds)
    if ctx.enabled:
        over = float(all_reduce_sum(torch.tensor([over], dtype=torch.float64), ctx))
    return over > 0


def _loop(run: TrainState, saved_at: int | None) -> dict[str, Any]:
    cfg, ctx, c, model = run.config, run.ctx, run.counters, run.model
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    multi = has_parts(model)
    optimizer = None if multi else run.optimizers[SINGLE]
    bases = base_rates(model, cfg)
    if multi and ctx.enabled:
        raise ValueError("model: a model with several optimisers (parts) trains in one process")
    loss_module: nn.Module = LossModule(model)
    if ctx.enabled:
        ids = [ctx.device.index] if ctx.device is not None and ctx.device.type == "cuda" else None
        loss_module = DistributedDataParallel(loss_module, device_ids=ids)
    n_train = run.train[0].shape[0]
    per_epoch = n_train // cfg.batch_size
    local = cfg.batch_size // ctx.world_size
    shard = slice(ctx.rank * local, (ctx.rank + 1) * local)
    order = permutation(n_train, cfg.seed, c.epoch)
    log = open(run.run_dir / "log.jsonl", "a") if run.run_dir and ctx.is_main else None  # noqa: SIM115
    interactive = run.progress and ctx.is_main and sys.stderr.isatty()
    bar = tqdm(total=cfg.steps, initial=c.step, disable=not interactive, desc="train")
    started, seconds_before = time.perf_counter(), c.seconds
    run.first_step, run.first_seconds = c.step, c.seconds
    model.train()
    stopping = contextlib.ExitStack()
    try:
        stop = stopping.enter_context(deferred_stop(enabled=not ctx.enabled))
        while c.step < cfg.steps and c.stop_reason is None:
            step_started = time.perf_counter()
            # The next global batch, identical on every rank; each rank keeps its own slice.
            if c.batch_in_epoch == per_epoch:
                c.epoch, c.batch_in_epoch = c.epoch + 1, 0
                order = permutation(n_train, cfg.seed, c.epoch)
            rows = order[
                c.batch_in_epoch * cfg.batch_size : (c.batch_in_epoch + 1) * cfg.batch_size
            ]
            c.batch_in_epoch += 1
            parts = take(run.train, rows)
            if run.batch_transform is not None:
                parts = (apply_transform(run.batch_transform, parts[0], run.noise), *parts[1:])
            batch = to_batch(take(parts, shard), device)

            lr = run.schedule.rate(c.step)
            if multi:
                # several optimisers (train.updates): each update's loss and gradient checked
                scale = lr / cfg.lr
                rates = {name: base * scale for name, base in bases.items()}
                loss_value, grad_norm, skipped = update_parts(
                    model, run.optimizers, plan(model, c.step), batch, rates, cfg.grad_clip
                )
                finite = skipped == 0
            else:
                # Forward and backward; the loss and the gradient norm are global (rank averages).
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss = guarded_loss(functools.partial(loss_module, batch), batch)
                if loss is None:  # the model's own values overflowed on finite data
                    loss_value, grad_norm = math.nan, math.nan
                else:
                    check_loss(loss)
                    loss.backward()
                    loss_value = (
                        float(all_reduce_sum(loss.detach().double().reshape(1), ctx))
                        / ctx.world_size
                    )
                    grad_norm = clip_gradients(params, cfg.grad_clip)
                finite = math.isfinite(loss_value) and math.isfinite(grad_norm)
                if finite:
                    optimizer.step()
                else:
                    optimizer.zero_grad(set_to_none=True)

            # Divergence guard: a non-finite loss or gradient never reaches the weights.
            if finite:
                c.consecutive_nonfinite = 0
                c.loss_sum, c.loss_count = c.loss_sum + loss_value, c.loss_count + 1
            else:
                c.consecutive_nonfinite += 1
                c.nonfinite_total += 1
                if c.consecutive_nonfinite >= cfg.max_consecutive_nonfinite:
                    raise divergence_error(
                        c.step, c.consecutive_nonfinite, c.nonfinite_total,
                        cfg.max_consecutive_nonfinite, loss_value, grad_norm, run.run_dir,
                    )  # fmt: skip
            c.step += 1
            c.last_grad_norm = grad_norm
            run.step_seconds += time.perf_counter() - step_started

            # Validation, early stopping, logging, checkpoints.
            evaluated = run.val is not None and (
                c.step % cfg.eval_every == 0 or c.step == cfg.steps
            )
            if evaluated:
                validate(run)
            c.seconds = seconds_before + time.perf_counter() - started
            if out_of_time(cfg, c.seconds, ctx) and c.stop_reason is None:
                c.stop_reason = "time_limit"
                if run.val is not None and not evaluated:
                    validate(run)
                    evaluated = True
            if evaluated or c.step % cfg.log_every == 0 or c.step == cfg.steps:
                log_step(run, log, bar, lr, evaluated, rates if multi else None)
            bar.update(1)
            if (
                run.run_dir is not None
                and cfg.checkpoint_every
                and c.step % cfg.checkpoint_every == 0
            ):
                checkpoint(run, log)
                saved_at = c.step
            if stop.signum is not None:
                if run.run_dir is not None and saved_at != c.step:
                    checkpoint(run, log)
                raise Interrupted(stop.signum, c.step, run.run_dir, run.run_dir is not None)
        if run.run_dir is not None and saved_at != c.step:
            checkpoint(run, log)
    finally:
        stopping.close()
        bar.close()
        if log is not None:
            log.close()
    return finish(run)


__all__ = ["DivergenceError", "Interrupted", "fit", "resume"]

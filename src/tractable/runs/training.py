r"""Train a model on a dataset into a run directory (:func:`train_run`), continue one exactly
(:func:`continue_run`), and finish either with the run's evaluation and plots.

A run directory is self-contained: ``config.json`` (model, data, preprocessing and training
settings, no pickle), ``model.safetensors``, ``best.safetensors``, ``log.jsonl``,
``metrics.json``, ``checkpoints/`` and plots.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/run"
    >>> m = train_run(model="maf", data="moons", steps=20, n=512, out=out, progress=False,
    ...               options={"hidden": [16], "transforms": 2}, plots=False)
    >>> sorted(k for k in m if k.startswith("test_nll"))
    ['test_nll', 'test_nll_se']
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data import toy_modes
from ..evaluation.functions import MIXTURE_STD
from ..metrics import mode_coverage
from ..registry import get_entry
from ..train import TrainConfig, fit, has_checkpoint, read_json, resume
from ..train.bookkeeping import LogExtra, named_os_errors
from ..train.lock import run_lock
from ..train.serialization import atomic_write_json
from .limits import build_checked
from .run import Run, count_parameters, json_ready, read_run_config
from .setup import Setup, from_config, prepare
from .threads import choose_threads, forward_flops

DEFAULT_MODEL = "maf"
DEFAULT_DATA = "moons"


def is_main_process() -> bool:
    r"""Whether this process writes the run's results (rank 0 under ``torchrun``)."""
    return int(os.environ.get("RANK", "0")) == 0


def default_out(model: str, data: str, root: str | Path = "runs") -> Path:
    r"""A new directory ``root/MODEL-DATA-TIMESTAMP`` (suffixed when it exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{model}-{Path(data).stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return out


def train_run(
    model: str = DEFAULT_MODEL,
    data: str = DEFAULT_DATA,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    out: str | Path | None = None,
    options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    train_options: dict[str, Any] | None = None,
    data_root: str | None = None,
    data_seed: int = 0,
    n: int | None = None,
    conditional: bool = False,
    progress: bool = True,
    plots: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    r"""Train ``model`` on ``data`` into a new run directory; evaluate it on the validation and
    test splits and write ``metrics.json`` (and plots). Returns the metrics.

    ``threads``: intra-op threads for the run (default: chosen by
    :func:`~tractable.runs.threads.choose_threads`: one for a small model or a busy machine).
    ``metrics.json`` records the choice and a ``timing`` split of the wall time (set-up,
    training loop, final evaluation, plots)."""
    started = time.perf_counter()
    setup = prepare(
        model,
        data,
        options=options,
        data_options=data_options,
        data_root=data_root,
        data_seed=data_seed,
        n=n,
        conditional=conditional,
    )
    every = max(1, min(200, steps // 10)) if isinstance(steps, int) else 1
    train_cfg = TrainConfig.from_dict(
        {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "eval_every": every,
            # a checkpoint at every evaluation: an interrupted run loses at most that much
            "checkpoint_every": every,
            **dict(get_entry(model).train_defaults),
            **(train_options or {}),
        }
    )
    run_dir = Path(out) if out is not None else default_out(model, data)
    return _train(
        setup, train_cfg, run_dir, progress=progress, plots=plots, threads=threads,
        started=started,
    )  # fmt: skip


@contextlib.contextmanager
def run_threads(
    requested: int | None, net: torch.nn.Module, val: Any, batch_size: int
) -> Iterator[dict[str, Any]]:
    r"""Run the body with the chosen number of intra-op threads (restored afterwards); yields
    ``{"threads", "threads_reason"}`` for ``metrics.json``."""
    flops = None
    if requested is None and val is not None:
        flops = forward_flops(net, val if isinstance(val, tuple) else (val,), batch_size)
    n, reason = choose_threads(requested, flops)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield {"threads": n, "threads_reason": reason}
    finally:
        torch.set_num_threads(before)


def _train(
    setup: Setup,
    train_cfg: TrainConfig,
    run_dir: Path,
    *,
    progress: bool,
    plots: bool,
    threads: int | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    started = time.perf_counter() if started is None else started
    import_seconds = torch_optim_import()
    torch.manual_seed(train_cfg.seed)
    net = build_checked(setup.model_config)
    train, val = setup.training_data()
    # one writer for the whole run: training and the final evaluation
    with (
        run_lock(run_dir) if is_main_process() else contextlib.nullcontext(),
        run_threads(threads, net, val, train_cfg.batch_size) as chosen,
    ):
        setup_seconds = time.perf_counter() - started
        summary = fit(
            net,
            train,
            val,
            train_cfg,
            run_dir,
            model_config=setup.model_config,
            data_config=setup.data_config,
            batch_transform=setup.batch_transform(),
            progress=progress,
            log_extra=mode_log(setup),
        )
        if not is_main_process():
            return summary
        return finish_run(
            run_dir, {**summary, **chosen}, net, setup, plots=plots, started=started,
            setup_seconds=setup_seconds - import_seconds, import_seconds=import_seconds,
        )  # fmt: skip


def torch_optim_import() -> float:
    r"""Import ``torch._dynamo`` now and return the seconds it took (0 when already imported).

    Every ``torch.optim`` optimiser imports ``torch._dynamo`` (TorchDynamo, the compiler's
    front end) when it is created and at its first step, in any PyTorch program, whether or not
    anything is compiled: 1.0-1.1 s of CPU on this project's 2-core machine (torch 2.13), once
    per process. Done here, that cost shows in ``metrics.json`` as ``timing.torch_import``, a
    start-up cost like ``import torch`` itself, instead of hiding in the trainer's set-up.
    """
    if "torch._dynamo" in sys.modules:
        return 0.0
    started = time.perf_counter()
    import torch._dynamo  # noqa: F401

    if gc.get_freeze_count():
        # the process froze its imports (the ``tractable`` program does, see
        # :func:`tractable.cli.entry`): freeze the compiler's 100,000-odd objects with them
        gc.freeze()
    return time.perf_counter() - started


MODE_LOG_SHARE = 0.05
MODE_LOG_FREE_SECONDS = 0.1


def mode_log(
    setup: Setup,
    n: int = 1000,
    share: float = MODE_LOG_SHARE,
    clock: Callable[[], float] = time.perf_counter,
) -> LogExtra | None:
    r"""For data with known modes (the mixture toys), what the trainer logs at every
    evaluation: how many modes ``n`` samples capture and the fraction of high-quality samples
    (within 3 standard deviations of a mode; Srivastava et al. 2017). ``None`` otherwise.

    The count is a monitor, so it may take at most ``share`` of the run's time: once the last
    count's sampling took more than :data:`MODE_LOG_FREE_SECONDS`, an evaluation whose count
    would take the monitor's total above ``share`` of the time since the start is logged
    without it. For most models the count costs milliseconds and comes with every evaluation;
    for a sampler of a thousand network calls per sample (DDPM's ancestral sampler) it would
    otherwise cost more than the training: 1,000 samples on 8gaussians took a second or more at
    each of 40 evaluations, 114 s of the run against 25 s on moons, which has no modes to
    count.
    """
    name = setup.dataset.name
    if name not in MIXTURE_STD or setup.dataset.shape != (2,) or setup.conditional:
        return None
    modes = toy_modes(name)
    std = float(setup.dataset.options.get("std", MIXTURE_STD[name]))
    prep = setup.preprocess
    started, spent, last = clock(), 0.0, 0.0

    def log_extra(model: torch.nn.Module, step: int) -> dict[str, float]:
        nonlocal spent, last
        if last > MODE_LOG_FREE_SECONDS and spent + last > share * (clock() - started):
            return {}
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(step)
                began = clock()
                x = prep.inverse(model.sample(n).reshape(n, 2))
                last = clock() - began  # the sampling: the part that grows with the model
        finally:
            model.train(was_training)
        spent += last
        finite = torch.isfinite(x).all(1)
        out = mode_coverage(x[finite].double().numpy(), modes, std=std)
        return {"modes_captured": out.modes_captured, "high_quality": out.fraction_high_quality}

    return log_extra


def continue_run(
    run_dir: str | Path,
    steps: int | None = None,
    progress: bool = True,
    plots: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    r"""Resume the run in ``run_dir`` exactly where its last checkpoint left it, up to ``steps``
    steps in total (default: the run's own total); ``threads`` as for :func:`train_run`."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir: {str(run_dir)!r} holds no run (no such directory)")
    with run_lock(run_dir, create=False) if is_main_process() else contextlib.nullcontext():
        config = read_run_config(run_dir)
        if not isinstance(config.get("train"), dict):
            raise ValueError(f"run_dir: {str(run_dir / 'config.json')!r} has no 'train' section")
        setup = from_config(config)
        if not has_checkpoint(run_dir):
            # stopped before its first checkpoint: nothing to resume, so start it again
            train_cfg = TrainConfig.from_dict(config["train"])
            if steps is not None:
                train_cfg = TrainConfig.from_dict({**config["train"], "steps": steps})
            warnings.warn(
                f"{str(run_dir)!r} stopped before its first checkpoint; starting it again from "
                "its config.json",
                stacklevel=2,
            )
            return _train(
                setup, train_cfg, run_dir, progress=progress, plots=plots, threads=threads,
                started=started,
            )  # fmt: skip
        import_seconds = torch_optim_import()
        net = build_checked(setup.model_config)
        train, val = setup.training_data()
        batch_size = int(config["train"].get("batch_size", 1))
        with run_threads(threads, net, val, batch_size) as chosen:
            setup_seconds = time.perf_counter() - started
            summary = resume(
                run_dir,
                net,
                train,
                val,
                batch_transform=setup.batch_transform(),
                progress=progress,
                steps=steps,
                log_extra=mode_log(setup),
            )
            if not is_main_process():
                return summary
            return finish_run(
                run_dir, {**summary, **chosen}, net, setup, plots=plots, started=started,
                setup_seconds=setup_seconds - import_seconds, import_seconds=import_seconds,
            )  # fmt: skip


def finish_run(
    run_dir: Path,
    summary: dict[str, Any],
    net: torch.nn.Module,
    setup: Setup,
    plots: bool,
    *,
    started: float | None = None,
    setup_seconds: float | None = None,
    import_seconds: float | None = None,
) -> dict[str, Any]:
    r"""Evaluate a trained run on its validation and test splits, write ``metrics.json`` and
    (with ``plots``) its plots; returns the metrics. ``started`` (a ``perf_counter`` time),
    ``setup_seconds`` and ``import_seconds`` (:func:`torch_optim_import`) complete the
    ``timing`` split."""
    config = read_json(run_dir / "config.json")
    run = Run(run_dir, config, net.eval(), setup)
    metrics = dict(summary)
    metrics.update(
        model=run.name,
        data=setup.dataset.name,
        params=count_parameters(net),
        train_seconds=summary.get("seconds"),
        likelihood=run.likelihood,
    )
    t0 = time.perf_counter()
    if run.likelihood != "none":
        for split in ("val", "test"):
            metrics.update(run.estimate(split))
    timing = {"torch_import": import_seconds, "setup": setup_seconds,
              "training": summary.get("seconds"),
              "final_evaluation": time.perf_counter() - t0}  # fmt: skip
    metrics = json_ready(metrics)
    atomic_write_json(run_dir / "metrics.json", metrics)
    if plots:
        t0 = time.perf_counter()
        with named_os_errors(run_dir):
            metrics["plots"] = [str(p) for p in run.plot()]
        timing["plots"] = time.perf_counter() - t0
    if started is not None:
        timing["total"] = time.perf_counter() - started
        # the trainer's own start and finish (config, step-0 checkpoint, final weights) and
        # the metrics' writes: what the named parts leave
        timing["other"] = timing["total"] - sum(
            v for k, v in timing.items() if k != "total" and v is not None
        )
        # everything but the optimisation steps of this process, imports aside (torch's
        # import of its compiler, above, as much as `import torch`): the run's set-up,
        # validations, checkpoints, logging, the final evaluation and the plots
        steps_only = float(metrics.get("step_seconds") or 0.0)
        wall = timing["total"] - (import_seconds or 0.0)
        timing["overhead_fraction"] = 1.0 - steps_only / max(wall, 1e-9)
    metrics["timing"] = {k: (None if v is None else round(v, 3)) for k, v in timing.items()}
    with named_os_errors(run_dir):
        stored = {k: v for k, v in metrics.items() if k != "plots"}
        atomic_write_json(run_dir / "metrics.json", json_ready(stored))
    return metrics


__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_MODEL",
    "continue_run",
    "default_out",
    "finish_run",
    "is_main_process",
    "train_run",
]

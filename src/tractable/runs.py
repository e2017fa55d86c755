r"""Runs: train a model on a dataset into a run directory, and evaluate, sample and plot it.

A run directory is self-contained: ``config.json`` (model, data and training settings, no
pickle), ``model.safetensors``, ``best.safetensors``, ``log.jsonl``, ``metrics.json``,
``checkpoints/`` and plots. Everything here is what the command line calls; it is usable from
Python too.

Example:
    >>> import tempfile, tractable.runs as runs
    >>> out = tempfile.mkdtemp() + "/run"
    >>> m = runs.train_run(model="maf", data="moons", steps=20, n=512, out=out, progress=False,
    ...                    options={"hidden": [16], "transforms": 2}, plots=False)
    >>> sorted(k for k in m if k.startswith("test_nll"))
    ['test_nll', 'test_nll_se']
"""

from __future__ import annotations

import datetime
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import data as tdata
from .models import build_model, model_config
from .run_data import (
    DEFAULT_LOGIT,
    EVAL_SEED,
    LATENT_MODELS,
    _batch_transform,
    _classes,
    _context,
    _load,
    load_dataset,
    model_shape,
    model_space,
)
from .run_plots import draw_samples, plot_run, sample_run
from .train import TrainConfig, fit, read_json, resume
from .train.serialization import atomic_write_json

DEFAULT_MODEL = "maf"
DEFAULT_DATA = "moons"


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def default_out(model: str, data: str, root: str | Path = "runs") -> Path:
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
) -> dict[str, Any]:
    r"""Train ``model`` on ``data`` into a new run directory; evaluate it on the validation and
    test splits and write ``metrics.json`` (and plots). Returns the metrics."""
    ds = load_dataset(
        model, data, data_root=data_root, data_seed=data_seed, n=n, data_options=data_options
    )
    shape = model_shape(model, ds.shape)
    context = _classes(ds) if conditional and ds.train_labels is not None else 0
    if conditional and not context:
        raise ValueError(f"conditional: dataset {ds.name!r} has no class labels to condition on")
    cfg = model_config(model, shape, context, options)
    torch.manual_seed(seed)
    net = build_model(cfg)
    train_cfg = TrainConfig.from_dict(
        {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "eval_every": max(1, min(200, steps // 10)),
            # a checkpoint at every evaluation: an interrupted run loses at most that much
            "checkpoint_every": max(1, min(200, steps // 10)),
            **(train_options or {}),
        }
    )
    val_y, _ = model_space(ds, "val", shape)
    c_train, c_val = _context(ds, "train", conditional), _context(ds, "val", conditional)
    train_data = ds.train if c_train is None else (ds.train, c_train)
    val_data = val_y if c_val is None else (val_y, c_val)
    run_dir = Path(out) if out is not None else default_out(model, data)
    data_cfg = {"dataset": ds.to_dict(), "data_root": data_root, "conditional": conditional}
    summary = fit(
        net,
        train_data,
        val_data,
        train_cfg,
        run_dir,
        model_config=cfg,
        data_config=data_cfg,
        batch_transform=_batch_transform(ds, shape),
        progress=progress,
    )
    if not _is_main():
        return summary
    return finish_run(run_dir, summary, net, ds, plots=plots)


def continue_run(
    run_dir: str | Path, steps: int | None = None, progress: bool = True, plots: bool = True
) -> dict[str, Any]:
    r"""Resume the run in ``run_dir`` exactly where its last checkpoint left it, up to ``steps``
    steps in total (default: the run's own total)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    model_cfg, data_cfg = config["model"], config["data"]
    ds = tdata.load_from_dict(data_cfg["dataset"], data_root=data_cfg.get("data_root"))
    shape = tuple(model_cfg["shape"])
    conditional = bool(data_cfg.get("conditional"))
    net = build_model(model_cfg)
    val_y, _ = model_space(ds, "val", shape)
    c_train, c_val = _context(ds, "train", conditional), _context(ds, "val", conditional)
    summary = resume(
        run_dir,
        net,
        ds.train if c_train is None else (ds.train, c_train),
        val_y if c_val is None else (val_y, c_val),
        batch_transform=_batch_transform(ds, shape),
        progress=progress,
        steps=steps,
    )
    if not _is_main():
        return summary
    return finish_run(run_dir, summary, net, ds, plots=plots)


def finish_run(
    run_dir: Path, summary: dict[str, Any], net: nn.Module, ds: tdata.Dataset, plots: bool
) -> dict[str, Any]:
    config = read_json(run_dir / "config.json")
    metrics = dict(summary)
    metrics.update(
        model=config["model"]["model"],
        data=ds.name,
        params=count_parameters(net),
        train_seconds=summary.get("seconds"),
    )
    for split in ("val", "test"):
        metrics.update(evaluate_loaded(net, ds, config, split))
    atomic_write_json(run_dir / "metrics.json", metrics)
    if plots:
        metrics["plots"] = [str(p) for p in plot_run(run_dir, net=net, ds=ds)]
    return metrics


def evaluate_loaded(
    net: nn.Module,
    ds: tdata.Dataset,
    config: dict[str, Any],
    split: str = "test",
    estimator: str | None = None,
    k: int | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    r"""NLL (nats per example, in data space) with its standard error, and bits/dim for
    discrete data, on ``split``. Flows are exact; latent-variable models use ``estimator``
    (``"iwae"`` by default, with ``k = 100``)."""
    shape = tuple(config["model"]["shape"])
    y, ladj = model_space(ds, split, shape)
    c = _context(ds, split, bool(config["data"].get("conditional")))
    net.eval()
    result: dict[str, Any] = {}
    if config["model"]["model"] in LATENT_MODELS:
        estimator = estimator or "iwae"
        k = k or 100
        est_name = {"is": "importance"}.get(estimator, estimator)
        est = net.evaluate(y, k=k, estimator=est_name)
        log_p = est.values
        result.update(
            {f"{split}_estimator": estimator, f"{split}_k": k, f"{split}_estimate_kind": est.kind}
        )
        if est.ess is not None:
            result[f"{split}_ess_mean"] = float(est.ess.double().mean())
    else:
        if estimator not in (None, "exact"):
            raise ValueError(
                f"estimator: {config['model']['model']!r} has an exact likelihood; "
                f"'--estimator {estimator}' is for latent-variable models"
            )
        with torch.no_grad():
            parts = []
            for i in range(0, y.shape[0], batch_size):
                cc = None if c is None else c[i : i + batch_size]
                parts.append(net.log_prob(y[i : i + batch_size], cc))
            log_p = torch.cat(parts)
        result[f"{split}_estimator"] = "exact"
    report = tdata.nll_to_report(-log_p.detach(), ladj, ds)
    result.update({f"{split}_nll": report["nll"], f"{split}_nll_se": report["nll_se"]})
    if report.get("bpd") is not None:
        result.update({f"{split}_bpd": report["bpd"], f"{split}_bpd_se": report["bpd_se"]})
    return result


def evaluate_run(
    run_dir: str | Path, split: str = "test", estimator: str | None = None, k: int | None = None
) -> dict[str, Any]:
    r"""Evaluate a saved run and record the result in its ``metrics.json``."""
    run_dir = Path(run_dir)
    config, net, ds = _load(run_dir)
    result = evaluate_loaded(net, ds, config, split, estimator, k)
    path = run_dir / "metrics.json"
    metrics = read_json(path) if path.is_file() else {}
    if estimator is None and k is None:
        metrics.update(result)
    else:
        tag = f"{estimator or 'default'}-{k}" if k else (estimator or "default")
        metrics.setdefault("evaluations", {})[f"{split}:{tag}"] = result
    atomic_write_json(path, metrics)
    return result


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], nn.Module, tdata.Dataset]:
    r"""The ``config.json`` dict, the model (in ``eval()`` mode, final weights) and the dataset
    of the saved run in ``run_dir``."""
    return _load(Path(run_dir))


def _marginal_log_prob(
    net: nn.Module, y: Tensor, ds: tdata.Dataset, classes: int, dtype: torch.dtype
) -> Tensor:
    r""":math:`\log \sum_c p(c) p(y \mid c)` with :math:`p(c)` the training class frequencies."""
    counts = torch.bincount(ds.train_labels, minlength=classes).to(dtype)
    log_prior = torch.log(counts / counts.sum())
    eye = torch.eye(classes, dtype=dtype)
    parts = [net.log_prob(y, eye[c].expand(y.shape[0], classes)) for c in range(classes)]
    return torch.logsumexp(torch.stack(parts, 1) + log_prior, dim=1)


def log_likelihoods(
    net: nn.Module,
    ds: tdata.Dataset,
    config: dict[str, Any],
    x: Tensor,
    estimator: str | None = None,
    k: int | None = None,
    batch_size: int = 1024,
    seed: int = EVAL_SEED,
) -> tuple[Tensor, str]:
    r"""Per-example log-likelihoods ``(N,)`` of raw data ``x`` ``(N, *ds.shape)`` in the units
    of the run's reported NLL, and the kind of number they are.

    .. math::
        \ell(x) = \log p_Y(g(x)) + \log\lvert\det J_g(x)\rvert - [\text{discrete}]\, D \log L

    with :math:`g` the dataset's preprocessing (dequantized with a generator seeded by
    ``seed``), so that ``-mean(ℓ)`` over a split is the split's NLL in ``metrics.json``.
    Flows give ``"exact"`` values (a lower bound on :math:`\log P(x)` for discrete data);
    latent-variable models an ``estimator`` (default ``"iwae"``, ``k = 100``). A
    class-conditional flow is marginalised over the classes with the training class
    frequencies as the prior.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    shape = tuple(config["model"]["shape"])
    x = x.to(ds.train.dtype)
    y, ladj = ds.preprocess.eval(x, torch.Generator().manual_seed(seed))
    y = y.reshape(y.shape[0], *shape)
    net.eval()
    name = config["model"]["model"]
    if name in LATENT_MODELS:
        estimator = estimator or "iwae"
        est = net.evaluate(y, k=k or 100, estimator={"is": "importance"}.get(estimator, estimator))
        log_p, kind = est.values.detach().to(y.dtype), est.kind
    else:
        if estimator not in (None, "exact"):
            raise ValueError(
                f"estimator: {name!r} has an exact likelihood; '{estimator}' is for "
                "latent-variable models"
            )
        classes = int(config["model"].get("context", 0))
        parts = []
        with torch.no_grad():
            for chunk in y.split(batch_size):
                if config["data"].get("conditional"):
                    parts.append(_marginal_log_prob(net, chunk, ds, classes, y.dtype))
                else:
                    parts.append(net.log_prob(chunk))
        log_p, kind = torch.cat(parts), "exact"
    log_x = log_p + ladj.to(log_p)
    if ds.preprocess.kind == "discrete":
        log_x = log_x - ds.dims * math.log(ds.levels)
    return log_x, kind


# load_dataset, model_shape, model_space and the constants live in tractable.run_data, and
# sample_run, plot_run and draw_samples in tractable.run_plots; they are re-exported here.
__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_LOGIT",
    "DEFAULT_MODEL",
    "EVAL_SEED",
    "LATENT_MODELS",
    "continue_run",
    "count_parameters",
    "default_out",
    "draw_samples",
    "evaluate_loaded",
    "evaluate_run",
    "finish_run",
    "load_dataset",
    "load_run",
    "log_likelihoods",
    "model_shape",
    "model_space",
    "plot_run",
    "sample_run",
    "train_run",
]

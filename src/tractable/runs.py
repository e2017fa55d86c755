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

import numpy as np
import torch
from torch import Tensor, nn

from . import data as tdata
from .data.images import IMAGES
from .models import build_model, get_entry, model_config
from .train import TrainConfig, fit, load_model, read_json, resume
from .train.serialization import atomic_write_json

DEFAULT_MODEL = "maf"
DEFAULT_DATA = "moons"
EVAL_SEED = 20_261_122  # the dequantization / binarization noise of evaluation passes
LATENT_MODELS = ("vae",)


DEFAULT_LOGIT = 0.05


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _binary(name: str) -> bool:
    return "-binary" in name


def load_dataset(
    model: str,
    data: str,
    *,
    data_root: str | None = None,
    data_seed: int = 0,
    n: int | None = None,
    data_options: dict[str, Any] | None = None,
) -> tdata.Dataset:
    r"""Load ``data`` in the form ``model`` needs: image datasets in ``(C, H, W)`` for image
    models, and discrete 8-bit images dequantized into logit space with
    :math:`\lambda = 0.05` (RealNVP's MNIST preprocessing, Dinh et al. 2017) for flows, unless
    ``data_options`` says otherwise. (:math:`\lambda = 10^{-6}`, the MAF paper's choice,
    sends background pixels to about :math:`-14`, outside a spline's default bound of 5; on
    mnist5k a Glow reached 2.20 test bits/dim after 400 steps in logit space against 3.14 on
    :math:`[0, 1]`.)"""
    entry = get_entry(model)
    opts = dict(data_options or {})
    is_image = data in IMAGES
    if entry.input == "image":
        if not is_image:
            raise ValueError(
                f"data: model {model!r} needs an image dataset ({', '.join(IMAGES)}), got {data!r}"
            )
        opts.setdefault("image", True)
    if is_image and model not in LATENT_MODELS and not _binary(data) and "logit" not in opts:
        opts["logit"] = DEFAULT_LOGIT
    return tdata.load(data, seed=data_seed, data_root=data_root, n=n, **opts)


def model_shape(model: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    r"""The event shape the model sees: flattened for vector models."""
    return (math.prod(shape),) if get_entry(model).input == "vector" else tuple(shape)


def _context(ds: tdata.Dataset, split: str, conditional: bool) -> Tensor | None:
    if not conditional:
        return None
    labels = ds.labels(split)
    if labels is None:
        raise ValueError(f"conditional: dataset {ds.name!r} has no class labels to condition on")
    return torch.nn.functional.one_hot(labels, _classes(ds)).to(ds.train.dtype)


def _classes(ds: tdata.Dataset) -> int:
    return int(max(int(ds.labels(s).max()) for s in ("train", "val", "test"))) + 1


def model_space(
    ds: tdata.Dataset, split: str, shape: tuple[int, ...], seed: int = EVAL_SEED
) -> tuple[Tensor, Tensor]:
    r"""A split in model space with its preprocessing log-Jacobians, reproducibly."""
    y, ladj = ds.preprocess.eval(ds.split(split), torch.Generator().manual_seed(seed))
    return y.reshape(y.shape[0], *shape), ladj


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def default_out(model: str, data: str, root: str | Path = "runs") -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{model}-{Path(data).stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return out


def _batch_transform(ds: tdata.Dataset, shape: tuple[int, ...]):  # noqa: ANN202
    def transform(x: Tensor, generator: torch.Generator) -> Tensor:
        y = ds.preprocess.train_batch(x, generator)
        return y.reshape(y.shape[0], *shape)

    return transform


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


def _load(run_dir: Path) -> tuple[dict[str, Any], nn.Module, tdata.Dataset]:
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"run_dir: {str(run_dir)!r} holds no run (no config.json)")
    config = read_json(run_dir / "config.json")
    if not (run_dir / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"run_dir: {str(run_dir)!r} has no model.safetensors yet; resume it with "
            f"'tractable train --resume {run_dir}'"
        )
    net = load_model(run_dir, build_model)
    data_cfg = config["data"]
    ds = tdata.load_from_dict(data_cfg["dataset"], data_root=data_cfg.get("data_root"))
    return config, net, ds


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


def sample_run(
    run_dir: str | Path,
    n: int,
    temperature: float = 1.0,
    out: str | Path | None = None,
    seed: int = 0,
) -> tuple[Tensor, Path]:
    r"""Draw ``n`` samples (per class, for a class-conditional run) in the data's raw space and
    write them to ``out`` (``.npy``, or ``.png`` for a picture)."""
    run_dir = Path(run_dir)
    config, net, ds = _load(run_dir)
    x = _draw(net, ds, config, n, temperature, seed)
    out = Path(out) if out is not None else run_dir / "samples.npy"
    if out.suffix == ".npy":
        np.save(out, x.cpu().numpy())
    elif out.suffix == ".png":
        _picture(x, ds, out, f"{n} samples, temperature {temperature:g}")
    else:
        raise ValueError(f"out: expected a .npy or .png path, got {str(out)!r}")
    return x, out


def _draw(
    net: nn.Module,
    ds: tdata.Dataset,
    config: dict[str, Any],
    n: int,
    temperature: float,
    seed: int,
) -> Tensor:
    torch.manual_seed(seed)
    is_latent = config["model"]["model"] in LATENT_MODELS
    if is_latent:
        if temperature != 1.0:
            raise ValueError("temperature: VAEs sample at temperature 1 only")
        y = net.sample(n, mean=_binary(ds.name))
    elif config["data"].get("conditional"):
        classes = config["model"]["context"]
        y = net.sample(n, context=torch.eye(classes, dtype=ds.train.dtype), temperature=temperature)
        y = y.reshape(-1, *y.shape[2:])
    else:
        y = net.sample(n, temperature=temperature)
    y = y.reshape(y.shape[0], *ds.shape)
    if is_latent and _binary(ds.name):
        return y  # pixel probabilities read better than binary draws
    return ds.preprocess.inverse(y)


def _picture(x: Tensor, ds: tdata.Dataset, out: Path, title: str) -> Path:
    from .flows.image import save_image_grid
    from .plots import image_shape_of

    img = image_shape_of(ds.shape, ds.name)
    if img is not None:
        scale = (ds.levels - 1) if ds.levels and ds.levels > 2 else 1
        save_image_grid((x / scale).reshape(-1, *img).clamp(0, 1), out, nrow=10)
        return out
    if x.shape[-1] == 2 and x.dim() == 2:
        from .plots import _figure, _save

        fig = _figure(4.5, 4.5)
        ax = fig.add_subplot(1, 1, 1)
        pts = x.cpu().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        return _save(fig, out)
    raise ValueError(f"out: no picture for samples of shape {tuple(x.shape[1:])}; use .npy")


def _interpolations(
    net: nn.Module, ds: tdata.Dataset, shape: tuple[int, ...], out: Path, rows: int = 8
) -> Path:
    r"""Linear paths in latent space between ``rows`` pairs of test images (first and last
    columns are the reconstructed ends), ten steps each."""
    from .flows.image import interpolate

    y, _ = model_space(ds, "test", shape)
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(y.shape[0], generator=g)[: 2 * rows]
    ends = y[pick].reshape(2, -1, *shape)
    with torch.no_grad():
        path = interpolate(net, ends[0], ends[1], steps=10)
    x = ds.preprocess.inverse(path.reshape(-1, *shape).reshape(-1, *ds.shape))
    return _picture(x, ds, out, "interpolations")


def plot_run(
    run_dir: str | Path, net: nn.Module | None = None, ds: tdata.Dataset | None = None
) -> list[Path]:
    r"""Write the run's plots: training curves always; for 2D data the learned density beside
    the data and samples; for images sample grids (temperatures 1 and 0.7 for flows) and, for
    unconditional image flows, interpolations between test images in latent space."""
    from .plots import density_2d, image_shape_of, training_curves

    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if net is None or ds is None:
        config, net, ds = _load(run_dir)
    net.eval()
    written = []
    if (run_dir / "log.jsonl").is_file():
        written.append(training_curves(run_dir / "log.jsonl", run_dir / "training_curves.png"))
    shape = tuple(config["model"]["shape"])
    name = config["model"]["model"]
    if shape == (2,) and name not in LATENT_MODELS and not config["data"].get("conditional"):
        data, _ = model_space(ds, "test", shape)
        torch.manual_seed(0)
        samples = net.sample(min(20_000, 4 * data.shape[0]))
        written.append(
            density_2d(
                lambda p: net.log_prob(p),
                data,
                samples,
                run_dir / "density.png",
                title=f"{name} on {ds.name}",
            )
        )
    elif image_shape_of(ds.shape, ds.name) is not None:
        n = 10 if config["data"].get("conditional") else 100
        x = _draw(net, ds, config, n, 1.0, 0)
        written.append(_picture(x, ds, run_dir / "samples.png", "samples"))
        if name not in LATENT_MODELS:
            # reduced temperature, as Glow's figures (Kingma and Dhariwal 2018) use T = 0.7
            x = _draw(net, ds, config, n, 0.7, 0)
            written.append(
                _picture(x, ds, run_dir / "samples_t0.7.png", "samples, temperature 0.7")
            )
            if not config["data"].get("conditional") and len(shape) == 3:
                written.append(_interpolations(net, ds, shape, run_dir / "interpolation.png"))
    return written


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], nn.Module, tdata.Dataset]:
    r"""The ``config.json`` dict, the model (in ``eval()`` mode, final weights) and the dataset
    of the saved run in ``run_dir``."""
    return _load(Path(run_dir))


def draw_samples(
    net: nn.Module,
    ds: tdata.Dataset,
    config: dict[str, Any],
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    r"""``n`` samples ``(n, *ds.shape)`` in the data's raw space, for sample-based metrics.

    Unlike :func:`sample_run`, which returns ``n`` per class and pixel probabilities for VAEs
    on binary data, this returns exactly ``n`` draws on the data's own support: a
    class-conditional run draws ``ceil(n / classes)`` per class (then keeps ``n`` in a seeded
    random order), and a VAE on binary data gives Bernoulli draws of its pixel probabilities.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    conditional = bool(config["data"].get("conditional"))
    per = math.ceil(n / config["model"]["context"]) if conditional else n
    x = _draw(net, ds, config, per, temperature, seed)
    g = torch.Generator().manual_seed(seed)
    if config["model"]["model"] in LATENT_MODELS and _binary(ds.name):
        x = torch.bernoulli(x.clamp(0, 1), generator=g)
    if conditional:
        x = x[torch.randperm(x.shape[0], generator=g)[:n]]
    return x.detach()


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

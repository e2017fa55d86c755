r"""Samples and pictures of a run: sample files, sample grids, 2D densities, interpolations.

:func:`sample_run` writes what the command line's ``sample`` asks for, :func:`plot_run` the
plots of a run directory, and :func:`draw_samples` gives samples on the data's own support for
sample-based metrics. All are re-exported by :mod:`tractable.runs`.

Example:
    >>> import tempfile, tractable.runs as runs
    >>> from tractable.run_plots import draw_samples
    >>> out = tempfile.mkdtemp() + "/run"
    >>> _ = runs.train_run(model="maf", data="moons", steps=5, n=512, out=out, progress=False,
    ...                    options={"hidden": [16], "transforms": 2}, plots=False)
    >>> config, net, ds = runs.load_run(out)
    >>> draw_samples(net, ds, config, 7).shape
    torch.Size([7, 2])
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import data as tdata
from .run_data import LATENT_MODELS, _binary, _load, model_space
from .train import read_json


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
    x = ds.preprocess.inverse(path.reshape(-1, *ds.shape))
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

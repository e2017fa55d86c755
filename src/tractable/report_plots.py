r"""The figures of :mod:`tractable.report`: 2D densities side by side, sample grids, and
training curves overlaid, one PNG each (``None`` when no run fits)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs
from .plots import read_curves


def _figure(width: float, height: float):  # noqa: ANN202
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _groups(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> dict:
    out: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if keep(row):
            out.setdefault(row["group"], []).append(i)
    return out


def _densities(labels: list[str], rows: list[dict[str, Any]], path: Path, res: int = 150):  # noqa: ANN202
    groups = _groups(rows, lambda r: r["shape"] == [2] and r["kind"] == "continuous")
    if not groups:
        return None
    cols = 1 + max(len(m) for m in groups.values())
    fig = _figure(3.0 * cols, 3.0 * len(groups))
    for g, members in enumerate(groups.values()):
        ds = runs.load_run(rows[members[0]]["run_dir"])[2]
        data = ds.test.double()
        lo = torch.quantile(data, 0.005, dim=0)
        hi = torch.quantile(data, 0.995, dim=0)
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
        gx = torch.linspace(float(lo[0]), float(hi[0]), res, dtype=torch.float64)
        gy = torch.linspace(float(lo[1]), float(hi[1]), res, dtype=torch.float64)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        ax = fig.add_subplot(len(groups), cols, g * cols + 1)
        pts = data.numpy()
        ax.hist2d(pts[:, 0], pts[:, 1], bins=100, range=[extent[:2], extent[2:]], cmap="magma")
        ax.set_title(f"data: {rows[members[0]]['data']} (test)", fontsize=9)
        for j, i in enumerate(members):
            config, net, ds = runs.load_run(rows[i]["run_dir"])
            with torch.no_grad():
                log_p = torch.cat(
                    [runs.log_likelihoods(net, ds, config, c)[0] for c in grid.split(8192)]
                )
            dens = torch.nan_to_num(log_p.double().exp(), nan=0.0).reshape(res, res).numpy()
            ax = fig.add_subplot(len(groups), cols, g * cols + j + 2)
            ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="magma")
            ax.set_title(f"{labels[i]} ({rows[i]['model']})", fontsize=9)
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)


def _mosaic(x: torch.Tensor, nrow: int) -> np.ndarray:
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1, dtype=torch.float64)
    for k in range(n):
        r, q = divmod(k, nrow)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[
            k
        ]
    img = canvas.permute(1, 2, 0).numpy()
    return img[..., 0] if c == 1 else img


def _sample_grids(labels: list[str], rows: list[dict[str, Any]], path: Path, n: int = 36):  # noqa: ANN202
    from .data.images import IMAGES
    from .features import intensities
    from .plots import image_shape_of

    images = [i for i, r in enumerate(rows) if r["data"] in IMAGES]
    if not images:
        return None
    fig = _figure(3.0 * len(images), 3.3)
    for j, i in enumerate(images):
        config, net, ds = runs.load_run(rows[i]["run_dir"])
        x = runs.draw_samples(net, ds, config, n, seed=0)
        shape = image_shape_of(ds.shape, ds.name)
        x = intensities(x, ds).double().clamp(0, 1).reshape(-1, *shape)
        ax = fig.add_subplot(1, len(images), j + 1)
        ax.imshow(_mosaic(x, 6), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{labels[i]} ({rows[i]['model']})", fontsize=9)
        ax.set_axis_off()
    return _save(fig, path)


def _curves(labels: list[str], rows: list[dict[str, Any]], path: Path):  # noqa: ANN202
    groups = _groups(rows, lambda r: (Path(r["run_dir"]) / "log.jsonl").is_file())
    if not groups:
        return None
    fig = _figure(6.5, 3.4 * len(groups))
    for g, members in enumerate(groups.values()):
        ax = fig.add_subplot(len(groups), 1, g + 1)
        finite = []
        for i in members:
            steps, loss, vsteps, vloss = read_curves(Path(rows[i]["run_dir"]) / "log.jsonl")
            (line_,) = ax.plot(vsteps, vloss, "o-", ms=2, lw=1.5, label=f"{labels[i]} (val)")
            ax.plot(steps, loss, lw=0.7, alpha=0.5, color=line_.get_color())
            finite += [v for v in loss + vloss if v is not None and math.isfinite(v)]
        if finite:
            low, high = np.percentile(finite, [0, 95])
            pad = 0.05 * (high - low + 1e-9)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(
            f"training curves on {rows[members[0]]['data']} (thin: train loss)", fontsize=9
        )
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats, model space)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)

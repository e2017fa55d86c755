r"""Plots a person would rather look at than read: training curves, 2D densities beside the data
and samples, and image sample grids. Matplotlib's object API (no pyplot state), Agg backend."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib types are optional
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def read_curves(log_path: str | Path) -> tuple[list, list, list, list]:
    r"""``(steps, loss, val_steps, val_loss)`` from a run's ``log.jsonl`` (entries without a
    value are skipped)."""
    steps, loss, vsteps, vloss = [], [], [], []
    for line in Path(log_path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("loss") is not None:
            steps.append(row["step"])
            loss.append(row["loss"])
        if row.get("val_loss") is not None:
            vsteps.append(row["step"])
            vloss.append(row["val_loss"])
    return steps, loss, vsteps, vloss


def training_curves(log_path: str | Path, out: str | Path) -> Path:
    r"""Training loss and validation loss against the step, from a run's ``log.jsonl``."""
    steps, loss, vsteps, vloss = read_curves(log_path)
    if not steps and not vsteps:
        raise ValueError(f"log_path: {str(log_path)!r} holds no loss values to plot")
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    if steps:
        ax.plot(steps, loss, lw=1, alpha=0.7, label="train loss")
    if vsteps:
        ax.plot(vsteps, vloss, "o-", ms=3, lw=1.5, label="validation loss")
    finite = [v for v in loss + vloss if v is not None and math.isfinite(v)]
    if finite:
        lo, hi = np.percentile(finite, [0, 95])
        pad = 0.05 * (hi - lo + 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title("training curves")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out)


def _bounds(points: Tensor, pad: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    lo = torch.quantile(points, 0.005, dim=0)
    hi = torch.quantile(points, 0.995, dim=0)
    span = hi - lo
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def density_2d(
    log_prob: Callable[[Tensor], Tensor],
    data: Tensor,
    samples: Tensor,
    out: str | Path,
    resolution: int = 200,
    title: str = "",
) -> Path:
    r"""Three panels: the data, the model's density on a grid, and the model's samples, on the
    same axes. ``log_prob`` maps ``(M, 2)`` points to ``(M,)`` log-densities."""
    if data.dim() != 2 or data.shape[1] != 2:
        raise ValueError(f"data: expected shape (N, 2), got {tuple(data.shape)}")
    (x0, x1), (y0, y1) = _bounds(data)
    gx = torch.linspace(x0, x1, resolution, dtype=data.dtype)
    gy = torch.linspace(y0, y1, resolution, dtype=data.dtype)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        dens = torch.cat([log_prob(chunk).exp() for chunk in grid.split(8192)])
    dens = torch.nan_to_num(dens, nan=0.0).reshape(resolution, resolution).cpu().numpy()
    fig = _figure(12.0, 4.0)
    extent = (x0, x1, y0, y1)
    panels = [("data (test split)", data), ("model density", None), ("model samples", samples)]
    for i, (name, pts) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        if pts is None:
            ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="magma")
        else:
            pts = pts.detach().cpu().numpy()
            ax.hist2d(pts[:, 0], pts[:, 1], bins=120, range=[[x0, x1], [y0, y1]], cmap="magma")
        ax.set_title(name)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def image_shape_of(shape: Sequence[int], name: str) -> tuple[int, ...] | None:
    r"""The image shape ``(C, H, W)`` behind a dataset's event shape, or ``None`` for non-images:
    flat 64 -> (1, 8, 8) for digits, 784 -> (1, 28, 28) for MNIST, 3072 -> (3, 32, 32) CIFAR."""
    shape = tuple(shape)
    if len(shape) == 3:
        return shape
    if len(shape) != 1:
        return None
    d = shape[0]
    if name.startswith("cifar10") and d == 3072:
        return (3, 32, 32)
    if name.startswith(("digits", "mnist")):
        side = math.isqrt(d)
        if side * side == d:
            return (1, side, side)
    return None

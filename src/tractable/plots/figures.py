r"""Plots a person would rather look at than read: training curves, 2D densities beside the data
and samples, scatter plots and image grids. Matplotlib's object API (no pyplot state), Agg
backend. Every figure of the library is drawn here or in :mod:`tractable.plots.compare`; the
callers compute the numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def figure(width: float, height: float):  # noqa: ANN201 - matplotlib types are optional
    r"""A matplotlib figure on the Agg canvas, ``width`` x ``height`` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: str | Path) -> Path:  # noqa: ANN001
    r"""Write ``fig`` to ``path`` (PNG), creating its folder."""
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
    fig = figure(6.0, 3.6)
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
    return save(fig, out)


def _bounds(points: Tensor, pad: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    lo = torch.quantile(points, 0.005, dim=0)
    hi = torch.quantile(points, 0.995, dim=0)
    span = hi - lo
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def density_2d(
    log_prob: Callable[[Tensor], Tensor] | None,
    data: Tensor,
    samples: Tensor,
    out: str | Path,
    resolution: int = 150,
    title: str = "",
    bins: int = 120,
) -> Path:
    r"""Three panels: the data, the model's density on a grid, and the model's samples, on the
    same axes. ``log_prob`` maps ``(M, 2)`` points to ``(M,)`` log-densities; without one (a
    model with no exact density) the density panel is left out. ``resolution`` is the density
    grid's side, ``bins`` the histograms'."""
    if data.dim() != 2 or data.shape[1] != 2:
        raise ValueError(f"data: expected shape (N, 2), got {tuple(data.shape)}")
    (x0, x1), (y0, y1) = _bounds(data)
    panels = [("data (test split)", data), ("model density", None), ("model samples", samples)]
    if log_prob is None:
        panels.pop(1)
    fig = figure(4.0 * len(panels), 4.0)
    extent = (x0, x1, y0, y1)
    for i, (name, pts) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        if pts is None:
            ax.imshow(
                _grid_density(log_prob, extent, resolution, data.dtype),
                origin="lower",
                extent=extent,
                aspect="auto",
                cmap="magma",
            )
        else:
            pts = pts.detach().cpu().numpy()
            ax.hist2d(pts[:, 0], pts[:, 1], bins=bins, range=[[x0, x1], [y0, y1]], cmap="magma")
        ax.set_title(name)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return save(fig, out)


def _grid_density(
    log_prob: Callable[[Tensor], Tensor],
    extent: tuple[float, float, float, float],
    resolution: int,
    dtype: torch.dtype,
) -> np.ndarray:
    x0, x1, y0, y1 = extent
    gx = torch.linspace(x0, x1, resolution, dtype=dtype)
    gy = torch.linspace(y0, y1, resolution, dtype=dtype)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        dens = torch.cat([log_prob(chunk).exp() for chunk in grid.split(8192)])
    return torch.nan_to_num(dens, nan=0.0).reshape(resolution, resolution).cpu().numpy()


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


def scatter_2d(points: Tensor, out: str | Path, title: str = "") -> Path:
    r"""A scatter plot of ``(N, 2)`` points."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected shape (N, 2), got {tuple(points.shape)}")
    fig = figure(4.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    pts = points.detach().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
    ax.set_title(title)
    return save(fig, out)


def mosaic(x: Tensor, nrow: int) -> np.ndarray:
    r"""Images ``(N, C, H, W)`` in :math:`[0, 1]` tiled ``nrow`` per row with one-pixel white
    gaps, as an array for ``imshow`` (``(H', W')`` for one channel)."""
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1, dtype=torch.float64)
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = 1 + r * (h + 1), 1 + q * (w + 1)
        canvas[:, top : top + h, left : left + w] = x[k]
    img = canvas.permute(1, 2, 0).numpy()
    return img[..., 0] if c == 1 else img


def save_image_grid(
    x: Tensor,
    path: str | Path,
    nrow: int = 8,
    padding: int = 2,
    value_range: tuple[float, float] = (0.0, 1.0),
    pad_value: float = 1.0,
) -> np.ndarray:
    r"""Save images ``(N, C, H, W)`` (``C`` = 1 or 3) as one PNG grid with ``nrow`` images per
    row, using matplotlib. Values are mapped from ``value_range`` to :math:`[0, 1]` and
    clipped. Conditional samples ``(M, n, C, H, W)`` can be passed as ``x.flatten(0, 1)`` with
    ``nrow=n``. Returns the grid, ``(H', W')`` or ``(H', W', 3)`` with values in
    :math:`[0, 1]`.

    Example:
        >>> import torch, tempfile, os
        >>> from tractable.plots import save_image_grid
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_image_grid(torch.rand(5, 1, 4, 4), os.path.join(d, "g.png"), nrow=3).shape
        (14, 20)
    """
    import matplotlib.image

    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"x: expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
    for name, value, low in (("nrow", nrow, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range: expected (low, high) with high > low, got {value_range!r}")
    x = x.detach().cpu().double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"x: expected finite values, found {int((~torch.isfinite(x)).sum())} others"
        )
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value
    )
    for k in range(n):
        top, left = padding + (k // cols) * (h + padding), padding + (k % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = x[k]
    # 8-bit RGB written as is: a grey colormap would quantise a second time
    rgb = torch.round(grid.expand(3, -1, -1).permute(1, 2, 0) * 255).to(torch.uint8).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, rgb, format="png")
    return grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).numpy()


__all__ = [
    "density_2d",
    "figure",
    "image_shape_of",
    "mosaic",
    "read_curves",
    "save",
    "save_image_grid",
    "scatter_2d",
    "training_curves",
]

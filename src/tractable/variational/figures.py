r"""The picture of a variational fit: the target :math:`\tilde p / Z` beside the fitted flow's
density :math:`q` and a histogram of :math:`q`'s draws, on the same axes (2-D targets), or the
two densities as curves (1-D targets), as in Rezende and Mohamed (2015, Figure 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..plots import figure, save

Extent = tuple[float, float, float, float]


def _grid(extent: Extent, resolution: int) -> Tensor:
    x0, x1, y0, y1 = extent
    gx = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    gy = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    return torch.stack([xx.flatten(), yy.flatten()], 1)


@torch.no_grad()
def _density(fn: Callable[[Tensor], Tensor], points: Tensor, dtype: torch.dtype) -> Tensor:
    log_p = torch.cat([fn(chunk.to(dtype)).double() for chunk in points.split(8192)])
    return torch.nan_to_num(log_p.exp(), nan=0.0)


def fit_figure(
    log_density: Callable[[Tensor], Tensor],
    log_q: Callable[[Tensor], Tensor],
    samples: Tensor,
    out: str | Path,
    extent: Extent | None = None,
    log_z: float | None = None,
    title: str = "",
    resolution: int = 200,
) -> Path:
    r"""Write the target beside the fitted flow to the PNG ``out``.

    ``log_density`` is :math:`\log\tilde p` and ``log_q`` the flow's log-density, both
    ``(M, D) -> (M,)`` for ``D`` = 1 or 2; ``samples`` ``(N, D)`` are the flow's draws. The
    target is drawn as :math:`\tilde p / Z` with ``log_z`` when given, else normalised on the
    grid. ``extent`` ``(x0, x1, y0, y1)`` defaults to the range of the samples (``(x0, x1)``
    alone matters in 1-D).
    """
    if samples.dim() != 2 or samples.shape[1] not in (1, 2):
        raise ValueError(f"samples: expected shape (N, 1) or (N, 2), got {tuple(samples.shape)}")
    pts = samples.detach().cpu().double()
    dtype = samples.dtype
    if extent is None:
        lo, hi = pts.quantile(0.005, 0), pts.quantile(0.995, 0)
        pad = 0.15 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        extent = (float(lo[0]), float(hi[0]), float(lo[-1]), float(hi[-1]))
    if samples.shape[1] == 1:
        grid = torch.linspace(extent[0], extent[1], 1000, dtype=torch.float64)[:, None]
        p = _density(log_density, grid, dtype)
        step = float(grid[1, 0] - grid[0, 0])
        p = p / (p.sum() * step) if log_z is None else p / torch.exp(torch.tensor(log_z))
        q = _density(log_q, grid, dtype)
        fig = figure(6.0, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        ax.hist(pts[:, 0].numpy(), bins=120, range=extent[:2], density=True, alpha=0.3,
                color="C1", label="q samples")  # fmt: skip
        ax.plot(grid[:, 0].numpy(), p.numpy(), lw=2, color="C0", label="target p")
        ax.plot(grid[:, 0].numpy(), q.numpy(), lw=1.5, ls="--", color="C1", label="fitted q")
        ax.set_xlim(extent[0], extent[1])
        ax.set_xlabel("x")
        ax.legend()
        ax.set_title(title)
        return save(fig, out)
    grid = _grid(extent, resolution)
    p = _density(log_density, grid, dtype)
    area = (extent[1] - extent[0]) * (extent[3] - extent[2]) / (resolution - 1) ** 2
    p = p / (p.sum() * area) if log_z is None else p / torch.exp(torch.tensor(log_z))
    q = _density(log_q, grid, dtype)
    top = float(p.max())  # one colour scale, the target's: a thin spike of q saturates
    fig = figure(12.0, 4.0)
    panels = [("target p", p), ("fitted q", q), ("q samples", None)]
    for i, (name, dens) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        if dens is None:
            ax.hist2d(pts[:, 0].numpy(), pts[:, 1].numpy(), bins=120,
                      range=[extent[:2], extent[2:]], cmap="magma")  # fmt: skip
        else:
            ax.imshow(dens.reshape(resolution, resolution).numpy(), origin="lower",
                      extent=extent, aspect="auto", cmap="magma", vmin=0.0, vmax=top)  # fmt: skip
        ax.set_title(name)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return save(fig, out)


__all__ = ["fit_figure"]

r"""The figures of a comparison report: 2D densities side by side, sample grids side by side,
training curves overlaid, and data and samples in the data's principal plane side by side. Each
takes the numbers already computed (the report loads the runs) and writes one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from .figures import figure, mosaic, read_curves, save

Panel = tuple[str, np.ndarray]  # a title and a (res, res) density on the group's extent


def densities(
    groups: Sequence[tuple[str, Tensor, tuple[float, float, float, float], Sequence[Panel]]],
    path: Path,
) -> Path:
    r"""One row per dataset: its test data as a histogram, then each model's density on the
    same ``extent``. ``groups`` holds ``(title, data (N, 2), extent, [(title, density)])``."""
    cols = 1 + max(len(panels) for *_, panels in groups)
    fig = figure(3.0 * cols, 3.0 * len(groups))
    for g, (title, data, extent, panels) in enumerate(groups):
        ax = fig.add_subplot(len(groups), cols, g * cols + 1)
        pts = data.detach().cpu().double().numpy()
        ax.hist2d(pts[:, 0], pts[:, 1], bins=100, range=[extent[:2], extent[2:]], cmap="magma")
        ax.set_title(title, fontsize=9)
        for j, (name, dens) in enumerate(panels):
            ax = fig.add_subplot(len(groups), cols, g * cols + j + 2)
            ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="magma")
            ax.set_title(name, fontsize=9)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return save(fig, path)


def sample_grids(grids: Sequence[tuple[str, Tensor]], path: Path, nrow: int = 6) -> Path:
    r"""Image sample grids side by side: ``(title, images (N, C, H, W) in [0, 1])`` each."""
    fig = figure(3.0 * len(grids), 3.3)
    for j, (title, x) in enumerate(grids):
        ax = fig.add_subplot(1, len(grids), j + 1)
        ax.imshow(mosaic(x.double().clamp(0, 1), nrow), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return save(fig, path)


def curves(groups: Sequence[tuple[str, Sequence[tuple[str, Path]]]], path: Path) -> Path:
    r"""Training curves overlaid, one panel per dataset: ``(data name, [(label, log.jsonl)])``;
    validation loss as lines with markers, training loss thin in the same colour."""
    fig = figure(6.5, 3.4 * len(groups))
    for g, (data, members) in enumerate(groups):
        ax = fig.add_subplot(len(groups), 1, g + 1)
        finite = []
        for label, log in members:
            steps, loss, vsteps, vloss = read_curves(log)
            (line,) = ax.plot(vsteps, vloss, "o-", ms=2, lw=1.5, label=f"{label} (val)")
            ax.plot(steps, loss, lw=0.7, alpha=0.5, color=line.get_color())
            finite += [v for v in loss + vloss if v is not None and math.isfinite(v)]
        if finite:
            low, high = np.percentile(finite, [0, 95])
            pad = 0.05 * (high - low + 1e-9)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"training curves on {data} (thin: train loss)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats, model space)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def pca_planes(
    groups: Sequence[tuple[str, np.ndarray, Sequence[tuple[str, np.ndarray]]]],
    path: Path,
    cols: int = 4,
) -> Path:
    r"""Per dataset, the held-out data projected on their first two principal axes, then each
    model's samples on the same axes (the data in grey behind them), at most ``cols`` panels
    to a row, all panels of a dataset with the same limits. ``groups`` holds ``(title,
    data (N, 2), [(title, samples (M, 2))])``; at most ``N`` points of each sample set are
    drawn, so that the panels' densities compare. The limits cover the 0.5-99.5% quantiles of
    all points of the dataset (padded); a panel's title counts the points outside."""
    cols = min(cols, 1 + max(len(panels) for *_, panels in groups))
    shape = [math.ceil((1 + len(panels)) / cols) for *_, panels in groups]
    fig = figure(3.2 * cols, 3.1 * sum(shape))
    row = 0
    for (title, data, panels), rows in zip(groups, shape, strict=True):
        panels = [(name, pts[: data.shape[0]]) for name, pts in panels]
        every = np.concatenate([data, *(pts for _, pts in panels)])
        low, high = np.quantile(every, 0.005, axis=0), np.quantile(every, 0.995, axis=0)
        pad = 0.08 * np.maximum(high - low, 1e-9)
        low, high = low - pad, high + pad
        for j, (name, pts) in enumerate([(title, data), *panels]):
            ax = fig.add_subplot(sum(shape), cols, row * cols + j + 1)
            if j:
                ax.scatter(data[:, 0], data[:, 1], s=3, c="0.8", linewidths=0)
            ax.scatter(pts[:, 0], pts[:, 1], s=3, c="C0" if j == 0 else "C3", linewidths=0)
            out = int((((pts < low) | (pts > high)).any(axis=1)).sum())
            ax.set_title(name + (f" ({out} outside)" if out else ""), fontsize=9)
            ax.set_xlim(low[0], high[0])
            ax.set_ylim(low[1], high[1])
            ax.tick_params(labelsize=7)
            ax.set_xlabel("PC 1", fontsize=8)
            ax.set_ylabel("PC 2", fontsize=8)
        row += rows
    return save(fig, path)


__all__ = ["curves", "densities", "pca_planes", "sample_grids"]

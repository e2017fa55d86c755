r"""The pictures of a run: its plots (:func:`plot_run`) and sample files (:func:`write_samples`).

What is drawn follows from the data and the protocol, never from the model's name: training
curves always; for 2D data the data, the model's density where it is exact, and its samples;
for images sample grids at temperatures 1 and 0.7 and, for models with a latent space to walk
in (the registry's ``interpolate``), interpolations between test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..plots import density_2d, image_shape_of, save_image_grid, scatter_2d, training_curves

if TYPE_CHECKING:  # a Run calls these; they only read its attributes
    from .run import Run

T_LOW = 0.7  # Glow's figures (Kingma and Dhariwal 2018) use T = 0.7
COSTLY_SAMPLES = 2_000  # samples in the 2-D plot of a model whose sampling solves an ODE


def picture(run: Run, x: Tensor, out: Path, title: str, nrow: int = 10) -> Path:
    r"""Raw samples ``x`` of ``run`` as a picture: an image grid, or a scatter plot of 2D
    points."""
    img = image_shape_of(run.data_shape, run.data_name)
    if img is not None:
        values = run.preprocess.intensities(x).reshape(-1, *img).clamp(0, 1)
        save_image_grid(values, out, nrow=nrow)
        return out
    if x.dim() == 2 and x.shape[-1] == 2:
        return scatter_2d(x, out, title)
    raise ValueError(f"out: no picture for samples of shape {tuple(x.shape[1:])}; use .npy")


def write_samples(
    run: Run, n: int, temperature: float = 1.0, out: str | Path | None = None, seed: int = 0
) -> tuple[Tensor, Path]:
    r"""Draw ``n`` samples (per class, for a class-conditional run) in the data's raw space and
    write them to ``out`` (``.npy``, or ``.png`` for a picture; default
    ``RUN_DIR/samples.npy``)."""
    out = Path(out) if out is not None else run.dir / "samples.npy"
    if out.suffix not in (".npy", ".png"):
        raise ValueError(f"out: expected a .npy or .png path, got {str(out)!r}")
    x = run.sample(n, temperature=temperature, seed=seed)
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, x.cpu().numpy())
    else:
        picture(run, x, out, f"{n} samples, temperature {temperature:g}")
    return x, out


def _test_data(run: Run) -> Tensor | None:
    try:
        return run.dataset.test
    except (FileNotFoundError, OSError, ValueError):
        return None  # the data are not on this machine: draw what needs no data


def _interpolations(run: Run, interpolate, out: Path, rows: int = 8) -> Path | None:  # noqa: ANN001
    r"""Linear paths in latent space between ``rows`` pairs of test images (first and last
    columns are the reconstructed ends), ten steps each."""
    try:
        y, _ = run.setup.model_space("test")
    except (FileNotFoundError, OSError, ValueError):
        return None
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(y.shape[0], generator=g)[: 2 * rows]
    ends = y[pick].reshape(2, -1, *run.shape)
    with torch.no_grad():
        path = interpolate(run.model, ends[0], ends[1], steps=10)
    x = run.preprocess.inverse(path.reshape(-1, *run.data_shape))
    return picture(run, x, out, "interpolations")


def plot_run(run: Run) -> list[Path]:
    r"""Write the run's plots into its directory; returns their paths."""
    run.model.eval()
    written = []
    if (run.dir / "log.jsonl").is_file():
        written.append(training_curves(run.dir / "log.jsonl", run.dir / "training_curves.png"))
    if run.data_shape == (2,):
        data = _test_data(run)
        if data is None:
            samples = run.sample(2_000).reshape(-1, 2)
            written.append(scatter_2d(samples, run.dir / "samples.png", "model samples"))
            return written
        # twice the test points (at most 10,000) fill the samples' histogram as densely as the
        # data's twice over; for the default MAF drawing them is a quarter of the plots' time.
        # The density grid's 150 x 150 points look the same as 200 x 200 on the panel's ~400
        # pixels and cost 56% of the model's evaluations.
        # A model that solves an ODE or runs a long chain for each sample and density (FFJORD,
        # flow matching, DDPM) gets fewer samples, coarser bins and a coarser density grid: at
        # full size its plots took longer than its training (DDPM on 8gaussians: 56 s of
        # plots, 10,000 samples of 1,000 ancestral steps, after 7 s of training).
        costly = run.entry.ode
        n = min(COSTLY_SAMPLES if costly else 10_000, 2 * data.shape[0])
        samples = run.sample(n).reshape(-1, 2)
        log_prob = None
        if run.likelihood == "exact" and not run.conditional:

            def log_prob(points: Tensor) -> Tensor:
                return run.log_likelihood(points)[0]

        written.append(
            density_2d(
                log_prob,
                data,
                samples,
                run.dir / "density.png",
                resolution=60 if costly else 150,
                title=f"{run.name} on {run.data_name}",
                bins=60 if costly else 120,
            )
        )
    elif image_shape_of(run.data_shape, run.data_name) is not None:
        n = 10 if run.conditional else 100
        written.append(picture(run, run.sample(n), run.dir / "samples.png", "samples"))
        try:
            x = run.sample(n, temperature=T_LOW)
        except ValueError:
            x = None  # the model has no temperature other than 1
        if x is not None:
            out = run.dir / f"samples_t{T_LOW:g}.png"
            written.append(picture(run, x, out, f"samples, temperature {T_LOW:g}"))
        interpolate = run.entry.interpolator()
        if interpolate is not None and not run.conditional and len(run.shape) == 3:
            path = _interpolations(run, interpolate, run.dir / "interpolation.png")
            if path is not None:
                written.append(path)
    return written


__all__ = ["picture", "plot_run", "write_samples"]

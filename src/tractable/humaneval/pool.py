r"""The image pool of a human evaluation drawn from trained runs: samples of each run and real
test images of their (shared) image dataset, as intensities in :math:`[0, 1]`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..runs import Run
from .storage import create_pool


def labels(run_dirs: Sequence[str | Path]) -> list[str]:
    r"""A unique short name per run: its directory's name (numbered when two are equal)."""
    names = [Path(d).resolve().name or str(d) for d in run_dirs]
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def pool_from_runs(
    run_dirs: Sequence[str | Path], db: str | Path, *, n: int = 32, seed: int = 0, **plan: int
) -> list[str]:
    r"""Sample ``n`` images from each run and ``n`` real test images, write them with the plan
    sizes ``plan`` (see :func:`~tractable.humaneval.storage.create_pool`) to the new ``db``, and
    return the models' names."""
    if not run_dirs:
        raise ValueError("run_dirs: expected at least one run")
    runs = [Run.load(d) for d in run_dirs]
    first = runs[0]
    shape = first.data_shape
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) != 3 and side * side != (shape[0] if shape else -1):
        raise ValueError(f"run_dirs: {str(first.dir)!r} is not an image run (shape {shape})")
    image_shape = tuple(shape) if len(shape) == 3 else (1, side, side)

    def as_images(x: torch.Tensor) -> torch.Tensor:
        # a run of flattened images (a VAE's 784 inputs) and one of (1, 28, 28) show alike
        return x.reshape(len(x), *image_shape)

    for run in runs[1:]:
        same_pixels = math.prod(run.data_shape) == math.prod(shape)
        if run.data_name != first.data_name or not same_pixels:
            raise ValueError(
                f"run_dirs: {str(run.dir)!r} was trained on {run.data_name!r} "
                f"{tuple(run.data_shape)}, {str(first.dir)!r} on {first.data_name!r} "
                f"{tuple(shape)}; rate runs of one dataset"
            )
    with torch.no_grad():
        generated = {
            name: as_images(
                run.preprocess.intensities(run.sample(n, seed=seed, per_class=False))
            ).numpy()
            for name, run in zip(labels(run_dirs), runs, strict=True)
        }
    test = first.dataset.test
    g = torch.Generator().manual_seed(seed)
    real = first.preprocess.intensities(test[torch.randperm(len(test), generator=g)[:n]])
    real = as_images(real).numpy()
    create_pool(db, {k: np.asarray(v) for k, v in generated.items()}, real, seed=seed, **plan)
    return list(generated)

r"""Datasets in the form a run's model sees them, and loading saved runs.

Image datasets come in ``(C, H, W)`` for image models and flattened for vector models; discrete
8-bit images are dequantized into logit space for flows; class labels become one-hot contexts
for class-conditional runs. :mod:`tractable.runs` and :mod:`tractable.run_plots` build on this.

Example:
    >>> from tractable.run_data import load_dataset, model_shape, model_space
    >>> ds = load_dataset("maf", "moons", n=512)
    >>> model_shape("maf", (1, 28, 28)), model_space(ds, "val", (2,))[0].shape[1:]
    ((784,), torch.Size([2]))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import data as tdata
from .data.images import IMAGES
from .models import build_model, get_entry
from .train import load_model, read_json

EVAL_SEED = 20_261_122  # the dequantization / binarization noise of evaluation passes
LATENT_MODELS = ("vae",)
DEFAULT_LOGIT = 0.05  # the logit transform's lambda for 8-bit images under flows


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


def _batch_transform(ds: tdata.Dataset, shape: tuple[int, ...]):  # noqa: ANN202
    def transform(x: Tensor, generator: torch.Generator) -> Tensor:
        y = ds.preprocess.train_batch(x, generator)
        return y.reshape(y.shape[0], *shape)

    return transform


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

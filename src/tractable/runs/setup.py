r"""What a run is made of: the model's description, the data in the form the model sees them,
and the preprocessing between the two, built once for a new run and rebuilt from
``config.json`` for a stored one.

The family's ``run_defaults`` (see :mod:`tractable.registry`) fills the options that follow the
data (a VAE's decoder) and says how the data are preprocessed for it (flows: dequantized into
logit space; a VAE with a discrete decoder: the grid :math:`i/(L-1)`). The effective
preprocessing is stored in the run (``config["data"]["preprocess"]``), so sampling and plotting
a run need no data on disk.

Example:
    >>> s = prepare("maf", "moons", n=512)
    >>> s.shape, s.preprocess.kind, s.model_config["model"]
    ((2,), 'continuous', 'maf')
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import data as tdata
from ..data.images import IMAGES
from ..registry import get_entry, model_config, model_shape
from .limits import check_rows

EVAL_SEED = 20_261_122  # the dequantization / binarization noise of evaluation passes


@dataclass
class Setup:
    r"""A run's model description, data, preprocessing and class information."""

    model_config: dict[str, Any]
    data_config: dict[str, Any]
    dataset: tdata.Dataset
    preprocess: tdata.Preprocessor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.model_config["shape"])

    @property
    def conditional(self) -> bool:
        return bool(self.data_config.get("conditional"))

    def context(self, split: str) -> Tensor | None:
        r"""One-hot class contexts of ``split`` for a class-conditional run, else ``None``."""
        return split_context(self.dataset, split, self.model_config, self.conditional)

    def model_space(self, split: str, seed: int = EVAL_SEED) -> tuple[Tensor, Tensor]:
        r"""``split`` in model space with its preprocessing log-Jacobians, reproducibly."""
        g = torch.Generator().manual_seed(seed)
        y, ladj = self.preprocess.eval(self.dataset.split(split), g)
        return y.reshape(y.shape[0], *self.shape), ladj

    def batch_transform(self):  # noqa: ANN201 - a BatchTransform for the trainer
        r"""Fresh dequantization / binarization of every training batch, reshaped for the
        model."""
        prep, shape = self.preprocess, self.shape

        def transform(x: Tensor, generator: torch.Generator) -> Tensor:
            y = prep.train_batch(x, generator)
            return y.reshape(y.shape[0], *shape)

        return transform

    def training_data(self) -> tuple[Any, Any]:
        r"""``(train, val)`` as the trainer takes them: raw training rows (the batch transform
        preprocesses them) and validation rows in model space, with contexts if conditional."""
        val_y, _ = self.model_space("val")
        c_train, c_val = self.context("train"), self.context("val")
        train = self.dataset.train if c_train is None else (self.dataset.train, c_train)
        val = val_y if c_val is None else (val_y, c_val)
        return train, val


def split_context(
    ds: tdata.Dataset, split: str, model_cfg: dict[str, Any], conditional: bool
) -> Tensor | None:
    if not conditional:
        return None
    labels = ds.labels(split)
    if labels is None:
        raise ValueError(f"conditional: dataset {ds.name!r} has no class labels to condition on")
    classes = int(model_cfg["context"])
    return torch.nn.functional.one_hot(labels, classes).to(ds.train.dtype)


def _classes(ds: tdata.Dataset) -> int:
    return int(max(int(ds.labels(s).max()) for s in ("train", "val", "test"))) + 1


def load_dataset(
    model: str,
    data: str,
    *,
    data_root: str | None = None,
    data_seed: int = 0,
    n: int | None = None,
    data_options: dict[str, Any] | None = None,
) -> tdata.Dataset:
    r"""Load ``data`` with the event shape ``model`` takes: ``(C, H, W)`` for image models,
    flat vectors otherwise (``data_options={"image": True}`` gives a model of any input the
    image shape)."""
    entry = get_entry(model)
    check_rows(n)
    opts = dict(data_options or {})
    if entry.input == "image" and data in IMAGES:
        opts.setdefault("image", True)
    ds = tdata.load(data, seed=data_seed, data_root=data_root, n=n, **opts)
    if entry.input == "image" and len(ds.shape) != 3:
        raise ValueError(
            f"data: model {model!r} needs images of shape (C, H, W): a built-in image dataset "
            f"({', '.join(IMAGES)}) or a .npy/.npz file of shape (N, C, H, W); {data!r} has "
            f"events of shape {ds.shape}"
        )
    return ds


def prepare(
    model: str,
    data: str,
    *,
    options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    data_root: str | None = None,
    data_seed: int = 0,
    n: int | None = None,
    conditional: bool = False,
) -> Setup:
    r"""The :class:`Setup` of a new run of ``model`` on ``data``; refuses up front, in one line,
    a pairing that is not defined (an image model on vectors, a conditional run of a model
    that takes no context or of data without labels)."""
    entry = get_entry(model)
    if not isinstance(conditional, bool):
        raise TypeError(f"conditional: expected a bool, got {type(conditional).__name__}")
    if conditional and "context" not in inspect.signature(entry.builder()).parameters:
        raise ValueError(f"conditional: model {model!r} takes no context (class labels)")
    user_data = dict(data_options or {})
    ds = load_dataset(
        model, data, data_root=data_root, data_seed=data_seed, n=n, data_options=user_data
    )
    shape = model_shape(model, ds.shape)
    opts, overrides = entry.run_defaults()(ds.kind, ds.levels, dict(options or {}))
    prep_dict = ds.preprocess.to_dict()
    prep_dict.update({k: v for k, v in overrides.items() if k not in user_data})
    prep = tdata.Preprocessor.from_dict(prep_dict)
    context = 0
    if conditional:
        if ds.train_labels is None:
            raise ValueError(
                f"conditional: dataset {ds.name!r} has no class labels to condition on"
            )
        context = _classes(ds)
    cfg = model_config(model, shape, context, opts)
    data_cfg: dict[str, Any] = {
        "dataset": ds.to_dict(),
        "data_root": data_root,
        "conditional": conditional,
        "preprocess": prep.to_dict(),
    }
    if conditional:
        counts = torch.bincount(ds.train_labels, minlength=context)
        data_cfg["class_counts"] = [int(c) for c in counts]
    return Setup(cfg, data_cfg, ds, prep)


def stored_preprocess(config: dict[str, Any]) -> tdata.Preprocessor:
    r"""The preprocessing stored in a run's ``config.json`` (runs written before it was stored
    separately keep it in their dataset description)."""
    data_cfg = config["data"]
    stored = data_cfg.get("preprocess", data_cfg["dataset"].get("preprocess"))
    if stored is None:
        raise ValueError("config: the run stores no data preprocessing")
    return tdata.Preprocessor.from_dict(stored)


def from_config(config: dict[str, Any]) -> Setup:
    r"""The :class:`Setup` of a stored run, its data loaded again from the description in
    ``config.json`` (the same splits, given the same files)."""
    data_cfg = config["data"]
    ds = tdata.load_from_dict(data_cfg["dataset"], data_root=data_cfg.get("data_root"))
    return Setup(dict(config["model"]), dict(data_cfg), ds, stored_preprocess(config))


__all__ = ["EVAL_SEED", "Setup", "from_config", "load_dataset", "prepare", "stored_preprocess"]

r"""The model registry: every model family the trainer and the command line can build by name.

A model is described by a JSON-serialisable dict, ``{"model": name, "shape": [...],
"context": 0, "options": {...}}``, and :func:`build_model` turns that dict back into the module,
so a run directory's ``config.json`` plus ``model.safetensors`` is all it takes to reload it.
Families from other sub-packages (VAEs, continuous and image flows) are imported on first use.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    r"""How to build one model family.

    ``input`` is ``"vector"`` for models of ``(N, D)`` data (image datasets are flattened for
    them) or ``"image"`` for models of ``(N, C, H, W)`` data.
    """

    name: str
    target: str  # "module:attribute" of the builder
    input: str
    summary: str
    shape_argument: str = "features"  # how the builder receives the event shape

    def builder(self) -> Callable[..., nn.Module]:
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)

    def option_names(self) -> list[str]:
        r"""The builder's keyword options (for ``tractable list`` and config validation)."""
        try:
            sig = inspect.signature(self.builder())
        except (ImportError, AttributeError):
            return []
        return [
            p.name
            for p in sig.parameters.values()
            if p.name not in (self.shape_argument, "context", "embedding")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry(
            "maf",
            "tractable.flows.builders:MAF",
            "vector",
            "masked autoregressive flow (Papamakarios et al. 2017)",
        ),
        ModelEntry(
            "iaf",
            "tractable.flows.builders:IAF",
            "vector",
            "inverse autoregressive flow (Kingma et al. 2016); slow density",
        ),
        ModelEntry(
            "realnvp",
            "tractable.flows.builders:RealNVP",
            "vector",
            "affine coupling flow (Dinh et al. 2017)",
        ),
        ModelEntry(
            "nice",
            "tractable.flows.builders:NICE",
            "vector",
            "additive coupling flow (Dinh et al. 2015)",
        ),
        ModelEntry(
            "nsf",
            "tractable.flows.builders:NSF",
            "vector",
            "neural spline flow, autoregressive or coupling (Durkan et al. 2019)",
        ),
        ModelEntry(
            "planar",
            "tractable.flows.builders:Planar",
            "vector",
            "planar flows (Rezende and Mohamed 2015)",
        ),
        ModelEntry(
            "radial",
            "tractable.flows.builders:Radial",
            "vector",
            "radial flows (Rezende and Mohamed 2015)",
        ),
        ModelEntry(
            "ffjord",
            "tractable.continuous:FFJORD",
            "vector",
            "continuous normalizing flow on torchdiffeq (Grathwohl et al. 2019)",
        ),
        ModelEntry(
            "vae",
            "tractable.vae:build_vae",
            "any",
            "variational autoencoder; ELBO/IWAE training (Kingma and Welling 2014)",
            "shape",
        ),
        ModelEntry(
            "glow",
            "tractable.flows.image:Glow",
            "image",
            "multiscale Glow for images (Kingma and Dhariwal 2018)",
            "shape",
        ),
        ModelEntry(
            "multiscale-realnvp",
            "tractable.flows.image:MultiscaleRealNVP",
            "image",
            "multiscale RealNVP for images (Dinh et al. 2017)",
            "shape",
        ),
    ]
}


def model_names() -> list[str]:
    r"""Names of the model families, in registry order.

    Example:
        >>> "maf" in model_names()
        True
    """
    return list(MODELS)


def get_entry(name: str) -> ModelEntry:
    r"""The registry entry of ``name``; unknown names list the valid ones."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name]


def model_config(
    name: str, shape: tuple[int, ...], context: int = 0, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    r"""The JSON description of a model, validated against the builder's signature."""
    entry = get_entry(name)
    options = dict(options or {})
    known = entry.option_names()
    unknown = sorted(set(options) - set(known)) if known else []
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for model {name!r}; expected some of {known}"
        )
    return {
        "model": name,
        "shape": [int(s) for s in shape],
        "context": int(context),
        "options": options,
    }


def build_model(config: dict[str, Any]) -> nn.Module:
    r"""Build a model from its JSON description (see :func:`model_config`).

    Example:
        >>> cfg = model_config("maf", (2,), options={"transforms": 2})
        >>> type(build_model(cfg)).__name__
        'Flow'
    """
    if not isinstance(config, dict) or "model" not in config or "shape" not in config:
        raise ValueError(f"config: expected a dict with 'model' and 'shape', got {config!r}")
    entry = get_entry(config["model"])
    shape = tuple(int(s) for s in config["shape"])
    options = dict(config.get("options", {}))
    context = int(config.get("context", 0))
    if context:
        options["context"] = context
    if entry.shape_argument == "shape":
        return entry.builder()(shape=shape, **options)
    if entry.input == "vector" and len(shape) != 1:
        shape = (math.prod(shape),)
    first = shape[0] if len(shape) == 1 else shape
    return entry.builder()(first, **options)

r"""The model registry: every model family that runs, the command line and the reports can build.

One line per model: its name, the family it belongs to, the builder (``"module:attribute"``,
imported on first use), the data it takes (``"vector"``: ``(N, D)``, image datasets flattened;
``"image"``: ``(N, C, H, W)``; ``"any"``), its likelihood kind (``"exact"``, ``"bound"`` or
``"none"``, the same as the model class's ``likelihood``), and the family's
``run_defaults(kind, levels, options)``, which fills the options that follow the data (a VAE's
decoder) and says how the data should be preprocessed for it (dequantized into logit space for
flows, on the discrete grid for a VAE with a discrete decoder).

A model is described by a JSON-serialisable dict, ``{"model": name, "shape": [...], "context":
0, "options": {...}}``, and :func:`build_model` turns it back into the module, so a run
directory's ``config.json`` and ``model.safetensors`` are all it takes to reload it. Nothing
outside this module and the families' own packages looks at a model's name.

Adding a family is one :class:`Entry` line here plus its own package (builder, model class
implementing :class:`tractable.protocol.Model`, and ``run_defaults``).

Example:
    >>> cfg = model_config("maf", (2,), options={"transforms": 2})
    >>> type(build_model(cfg)).__name__, get_entry("maf").likelihood
    ('Flow', 'exact')
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

INPUTS = ("vector", "image", "any")
RunDefaults = Callable[[str, int | None, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


def _resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Entry:
    r"""How to build one model and what it needs.

    Attributes:
        name: the model's name (``--model NAME``).
        family: the family shown in reports, e.g. ``"flow"`` or ``"VAE"``.
        target: ``"module:attribute"`` of the builder.
        input: ``"vector"``, ``"image"`` or ``"any"``.
        likelihood: ``"exact"``, ``"bound"`` or ``"none"``.
        summary: one line for ``tractable list``.
        shape_argument: how the builder receives the event shape: ``"features"`` (first
            positional argument, ``D``) or ``"shape"`` (keyword ``shape``).
        defaults: ``"module:attribute"`` of the family's ``run_defaults(kind, levels,
            options) -> (model options, preprocessing overrides)``.
        interpolate: ``"module:attribute"`` of ``interpolate(model, a, b, steps)`` for models
            with a latent space to walk in, or ``None``.
        train_defaults: trainer settings (:class:`~tractable.train.TrainConfig` fields) the
            family needs by default, under the user's own (e.g. a GAN keeps its last weights:
            a validation loss does not rank a generator).
        ode: the model's exact likelihood comes from solving an ODE (``tractable eval
            --estimator ode``).
    """

    name: str
    family: str
    target: str
    input: str
    likelihood: str
    summary: str
    shape_argument: str = "features"
    defaults: str = "tractable.flows.defaults:run_defaults"
    interpolate: str | None = None
    train_defaults: tuple[tuple[str, Any], ...] = ()
    ode: bool = False

    def builder(self) -> Callable[..., nn.Module]:
        return _resolve(self.target)

    def run_defaults(self) -> RunDefaults:
        return _resolve(self.defaults)

    def interpolator(self) -> Callable[..., Any] | None:
        return None if self.interpolate is None else _resolve(self.interpolate)

    def option_names(self) -> list[str]:
        r"""The builder's keyword options (for ``tractable list`` and config validation)."""
        sig = inspect.signature(self.builder())
        return [
            p.name
            for p in sig.parameters.values()
            if p.name not in (self.shape_argument, "context", "embedding")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]


_FLOWS = "tractable.flows.builders"
_IMAGE = "tractable.flows.image"

MODELS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("maf", "flow", f"{_FLOWS}:MAF", "vector", "exact",
              "masked autoregressive flow (Papamakarios et al. 2017)"),
        Entry("iaf", "flow", f"{_FLOWS}:IAF", "vector", "exact",
              "inverse autoregressive flow (Kingma et al. 2016); slow density"),
        Entry("realnvp", "flow", f"{_FLOWS}:RealNVP", "vector", "exact",
              "affine coupling flow (Dinh et al. 2017)"),
        Entry("nice", "flow", f"{_FLOWS}:NICE", "vector", "exact",
              "additive coupling flow (Dinh et al. 2015)"),
        Entry("nsf", "flow", f"{_FLOWS}:NSF", "vector", "exact",
              "neural spline flow, autoregressive or coupling (Durkan et al. 2019)"),
        Entry("planar", "flow", f"{_FLOWS}:Planar", "vector", "exact",
              "planar flows (Rezende and Mohamed 2015)"),
        Entry("radial", "flow", f"{_FLOWS}:Radial", "vector", "exact",
              "radial flows (Rezende and Mohamed 2015)"),
        Entry("ffjord", "continuous flow", "tractable.continuous:FFJORD", "vector", "exact",
              "continuous normalizing flow on torchdiffeq (Grathwohl et al. 2019)", ode=True),
        Entry("glow", "image flow", f"{_IMAGE}:Glow", "image", "exact",
              "multiscale Glow for images (Kingma and Dhariwal 2018)", "shape",
              interpolate=f"{_IMAGE}:interpolate"),
        Entry("multiscale-realnvp", "image flow", f"{_IMAGE}:MultiscaleRealNVP", "image",
              "exact", "multiscale RealNVP for images (Dinh et al. 2017)", "shape",
              interpolate=f"{_IMAGE}:interpolate"),
        Entry("gaussian", "baseline", "tractable.flows.baselines:Gaussian", "vector", "exact",
              "one Gaussian, full or diagonal covariance: the simplest exact density"),
        Entry("mixture", "baseline", "tractable.flows.baselines:GaussianMixture", "vector",
              "exact", "a mixture of Gaussians fitted by maximum likelihood (Bishop 2006)"),
        Entry("gan", "GAN", "tractable.gan:build_gan", "any", "none",
              "generative adversarial network: MLP or DCGAN, five objectives (Goodfellow et al. "
              "2014)", "shape", defaults="tractable.gan.builders:run_defaults",
              train_defaults=(("restore_best", False),)),
        Entry("vae", "VAE", "tractable.vae:build_vae", "any", "bound",
              "variational autoencoder; ELBO/IWAE training (Kingma and Welling 2014)", "shape",
              defaults="tractable.vae.builders:run_defaults"),
        Entry("flow-matching", "flow matching", "tractable.flow_matching:build_flow_matching",
              "any", "exact", "conditional flow matching / rectified flow, OT couplings; exact "
              "likelihood by the ODE (Lipman et al. 2023)", "shape",
              defaults="tractable.flow_matching.builders:run_defaults", ode=True),
        Entry("ddpm", "diffusion", "tractable.diffusion:build_ddpm", "any", "bound",
              "denoising diffusion: L_simple or hybrid with learned variances, variational "
              "bound, DDIM; exact likelihood by the probability-flow ODE (Ho et al. 2020)",
              "shape",
              defaults="tractable.diffusion.builders:run_defaults", ode=True),
    ]
}  # fmt: skip


def model_names() -> list[str]:
    r"""Names of the models, in registry order.

    Example:
        >>> "maf" in model_names()
        True
    """
    return list(MODELS)


def get_entry(name: str) -> Entry:
    r"""The registry entry of ``name``; unknown names list the valid ones."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name]


def model_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    r"""The event shape model ``name`` sees for data of event ``shape``: flattened for vector
    models, unchanged otherwise; image models refuse data that are not ``(C, H, W)``.

    Example:
        >>> model_shape("maf", (1, 28, 28)), model_shape("vae", (1, 28, 28))
        ((784,), (1, 28, 28))
    """
    entry = get_entry(name)
    shape = tuple(int(s) for s in shape)
    if entry.input == "vector":
        return (math.prod(shape),)
    if entry.input == "image" and len(shape) != 3:
        raise ValueError(
            f"data: model {name!r} needs images of shape (C, H, W), got event shape {shape}"
        )
    return shape


def model_config(
    name: str, shape: tuple[int, ...], context: int = 0, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    r"""The JSON description of a model, its options checked against the builder's signature."""
    entry = get_entry(name)
    options = dict(options or {})
    known = entry.option_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for model {name!r}; expected some of {known}"
        )
    return {
        "model": name,
        "shape": [int(s) for s in shape],
        "context": int(context),
        "options": options,
        "defaults": builder_defaults(name),
    }


def builder_defaults(name: str) -> dict[str, Any]:
    r"""The builder's default for every option that has a JSON value, recorded in a run's
    config so that the run rebuilds the same model after a later release changes a default
    (options the user gave take precedence).

    Example:
        >>> builder_defaults("maf")["transforms"]
        5
    """
    entry = get_entry(name)
    sig = inspect.signature(entry.builder())
    out: dict[str, Any] = {}
    for option in entry.option_names():
        value = sig.parameters[option].default
        if value is inspect.Parameter.empty:
            continue
        value = list(value) if isinstance(value, tuple) else value
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[option] = value
    return out


def build_model(config: dict[str, Any]) -> nn.Module:
    r"""Build a model from its JSON description (see :func:`model_config`)."""
    if not isinstance(config, dict) or "model" not in config or "shape" not in config:
        raise ValueError(f"config: expected a dict with 'model' and 'shape', got {config!r}")
    entry = get_entry(config["model"])
    shape = tuple(int(s) for s in config["shape"])
    # the defaults recorded when the run was made (older runs have none), under the options
    known = set(entry.option_names())
    recorded = {k: v for k, v in dict(config.get("defaults") or {}).items() if k in known}
    options = {**recorded, **dict(config.get("options", {}))}
    context = int(config.get("context", 0))
    if context:
        options["context"] = context
    if entry.shape_argument == "shape":
        return entry.builder()(shape=shape, **options)
    return entry.builder()(math.prod(shape), **options)


__all__ = [
    "INPUTS",
    "MODELS",
    "Entry",
    "build_model",
    "builder_defaults",
    "get_entry",
    "model_config",
    "model_names",
]

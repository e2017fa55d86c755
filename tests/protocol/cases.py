"""The registry of model cases that the generic protocol tests run on.

Every name in :data:`tractable.registry.MODELS` must have a case here
(``test_every_registered_model_has_a_case`` fails otherwise). A case is a tiny configuration
of the model, built through :func:`tractable.registry.build_model` exactly as a run directory
rebuilds it, plus inputs of the model's event shape from the data it is meant for.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from tractable.registry import MODELS, build_model, model_config

IMAGE = (1, 8, 8)
FEATURES = 3
CONTEXT = 2


@dataclass
class Case:
    name: str  # the case id: the model name, with a suffix for variants
    model: str  # the registry name
    shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    context: int = 0
    data: str = "real"  # "real": standard normal values; "binary": 0/1 values
    # whether temperature < 1 must shrink the samples' spread: not for a VAE whose decoder
    # noise (untempered) dominates, e.g. Bernoulli pixels
    tempered: bool = True

    @property
    def entry(self):  # noqa: ANN201 - a tractable.registry.Entry
        return MODELS[self.model]

    @property
    def config(self) -> dict[str, Any]:
        return model_config(self.model, self.shape, self.context, self.options)

    def build(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(self.config)

    def inputs(self, n: int = 6, seed: int = 1) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        if self.data == "binary":
            return torch.bernoulli(torch.full((n, *self.shape), 0.5), generator=g)
        return torch.randn(n, *self.shape, generator=g)

    def contexts(self, n: int, seed: int = 2) -> Tensor | None:
        if not self.context:
            return None
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.context, generator=g)

    @property
    def features(self) -> int:
        return math.prod(self.shape)


_TINY: dict[str, Case] = {
    c.model: c
    for c in [
        Case("maf", "maf", (FEATURES,), {"transforms": 2, "hidden": [8]}),
        Case("iaf", "iaf", (FEATURES,), {"transforms": 2, "hidden": [8]}),
        Case("realnvp", "realnvp", (FEATURES,), {"transforms": 2, "hidden": [8]}),
        Case("nice", "nice", (FEATURES,), {"transforms": 2, "hidden": [8]}),
        Case("nsf", "nsf", (FEATURES,), {"transforms": 2, "hidden": [8], "bins": 4}),
        Case("planar", "planar", (FEATURES,), {"transforms": 3}),
        Case("radial", "radial", (FEATURES,), {"transforms": 3}),
        # fixed-step RK4 so that the cost (and the exactness of the trace) do not depend on
        # an adaptive solver's tolerance
        Case(
            "ffjord",
            "ffjord",
            (FEATURES,),
            {"hidden": [8], "solver": "rk4", "steps": 4, "adjoint": False},
        ),
        Case("gaussian", "gaussian", (FEATURES,), {}),
        Case("mixture", "mixture", (FEATURES,), {"components": 3, "covariance": "full"}),
        Case("gan", "gan", (FEATURES,), {"hidden": [8], "noise": 2}),
        # fixed-step RK4 both ways, as for ffjord
        Case("flow-matching", "flow-matching", (FEATURES,),
             {"hidden": [8, 8], "solver": "rk4", "steps": 4, "time_scale": 1.0}),
        Case("ddpm", "ddpm", (FEATURES,),
             {"hidden": [8], "steps": 5, "solver": "rk4", "ode_steps": 4}),
        Case("glow", "glow", IMAGE, {"depth": 1, "hidden": 4, "levels": 1}),
        Case(
            "multiscale-realnvp",
            "multiscale-realnvp",
            IMAGE,
            {"depth": 1, "hidden": 4, "blocks": 1},
        ),
        Case(
            "vae",
            "vae",
            (6,),
            {"latent": 2, "hidden": [8], "decoder": "bernoulli"},
            data="binary",
            tempered=False,
        ),
    ]
}


# further variants: a VAE whose samples follow the prior's temperature (a nearly
# deterministic Gaussian decoder on real data)
_VARIANTS = [
    # a DCGAN with the gradient penalty, spectral norm and two critic steps per generator step
    Case("gan-dcgan", "gan", IMAGE, {"width": 4, "noise": 4, "loss": "wgan-gp", "n_critic": 2}),
    Case(
        "gan-progressive",
        "gan",
        IMAGE,
        {"width": 4, "noise": 4, "curriculum": [1, 2], "fade": 1},
    ),
    Case("flow-matching-ot-image", "flow-matching", IMAGE,
         {"network": "mlp", "hidden": [8], "solver": "rk4", "steps": 16, "coupling": "ot",
          "sigma_min": 0.01, "time_scale": 1.0}),
    Case("ddpm-cosine-ddim-image", "ddpm", IMAGE,
         {"network": "mlp", "hidden": [8], "steps": 6, "schedule": "cosine", "sampler": "ddim",
          "sample_steps": 3, "solver": "rk4", "ode_steps": 2}),
    Case("ddpm-ode-posterior", "ddpm", (FEATURES,),
         {"hidden": [8], "steps": 4, "sampler": "ode", "solver": "rk4", "ode_steps": 2,
          "variance": "posterior", "scale": 2.0, "shift": -1.0}),
    Case("gan-hinge", "gan", (FEATURES,), {"hidden": [8], "loss": "hinge", "simultaneous": True}),
    Case(
        "vae-gaussian",
        "vae",
        (6,),
        {"latent": 2, "hidden": [8], "decoder": "gaussian", "scale": 0.01},
    ),
]


def takes_context(model: str) -> bool:
    r"""Whether the registry builder of ``model`` accepts a ``context``."""
    return "context" in inspect.signature(MODELS[model].builder()).parameters


def _conditional(case: Case) -> Case:
    return Case(
        f"{case.name}-conditional",
        case.model,
        case.shape,
        dict(case.options),
        context=CONTEXT,
        data=case.data,
    )


CASES: list[Case] = [
    *_TINY.values(),
    *_VARIANTS,
    *(_conditional(c) for c in _TINY.values() if takes_context(c.model)),
]

__all__ = ["CASES", "CONTEXT", "Case", "takes_context"]

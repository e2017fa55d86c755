r"""tractable: likelihood-based deep generative models you can trust.

Normalizing flows, variational autoencoders, honest log-likelihood estimation and the metrics
that compare them, behind one protocol (:mod:`tractable.protocol`): ``loss(batch)``,
``estimate(x)`` tagged exact / bound / estimate, ``sample(n, context, temperature)``, and
``log_prob`` where the density is exact. :mod:`tractable.registry` lists the models that
runs and the command line build; :mod:`tractable.runs` trains, loads, evaluates and plots
them.

Example:
    >>> import torch, tractable as tr
    >>> flow = tr.flows.MAF(features=2)
    >>> flow.log_prob(torch.randn(5, 2)).shape
    torch.Size([5])
"""

from . import (
    continuous,
    data,
    diffusion,
    distributions,
    estimators,
    flow_matching,
    flows,
    gan,
    metrics,
    nn,
    plots,
    protocol,
    registry,
    train,
    transforms,
    vae,
    variational,
)
from .checks import set_validation, validation, validation_enabled
from .variational import fit_reverse_kl

__version__ = "0.1.0"

__all__ = [
    "continuous",
    "data",
    "diffusion",
    "distributions",
    "estimators",
    "flow_matching",
    "metrics",
    "flows",
    "gan",
    "nn",
    "plots",
    "protocol",
    "registry",
    "train",
    "transforms",
    "vae",
    "variational",
    "fit_reverse_kl",
    "set_validation",
    "validation",
    "validation_enabled",
    "__version__",
]

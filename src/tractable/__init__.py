r"""tractable: likelihood-based deep generative models you can trust.

Normalizing flows, variational autoencoders, honest log-likelihood estimation and the metrics
that compare them, behind one protocol: ``log_prob(x, context=None)``, ``sample(n)``,
``loss(batch)``.

Example:
    >>> import torch, tractable as tr
    >>> flow = tr.flows.MAF(features=2)
    >>> flow.log_prob(torch.randn(5, 2)).shape
    torch.Size([5])
"""

from . import (
    continuous,
    data,
    distributions,
    estimators,
    flows,
    metrics,
    nn,
    train,
    transforms,
    vae,
)
from ._validation import set_validation, validation, validation_enabled

__version__ = "0.1.0"

__all__ = [
    "continuous",
    "data",
    "distributions",
    "estimators",
    "metrics",
    "flows",
    "nn",
    "train",
    "transforms",
    "vae",
    "set_validation",
    "validation",
    "validation_enabled",
    "__version__",
]

r"""Baselines with an exact density and no transform: a Gaussian and a mixture of Gaussians,
fitted by maximum likelihood through the same trainer as the flows.

They are where flexibility against tractability starts: a single Gaussian has a closed-form
density, sampling and maximum-likelihood fit, but one mode; a mixture of :math:`K` Gaussians,

.. math:: p(x) = \sum_{k=1}^K \pi_k \, \mathcal{N}(x; \mu_k, \Sigma_k),

has as many modes as components and an exact density, but no closed-form fit (EM, or, as
here, gradient descent on the negative log-likelihood; Bishop 2006, ch. 9). A flow reaches
further by transforming a simple base (Rezende and Mohamed 2015). All three implement the
same protocol, so they train, evaluate and compare side by side.

Example:
    >>> import torch
    >>> g = Gaussian(2)
    >>> g.estimate(torch.zeros(3, 2)).kind, g.sample(4).shape
    ('exact', torch.Size([4, 2]))
"""

from __future__ import annotations

from ..distributions import MixtureOfGaussians
from ..transforms import Compose
from .base import Flow


def GaussianMixture(  # noqa: N802 - a builder named like the model it builds
    features: int, components: int = 8, covariance: str = "diag", init_spread: float = 1.0
) -> Flow:
    r"""A mixture of ``components`` Gaussians on ``features`` dimensions with learnable
    weights, means and (``"diag"`` or ``"full"``) covariances: a :class:`Flow` with no
    transform whose base is the mixture. ``init_spread`` is the spread of the initial means."""
    base = MixtureOfGaussians(features, components, covariance, init_spread)
    return Flow(Compose(), base=base)


def Gaussian(features: int, covariance: str = "full") -> Flow:  # noqa: N802
    r"""A single Gaussian :math:`\mathcal{N}(\mu, \Sigma)` on ``features`` dimensions with a
    learnable mean and (``"full"`` or ``"diag"``) covariance."""
    return GaussianMixture(features, 1, covariance, init_spread=0.0)


__all__ = ["Gaussian", "GaussianMixture"]

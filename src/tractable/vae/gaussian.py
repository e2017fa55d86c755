r"""Diagonal Gaussian helpers: the log-density and the analytic KL divergences used by the ELBO.

.. math::
    \mathrm{KL}\big(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal{N}(0, I)\big)
    = \tfrac{1}{2} \sum_l \left(\sigma_l^2 + \mu_l^2 - 1 - 2\log\sigma_l\right)

.. math::
    \mathrm{KL}\big(\mathcal{N}(\mu_1, \operatorname{diag}\sigma_1^2) \,\|\,
    \mathcal{N}(\mu_2, \operatorname{diag}\sigma_2^2)\big)
    = \sum_l \left(\log\frac{\sigma_{2l}}{\sigma_{1l}}
      + \frac{\sigma_{1l}^2 + (\mu_{1l} - \mu_{2l})^2}{2\sigma_{2l}^2} - \frac{1}{2}\right)

(Kingma and Welling 2014, "Auto-Encoding Variational Bayes", Appendix B.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_LOG_2PI = math.log(2 * math.pi)


def log_normal_diag(z: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    r""":math:`\log \mathcal{N}(z; \mu, \operatorname{diag}\sigma^2)` summed over the last
    dimension; the arguments broadcast: ``(..., L) -> (...)``.

    Example:
        >>> import torch
        >>> from tractable.vae import log_normal_diag
        >>> round(log_normal_diag(torch.zeros(1), torch.zeros(1), torch.zeros(1)).item(), 4)
        -0.9189
    """
    u = (z - loc) * torch.exp(-log_scale)
    return (-0.5 * u.pow(2) - log_scale).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


def kl_normal_standard(loc: Tensor, log_scale: Tensor) -> Tensor:
    r""":math:`\mathrm{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal{N}(0,
    I))` per row: ``(N, L) -> (N,)``.

    Example:
        >>> import torch
        >>> from tractable.vae import kl_normal_standard
        >>> kl_normal_standard(torch.zeros(2, 3), torch.zeros(2, 3))
        tensor([0., 0.])
    """
    return 0.5 * (torch.exp(2 * log_scale) + loc.pow(2) - 1 - 2 * log_scale).sum(-1)


def kl_normal_normal(loc1: Tensor, log_scale1: Tensor, loc2: Tensor, log_scale2: Tensor) -> Tensor:
    r""":math:`\mathrm{KL}(\mathcal{N}(\mu_1, \sigma_1^2) \,\|\, \mathcal{N}(\mu_2,
    \sigma_2^2))` for diagonal Gaussians, summed over the last dimension (broadcasting).

    Example:
        >>> import torch
        >>> from tractable.vae import kl_normal_normal
        >>> z = torch.zeros(1, 2)
        >>> kl_normal_normal(z, z, z, z)
        tensor([0.])
    """
    var_ratio = torch.exp(2 * (log_scale1 - log_scale2))
    t = (loc1 - loc2).pow(2) * torch.exp(-2 * log_scale2)
    return (log_scale2 - log_scale1 + 0.5 * (var_ratio + t) - 0.5).sum(-1)


__all__ = ["log_normal_diag", "kl_normal_standard", "kl_normal_normal"]

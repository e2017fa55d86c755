r"""Elementwise transforms: affine, ActNorm, batch normalization, and the squashing maps for
bounded data (logit, atanh) with their inverses (sigmoid, tanh)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_positive_int
from .base import Inverse, Transform, sum_except_batch


def _per_feature(t: Tensor, x: Tensor) -> Tensor:
    r"""Broadcast a ``(C,)`` parameter along dim 1 of ``(N, C)`` or ``(N, C, H, W)``."""
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _spatial(x: Tensor) -> int:
    return math.prod(x.shape[2:]) if x.dim() > 2 else 1


class ElementwiseAffine(Transform):
    r"""A learnable elementwise affine map :math:`z = x \odot e^{s} + b`.

    .. math:: \log|\det J| = \sum_i s_i

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.ElementwiseAffine(2)
        >>> t(torch.ones(1, 2))[0].tolist()
        [[1.0, 1.0]]
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        check_positive_int(features, "features")
        self.shift = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = x * _per_feature(self.log_scale.exp(), x) + _per_feature(self.shift, x)
        return z, self.log_scale.sum().expand(x.shape[0]) * _spatial(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (z - _per_feature(self.shift, z)) * _per_feature(torch.exp(-self.log_scale), z)
        return x, -self.log_scale.sum().expand(z.shape[0]) * _spatial(z)


class ActNorm(Transform):
    r"""Activation normalization with data-dependent initialisation (Kingma and Dhariwal 2018).

    :math:`z = (x - \mu) \odot e^{-s}` per feature (per channel for images ``(N, C, H, W)``).
    The first forward call on data sets :math:`\mu` and :math:`s` to the batch mean and log
    standard deviation, so that the output starts standardised. The ``initialized`` flag is a
    persistent buffer: it is saved in the ``state_dict`` and restored with the model, so a loaded
    model is not re-initialised on its first batch (a bug nflows, FrEIA and normflows shipped).

    .. math:: \log|\det J| = -H W \sum_c s_c

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.ActNorm(2)
        >>> z, _ = t(3 + 2 * torch.randn(1000, 2))
        >>> bool(t.initialized), [round(v, 3) for v in z.mean(0).tolist()]
        (True, [0.0, 0.0])
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_positive_int(features, "features")
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = [0, *range(2, x.dim())]
        self.loc.copy_(x.mean(dims))
        std = (
            x.std(dims, unbiased=False)
            if x.shape[0] * _spatial(x) > 1
            else torch.ones_like(self.loc)
        )
        self.log_scale.copy_(torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self._initialize(x)
        z = (x - _per_feature(self.loc, x)) * _per_feature(torch.exp(-self.log_scale), x)
        return z, -self.log_scale.sum().expand(x.shape[0]) * _spatial(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * _per_feature(self.log_scale.exp(), z) + _per_feature(self.loc, z)
        return x, self.log_scale.sum().expand(z.shape[0]) * _spatial(z)


class BatchNorm(Transform):
    r"""Batch normalization as a flow layer (Dinh et al. 2017; Papamakarios et al. 2017).

    .. math:: z = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} e^{\gamma} + \beta, \qquad
              \log|\det J| = \sum_i \gamma_i - \tfrac12 \log(\sigma_i^2 + \epsilon)

    In training mode :math:`\mu, \sigma^2` are the batch statistics (treated as constants in the
    log-determinant, as in the MAF paper) and running averages are updated; in evaluation mode,
    and always for the inverse, the running averages are used, so the map is a fixed bijection.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.BatchNorm(2).eval()
        >>> t(torch.zeros(1, 2))[1].shape
        torch.Size([1])
    """

    def __init__(self, features: int, momentum: float = 0.05, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int(features, "features")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum: expected a float in (0, 1], got {momentum}")
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dims = [0, *range(2, x.dim())]
        if self.training and x.shape[0] * _spatial(x) > 1:
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_s = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - _per_feature(mean, x)) * _per_feature(log_s.exp(), x) + _per_feature(self.beta, x)
        return z, log_s.sum().expand(x.shape[0]) * _spatial(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_s = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (z - _per_feature(self.beta, z)) * _per_feature(torch.exp(-log_s), z)
        x = x + _per_feature(self.running_mean, z)
        return x, -log_s.sum().expand(z.shape[0]) * _spatial(z)


class Logit(Transform):
    r"""The logit map :math:`z = \log x - \log(1 - x)` from :math:`(0, 1)` to the real line,
    for data on the unit interval.

    .. math:: \log|\det J| = -\sum_i \left[\log x_i + \log(1 - x_i)\right]

    Inputs must lie strictly inside :math:`(0, 1)`; the data module's logit preprocessing first
    squeezes data into :math:`[\lambda, 1 - \lambda]`.

    Example:
        >>> import torch, tractable as tr
        >>> tr.transforms.Logit()(torch.tensor([[0.5]]))[0].item()
        0.0
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.log(x) - torch.log1p(-x)
        return z, -sum_except_batch(torch.log(x) + torch.log1p(-x))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # log sigmoid(z) + log(1 - sigmoid(z)) = -softplus(-z) - softplus(z), stable for any z
        return torch.sigmoid(z), -sum_except_batch(F.softplus(-z) + F.softplus(z))


class Atanh(Transform):
    r"""The map :math:`z = \operatorname{atanh}(x)` from :math:`(-1, 1)` to the real line.

    .. math:: \log|\det J| = -\sum_i \log(1 - x_i^2)

    The inverse direction is :math:`\tanh`, whose log-derivative is computed as
    :math:`2(\log 2 - z - \operatorname{softplus}(-2z))`, stable for large :math:`|z|`.

    Example:
        >>> import torch, tractable as tr
        >>> tr.transforms.Atanh()(torch.tensor([[0.0]]))[1].item()
        -0.0
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return torch.atanh(x), -sum_except_batch(torch.log1p(-x) + torch.log1p(x))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ladj = 2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))
        return torch.tanh(z), sum_except_batch(ladj)


def Sigmoid() -> Transform:  # noqa: N802 - reads as a layer name
    r"""The sigmoid, :math:`\mathbb{R} \to (0, 1)`, in the normalizing direction: the inverse
    of :class:`Logit`."""
    return Inverse(Logit())


def Tanh() -> Transform:  # noqa: N802 - reads as a layer name
    r"""The hyperbolic tangent, :math:`\mathbb{R} \to (-1, 1)`, in the normalizing direction:
    the inverse of :class:`Atanh`."""
    return Inverse(Atanh())

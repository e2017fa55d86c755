r"""Planar and radial flows (Rezende and Mohamed 2015), used here in the normalizing direction,
with the parameter constraints that keep them invertible.

Their inverses have no closed form in general; here they reduce to a scalar equation that is
solved to machine precision (a bracketed bisection for planar, a quadratic for radial).
With ``context > 0`` the parameters are produced by a linear map of the context (amortized, as
in VAE posteriors), on top of learned unconditional values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_positive_int
from .base import Transform

_M_SHIFT = math.log(math.e - 1)  # softplus(_M_SHIFT) == 1


def _hyper(context: int, out: int) -> nn.Linear | None:
    if context == 0:
        return None
    net = nn.Linear(context, out)
    nn.init.zeros_(net.weight)
    nn.init.zeros_(net.bias)
    return net


class Planar(Transform):
    r"""Planar flow :math:`z = x + \hat u \tanh(w^\top x + b)`.

    Invertibility needs :math:`w^\top \hat u \ge -1`; with
    :math:`\hat u = u + (m(w^\top u) - w^\top u)\, w / \lVert w \rVert^2` and
    :math:`m(a) = -1 + \operatorname{softplus}(a + \log(e - 1))`,
    :math:`w^\top \hat u = m(w^\top u) > -1`. The shift :math:`\log(e - 1)` (not in the paper,
    which uses :math:`m(a) = -1 + \operatorname{softplus}(a)`) makes :math:`m(0) = 0`, so the
    correction stays bounded by :math:`|u|` when :math:`w` is small and a near-zero
    initialisation is near the identity; with the paper's :math:`m`, :math:`\hat u` grows like
    :math:`1 / \lVert w \rVert`.

    .. math:: \log|\det J| = \log\left|1 + \hat u^\top w \, \tanh'(w^\top x + b)\right|

    The inverse solves the monotone scalar equation
    :math:`a + (w^\top \hat u) \tanh(a + b) = w^\top z` for :math:`a = w^\top x` by bisection on
    the bracket :math:`w^\top z \pm |w^\top \hat u|`, then :math:`x = z - \hat u \tanh(a + b)`.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.Planar(2)
        >>> x = torch.randn(5, 2)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(self, features: int, context: int = 0, iterations: int = 100) -> None:
        super().__init__()
        check_positive_int(features, "features")
        check_positive_int(iterations, "iterations")
        self.features, self.iterations = features, iterations
        self.u = nn.Parameter(0.1 * torch.randn(features))
        self.w = nn.Parameter(0.1 * torch.randn(features))
        self.b = nn.Parameter(torch.zeros(1))
        self.hyper = _hyper(context, 2 * features + 1)

    def _params(self, n: int, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        u = self.u.expand(n, -1)
        w = self.w.expand(n, -1)
        b = self.b.expand(n)
        if self.hyper is not None and context is not None:
            h = self.hyper(context)
            D = self.features
            u, w, b = u + h[:, :D], w + h[:, D : 2 * D], b + h[:, 2 * D]
        wu = (w * u).sum(1, keepdim=True)
        w_sq = (w * w).sum(1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
        u_hat = u + (-1 + F.softplus(wu + _M_SHIFT) - wu) * w / w_sq
        return u_hat, w, b

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, w, b = self._params(x.shape[0], context)
        a = (w * x).sum(1) + b
        h = torch.tanh(a)
        z = x + u * h.unsqueeze(1)
        # 1 + (w.u_hat) tanh'(a) > 0 by the constraint, so no absolute value is needed
        ladj = torch.log1p((w * u).sum(1) * (1 - h.pow(2)))
        return z, ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, w, b = self._params(z.shape[0], context)
        wz = (w * z).sum(1)
        wu = (w * u).sum(1)
        with torch.no_grad():
            lo, hi = wz - wu.abs() - 1e-12, wz + wu.abs() + 1e-12
            for _ in range(self.iterations):
                mid = 0.5 * (lo + hi)
                above = mid + wu * torch.tanh(mid + b) > wz
                hi = torch.where(above, mid, hi)
                lo = torch.where(above, lo, mid)
            a0 = 0.5 * (lo + hi)
        # One Newton step with gradients: exact to first order and differentiable in (z, params).
        g = a0 + wu * torch.tanh(a0 + b) - wz
        a = a0 - g / (1 + wu * (1 - torch.tanh(a0 + b).pow(2)))
        h = torch.tanh(a + b)
        x = z - u * h.unsqueeze(1)
        return x, -torch.log1p(wu * (1 - h.pow(2)))


class Radial(Transform):
    r"""Radial flow :math:`z = x + \beta\, h(r) (x - x_0)`, :math:`h(r) = 1 / (\alpha + r)`,
    :math:`r = \lVert x - x_0 \rVert`, with :math:`\alpha > 0` and :math:`\beta \ge -\alpha`
    for invertibility (Rezende and Mohamed 2015).

    .. math:: \log|\det J| = (D - 1) \log(1 + \beta h) + \log(1 + \beta h + \beta h'(r) r)

    The inverse solves :math:`s = r (1 + \beta / (\alpha + r))` for :math:`r`, where
    :math:`s = \lVert z - x_0 \rVert`: the positive root of
    :math:`r^2 + (\alpha + \beta - s) r - s \alpha = 0`.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.Radial(2)
        >>> x = torch.randn(5, 2)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(self, features: int, context: int = 0) -> None:
        super().__init__()
        check_positive_int(features, "features")
        self.features = features
        self.x0 = nn.Parameter(torch.randn(features))
        self.alpha_raw = nn.Parameter(torch.zeros(1))
        self.beta_raw = nn.Parameter(torch.zeros(1))
        self.hyper = _hyper(context, features + 2)

    def _params(self, n: int, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        x0 = self.x0.expand(n, -1)
        a_raw, b_raw = self.alpha_raw.expand(n), self.beta_raw.expand(n)
        if self.hyper is not None and context is not None:
            h = self.hyper(context)
            D = self.features
            x0, a_raw, b_raw = x0 + h[:, :D], a_raw + h[:, D], b_raw + h[:, D + 1]
        alpha = F.softplus(a_raw)
        beta = -alpha + F.softplus(b_raw)
        return x0, alpha, beta

    def _ladj(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        bh = beta * h
        # 1 + beta h + beta h'(r) r = 1 + beta alpha / (alpha + r)^2
        return (self.features - 1) * torch.log1p(bh) + torch.log1p(beta * alpha * h.pow(2))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x0, alpha, beta = self._params(x.shape[0], context)
        diff = x - x0
        r = diff.norm(dim=1)
        z = x + (beta / (alpha + r)).unsqueeze(1) * diff
        return z, self._ladj(r, alpha, beta)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x0, alpha, beta = self._params(z.shape[0], context)
        diff = z - x0
        s = diff.norm(dim=1)
        p = alpha + beta - s
        r = 0.5 * (-p + torch.sqrt(p.pow(2) + 4 * s * alpha))
        x = x0 + diff / (1 + beta / (alpha + r)).unsqueeze(1)
        return x, -self._ladj(r, alpha, beta)

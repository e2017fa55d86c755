r"""Discretized logistic decoders for ``levels``-valued data such as 8-bit images
(Kingma et al. 2016, IAF; Salimans et al. 2017, PixelCNN++).

Data scaled to :math:`[0,1]` on the grid :math:`i/(L-1)` are mapped to :math:`y = 2x - 1 \in
[-1, 1]`, bins of width :math:`2/(L-1)` centred on the grid points. Each bin gets the mass of a
logistic :math:`(\mu, s)` over it, and the two edge bins take the tails, so the :math:`L`
probabilities sum to one exactly:

.. math::
    P(y \mid \mu, s) = \begin{cases}
        \sigma(a) & y = -1 \\
        1 - \sigma(b) & y = 1 \\
        \sigma(a) - \sigma(b) & \text{otherwise}
    \end{cases}, \qquad a = \frac{y - \mu + \frac{1}{L-1}}{s},\;
    b = \frac{y - \mu - \frac{1}{L-1}}{s}.

The interior case is evaluated as :math:`\log\sigma(a) + \log\sigma(-b) +
\log(1 - e^{b - a})`, an identity that stays accurate however small the bin mass (no
fallback to the density at the bin centre is needed). As in PixelCNN++, :math:`\log s` is
clamped below at -7.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_positive_int
from ..nn.autoencoder import event_layout
from .decoders import Decoder, check_grid, grid_index

MIN_LOG_SCALE = -7.0


def discretized_logistic_log_prob(
    idx: Tensor, loc: Tensor, log_scale: Tensor, levels: int
) -> Tensor:
    r"""Elementwise :math:`\log P` of integer levels ``idx`` in ``0..levels-1`` under a
    discretized logistic with location ``loc`` and log-scale ``log_scale`` (in the
    :math:`[-1, 1]` coordinates); all three broadcast together.

    Example:
        >>> import torch
        >>> from tractable.vae.logistic import discretized_logistic_log_prob
        >>> idx = torch.arange(256)
        >>> lp = discretized_logistic_log_prob(idx, torch.tensor(0.3), torch.tensor(-2.0), 256)
        >>> round(lp.exp().sum().item(), 5)
        1.0
    """
    half = 1.0 / (levels - 1)
    y = idx.to(loc.dtype) * (2 * half) - 1
    inv_s = torch.exp(-log_scale.clamp(min=MIN_LOG_SCALE))
    a = (y - loc + half) * inv_s
    b = (y - loc - half) * inv_s
    interior = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))
    lower = F.logsigmoid(a)
    upper = F.logsigmoid(-b)
    return torch.where(idx == 0, lower, torch.where(idx == levels - 1, upper, interior))


def discretized_logistic_mean(loc: Tensor, log_scale: Tensor, levels: int) -> Tensor:
    r"""The exact mean in :math:`[0, 1]`, :math:`\frac{1}{L-1}\sum_{i=1}^{L-1} P(X \ge i)`,
    elementwise (memory: ``levels - 1`` times the input)."""
    half = 1.0 / (levels - 1)
    i = torch.arange(1, levels, dtype=loc.dtype, device=loc.device)
    edges = -1 + (2 * i - 1) * half  # lower edge of bin i
    s = torch.exp(log_scale.clamp(min=MIN_LOG_SCALE)).unsqueeze(-1)
    return torch.sigmoid((loc.unsqueeze(-1) - edges) / s).sum(-1) * half


def _sample_levels(loc: Tensor, log_scale: Tensor, levels: int) -> Tensor:
    r"""Integer levels drawn from the discretized logistic (round a clamped logistic draw)."""
    eps = torch.finfo(loc.dtype).eps
    u = torch.rand_like(loc).clamp(eps, 1 - eps)
    y = loc + torch.exp(log_scale.clamp(min=MIN_LOG_SCALE)) * (u.log() - torch.log1p(-u))
    return torch.round((y.clamp(-1, 1) + 1) * 0.5 * (levels - 1)).long()


class DiscretizedLogisticDecoder(Decoder):
    r"""An independent discretized logistic per dimension (Kingma et al. 2016).

    The network outputs a location and a log-scale per dimension, in the :math:`[-1, 1]`
    coordinates. Data: ``levels``-valued, scaled to :math:`[0, 1]` (``uint8 / 255``).
    ``mean`` is the exact mean of each dimension.

    Example:
        >>> import torch
        >>> from tractable.vae import DiscretizedLogisticDecoder
        >>> dec = DiscretizedLogisticDecoder((3, 4, 4), latent=2, hidden=(8,))
        >>> x = torch.randint(0, 256, (2, 3, 4, 4)) / 255
        >>> dec.log_prob(x, torch.zeros(2, 2)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        latent: int,
        levels: int = 256,
        hidden: Sequence[int] = (200, 200),
        activation: str = "tanh",
        net: nn.Module | None = None,
    ) -> None:
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        check_positive_int(levels, "levels", minimum=2)
        self.levels = levels
        super().__init__(shape, latent, 2 * event_layout(shape)[0], hidden, activation, net)

    def _check_domain(self, x: Tensor) -> None:
        check_grid(x, self.levels)

    def _loc_log_scale(self, p: Tensor) -> tuple[Tensor, Tensor]:
        c = self.channels
        return self.to_event(p[:, :c]), self.to_event(p[:, c:])

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        idx = grid_index(x, self.levels)
        loc, log_scale = self._loc_log_scale(p)
        lp = discretized_logistic_log_prob(idx, loc, log_scale, self.levels)
        return lp.reshape(x.shape[0], -1).sum(1)

    def _sample(self, p: Tensor) -> Tensor:
        loc, log_scale = self._loc_log_scale(p)
        return _sample_levels(loc, log_scale, self.levels).to(p.dtype) / (self.levels - 1)

    def _mean(self, p: Tensor) -> Tensor:
        loc, log_scale = self._loc_log_scale(p)
        return discretized_logistic_mean(loc, log_scale, self.levels)


class DiscretizedLogisticMixtureDecoder(Decoder):
    r"""A mixture of ``components`` discretized logistics per pixel (Salimans et al. 2017).

    As in PixelCNN++, the component :math:`k` is shared by the :math:`C` channels of a pixel and
    the channels depend linearly on the earlier ones within a component:

    .. math::
        p(x_{\text{pixel}}) = \sum_k \pi_k \prod_{c=1}^{C}
        P\Big(y_c \,\Big|\, \mu_{kc} + \sum_{j<c} \tanh(\alpha_{kcj})\, y_j,\; s_{kc}\Big).

    Per pixel the network outputs :math:`K` logits, :math:`KC` locations, :math:`KC`
    log-scales and :math:`KC(C-1)/2` coefficients, in that order along dimension 1. Vectors
    ``(D,)`` are one channel per site. ``mean`` is exact for one channel; with several, each
    component's channel means use the earlier channels' means in place of their values (an
    approximation).

    Example:
        >>> import torch
        >>> from tractable.vae import DiscretizedLogisticMixtureDecoder
        >>> dec = DiscretizedLogisticMixtureDecoder((3, 4, 4), latent=2, components=5, hidden=(8,))
        >>> x = torch.randint(0, 256, (2, 3, 4, 4)) / 255
        >>> dec.log_prob(x, torch.zeros(2, 2)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        latent: int,
        components: int = 5,
        levels: int = 256,
        hidden: Sequence[int] = (200, 200),
        activation: str = "tanh",
        net: nn.Module | None = None,
    ) -> None:
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        check_positive_int(components, "components")
        check_positive_int(levels, "levels", minimum=2)
        c = event_layout(shape)[0]
        self.components = components
        self.levels = levels
        self.pairs = c * (c - 1) // 2
        params = components * (1 + 2 * c + self.pairs)
        super().__init__(shape, latent, params, hidden, activation, net)

    def _check_domain(self, x: Tensor) -> None:
        check_grid(x, self.levels)

    def _split(self, p: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""logits ``(M, K, *sp)``, loc and log-scale ``(M, K, C, *sp)``, coefficients
        ``(M, K, C(C-1)/2, *sp)``."""
        K, C, sp, M = self.components, self.channels, self.spatial, p.shape[0]
        logits = p[:, :K]
        loc = p[:, K : K + K * C].reshape(M, K, C, *sp)
        log_scale = p[:, K + K * C : K + 2 * K * C].reshape(M, K, C, *sp)
        coef = torch.tanh(p[:, K + 2 * K * C :]).reshape(M, K, self.pairs, *sp)
        return logits, loc, log_scale, coef

    def _means(self, loc: Tensor, coef: Tensor, y: Tensor) -> Tensor:
        r"""Channel locations shifted by the earlier channels ``y`` ``(M, 1, C, *sp)``."""
        cols = [loc[:, :, 0]]
        for c in range(1, self.channels):
            m = loc[:, :, c]
            for j in range(c):
                m = m + coef[:, :, c * (c - 1) // 2 + j] * y[:, :, j]
            cols.append(m)
        return torch.stack(cols, 2)

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        logits, loc, log_scale, coef = self._split(p)
        xc = self.from_event(x)  # (M, C, *sp)
        idx = grid_index(xc, self.levels).unsqueeze(1)
        y = idx.to(p.dtype) * (2.0 / (self.levels - 1)) - 1
        means = self._means(loc, coef, y)
        lp = discretized_logistic_log_prob(idx, means, log_scale, self.levels).sum(2)
        lp = torch.logsumexp(lp + torch.log_softmax(logits, 1), 1)  # (M, *sp)
        return lp.reshape(x.shape[0], -1).sum(1)

    def _sample(self, p: Tensor) -> Tensor:
        logits, loc, log_scale, coef = self._split(p)
        k = torch.distributions.Categorical(logits=logits.movedim(1, -1)).sample()  # (M, *sp)

        def pick(t: Tensor) -> Tensor:
            index = k.unsqueeze(1).unsqueeze(1).expand(-1, 1, t.shape[2], *k.shape[1:])
            return t.gather(1, index)  # (M, 1, n, *sp)

        loc_k, ls_k, coef_k = pick(loc), pick(log_scale), pick(coef)
        levels: list[Tensor] = []
        ys: list[Tensor] = []
        for c in range(self.channels):
            m = loc_k[:, :, c]
            for j in range(c):
                m = m + coef_k[:, :, c * (c - 1) // 2 + j] * ys[j]
            idx = _sample_levels(m, ls_k[:, :, c], self.levels)
            levels.append(idx)
            ys.append(idx.to(p.dtype) * (2.0 / (self.levels - 1)) - 1)
        out = torch.cat(levels, 1).to(p.dtype) / (self.levels - 1)  # (M, C, *sp)
        return self.to_event(out)

    def _mean(self, p: Tensor) -> Tensor:
        logits, loc, log_scale, coef = self._split(p)
        cols: list[Tensor] = []
        ys: list[Tensor] = []
        for c in range(self.channels):
            m = loc[:, :, c]
            for j in range(c):
                m = m + coef[:, :, c * (c - 1) // 2 + j] * ys[j]
            mean_c = discretized_logistic_mean(m, log_scale[:, :, c], self.levels)  # (M, K, *sp)
            cols.append(mean_c)
            ys.append(2 * mean_c - 1)
        w = torch.softmax(logits, 1)
        out = torch.stack([(w * m).sum(1) for m in cols], 1)
        return self.to_event(out)


__all__ = [
    "DiscretizedLogisticDecoder",
    "DiscretizedLogisticMixtureDecoder",
    "discretized_logistic_log_prob",
    "discretized_logistic_mean",
    "MIN_LOG_SCALE",
]

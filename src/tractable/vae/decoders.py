r"""Decoders :math:`p(x \mid z)`: a network from the latent code to the parameters of a
factorized distribution over the data.

Every decoder has ``log_prob(x, z) -> (M,)`` (summed over the event), ``sample(z)`` and
``mean(z)`` (``(M, *event_shape)``), and ``params(z)``, the raw network output
``(M, P, *spatial)``. Data are vectors ``(M, D)`` or images ``(M, C, H, W)``. Discrete decoders
for ``levels``-valued data (8-bit images: 256) take values scaled to :math:`[0, 1]` on the grid
:math:`i / (\text{levels} - 1)`, i.e. ``uint8_images / 255``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_event, check_finite, check_positive_int, validation_enabled
from ..nn.autoencoder import decoder_net, event_layout


def check_grid(x: Tensor, levels: int, name: str = "x") -> Tensor:
    r"""Check that ``x`` lies in :math:`[0, 1]` on the grid :math:`i/(\text{levels}-1)`;
    return the integer levels ``round(x * (levels - 1))`` as ``long``."""
    y = x * (levels - 1)
    idx = torch.round(y)
    if validation_enabled():
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name}: expected {levels}-level data scaled to [0, 1] (e.g. uint8 / 255), got "
                f"values in [{lo:g}, {hi:g}]"
            )
        off = float((y - idx).abs().max())
        if off > 1e-3:
            raise ValueError(
                f"{name}: expected values on the grid i / {levels - 1} (e.g. uint8 / 255), found "
                f"a value {off:.3g} bins off the grid"
            )
    return idx.long()


def grid_index(x: Tensor, levels: int) -> Tensor:
    r"""The nearest level :math:`\operatorname{round}(x\,(L - 1))` of data in :math:`[0, 1]`,
    clamped to ``0..levels-1``, as ``long``, elementwise.

    No checks (the decoders run :func:`check_grid` on their input once, then index with this
    inside the likelihood).

    Example:
        >>> import torch
        >>> from tractable.vae.decoders import grid_index
        >>> grid_index(torch.tensor([0.0, 0.499, 1.0, 1.2]), 3).tolist()
        [0, 1, 2, 2]
    """
    return torch.round(x * (levels - 1)).long().clamp(0, levels - 1)


class Decoder(nn.Module):
    r"""Shared plumbing: the network, its output shape and input checks.

    Subclasses set the number of parameters per site and implement ``_log_prob``, ``_sample``,
    ``_mean`` on the parameter tensor ``(M, P, *spatial)``.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        latent: int,
        params: int,
        hidden: Sequence[int],
        activation: str,
        net: nn.Module | None,
    ) -> None:
        super().__init__()
        check_positive_int(latent, "latent")
        self.channels, self.spatial = event_layout(event_shape)
        self.event_shape = tuple(event_shape)
        self.latent = latent
        self.param_shape = (params, *self.spatial)
        if net is None:
            net = decoder_net(latent, params, self.event_shape, hidden, activation)
        elif not isinstance(net, nn.Module):
            raise TypeError(f"net: expected an nn.Module, got {type(net).__name__}")
        self.net = net
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # -- shapes -----------------------------------------------------------------------------
    def to_event(self, t: Tensor) -> Tensor:
        r"""``(M, C, *spatial) -> (M, *event_shape)``."""
        return t.reshape(t.shape[0], *self.event_shape)

    def from_event(self, x: Tensor) -> Tensor:
        r"""``(M, *event_shape) -> (M, C, *spatial)``."""
        return x.reshape(x.shape[0], self.channels, *self.spatial)

    # -- checks -----------------------------------------------------------------------------
    # True when the domain check also refuses NaN and infinities (no separate finiteness pass)
    domain_implies_finite: ClassVar[bool] = False

    def check(self, x: Tensor) -> Tensor:
        r"""Validate a data batch ``(M, *event_shape)`` (shape, finiteness and domain)."""
        finite = not self.domain_implies_finite
        x = check_event(x, "x", self.event_shape, like=self._anchor, finite=finite)
        if validation_enabled():
            self._check_domain(x)
        return x

    def _check_domain(self, x: Tensor) -> None:
        return None

    def params(self, z: Tensor, check: bool = True) -> Tensor:
        r"""The network output for latent codes ``(M, L)``: ``(M, P, *spatial)``.

        ``check=False`` skips the checks of ``z`` (codes drawn by the library's own encoder);
        the network's output is still checked for NaN and infinities."""
        if check:
            z = check_event(z, "z", (self.latent,), like=self._anchor)
        out = self.net(z)
        if (
            not isinstance(out, Tensor)
            or out.shape[0] != z.shape[0]
            or out[0].numel() != math.prod(self.param_shape)
        ):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"net: expected an output of shape ({z.shape[0]}, *{self.param_shape}) (or the "
                f"same number of values per row), got {got}"
            )
        out = out.reshape(z.shape[0], *self.param_shape)
        if validation_enabled():
            check_finite(out, "net output")
        return out

    # -- the distribution -------------------------------------------------------------------
    def log_prob(self, x: Tensor, z: Tensor, check: bool = True) -> Tensor:
        r""":math:`\log p(x \mid z)` summed over the event: ``(M, *event), (M, L) -> (M,)``.

        ``check=False`` skips the checks of ``x`` and ``z`` (the VAE checks a batch once, not
        per sample, and draws ``z`` itself).
        """
        if check:
            x = self.check(x)
        if x.shape[0] != z.shape[0]:
            raise ValueError(f"z: expected {x.shape[0]} rows to match x, got {z.shape[0]}")
        return self._log_prob(x, self.params(z, check=check))

    def sample(self, z: Tensor) -> Tensor:
        r"""One draw of ``x`` per latent row: ``(M, *event_shape)``."""
        with torch.no_grad():
            return self._sample(self.params(z))

    def mean(self, z: Tensor) -> Tensor:
        r"""The mean of :math:`p(x \mid z)` (see each decoder for its exact meaning)."""
        return self._mean(self.params(z))

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        raise NotImplementedError

    def _sample(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def _mean(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, latent={self.latent}"


class BernoulliDecoder(Decoder):
    r"""Independent Bernoulli pixels for binary data :math:`x \in \{0, 1\}^D`.

    .. math:: \log p(x \mid z) = \sum_d x_d \log \sigma(\ell_d) + (1 - x_d) \log \sigma(-\ell_d)

    with logits :math:`\ell = f(z)`. Non-binary data raise a ``ValueError``: binarize first
    (statically, or dynamically with ``torch.bernoulli(x)`` as in Burda et al. 2016).

    Example:
        >>> import torch
        >>> from tractable.vae import BernoulliDecoder
        >>> dec = BernoulliDecoder(4, latent=2, hidden=(8,))
        >>> dec.log_prob(torch.ones(3, 4), torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        latent: int,
        hidden: Sequence[int] = (200, 200),
        activation: str = "tanh",
        net: nn.Module | None = None,
    ) -> None:
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        super().__init__(shape, latent, event_layout(shape)[0], hidden, activation, net)

    domain_implies_finite = True

    def _check_domain(self, x: Tensor) -> None:
        if x.numel() == 0:
            return
        # One pass for the range (NaN fails it), then x in {0, 1} iff sum x (1 - x) = 0: every
        # term is >= 0 on [0, 1] and > 0 off {0, 1} (no underflow to 0: x (1 - x) >=
        # min(x, 1 - x) / 2 > 0), and a sum of non-negative terms is 0 only if all are.
        lo, hi = torch.aminmax(x)
        if float(lo) >= 0 and float(hi) <= 1:
            flat = x.reshape(-1)
            if flat.dtype in (torch.float32, torch.float64):
                off = torch.dot(flat, 1 - flat)
            else:
                off = (flat * (1 - flat)).sum()
            if float(off) == 0:
                return
        check_finite(x, "x")
        bad = (x != 0) & (x != 1)
        if bool(bad.any()):
            v = float(x[bad].flatten()[0])
            raise ValueError(
                f"x: the Bernoulli decoder needs binary data in {{0, 1}}, found {int(bad.sum())} "
                f"non-binary values (e.g. {v:g}); binarize the data (torch.bernoulli(x)) or use "
                "a Gaussian or discretized-logistic decoder"
            )

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        logits = self.to_event(p)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        return -bce.reshape(x.shape[0], -1).sum(1)

    def _sample(self, p: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(self.to_event(p)))

    def _mean(self, p: Tensor) -> Tensor:
        r"""The pixel probabilities :math:`\sigma(\ell)`."""
        return torch.sigmoid(self.to_event(p))


class GaussianDecoder(Decoder):
    r"""A diagonal Gaussian :math:`\mathcal{N}(x; \mu(z), \operatorname{diag}\sigma^2)`.

    ``scale`` chooses :math:`\sigma`: a float (fixed), ``"learned"`` (one learned value per
    dimension, shared by all :math:`z`) or ``"network"`` (predicted from :math:`z`). Learned
    scales are :math:`\sigma = \sigma_{\min} + \operatorname{softplus}(s)`, which keeps the
    likelihood bounded (an unbounded Gaussian likelihood lets the variance collapse).

    Example:
        >>> import torch
        >>> from tractable.vae import GaussianDecoder
        >>> dec = GaussianDecoder(3, latent=2, hidden=(8,), scale="network")
        >>> dec.log_prob(torch.randn(5, 3), torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        latent: int,
        hidden: Sequence[int] = (200, 200),
        activation: str = "tanh",
        net: nn.Module | None = None,
        scale: float | str = 1.0,
        min_scale: float = 1e-3,
    ) -> None:
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        c = event_layout(shape)[0]
        if isinstance(scale, str):
            if scale not in ("learned", "network"):
                raise ValueError(f"scale: expected a float, 'learned' or 'network', got {scale!r}")
        elif isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"scale: expected a float > 0, 'learned' or 'network', got {scale!r}")
        if not (isinstance(min_scale, (int, float)) and min_scale >= 0):
            raise ValueError(f"min_scale: expected a float >= 0, got {min_scale!r}")
        super().__init__(shape, latent, 2 * c if scale == "network" else c, hidden, activation, net)
        self.scale_mode = scale if isinstance(scale, str) else "fixed"
        self.min_scale = float(min_scale)
        if scale == "learned":
            # softplus(s) = 1 - min_scale at initialization, so sigma starts at 1.
            init = math.log(math.expm1(max(1.0 - self.min_scale, 1e-6)))
            self.raw_scale = nn.Parameter(torch.full(shape, init))
        elif not isinstance(scale, str):
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))

    def _loc_scale(self, p: Tensor) -> tuple[Tensor, Tensor]:
        c = self.channels
        loc = self.to_event(p[:, :c])
        if self.scale_mode == "fixed":
            return loc, self.fixed_scale.expand_as(loc)
        raw = (
            self.raw_scale.expand_as(loc)
            if self.scale_mode == "learned"
            else self.to_event(p[:, c:])
        )
        return loc, self.min_scale + F.softplus(raw)

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        loc, scale = self._loc_scale(p)
        u = (x - loc) / scale
        lp = -0.5 * u.pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)
        return lp.reshape(x.shape[0], -1).sum(1)

    def _sample(self, p: Tensor) -> Tensor:
        loc, scale = self._loc_scale(p)
        return loc + scale * torch.randn_like(loc)

    def _mean(self, p: Tensor) -> Tensor:
        return self._loc_scale(p)[0]


class CategoricalDecoder(Decoder):
    r"""An independent ``levels``-way categorical per dimension (a 256-way softmax per
    sub-pixel, as in PixelRNN, van den Oord et al. 2016).

    .. math:: \log p(x \mid z) = \sum_d \log \operatorname{softmax}(\ell_d(z))_{x_d}

    Data are ``levels``-valued and scaled to :math:`[0, 1]` (``uint8 / 255`` for 256 levels).
    ``mean`` is the expected value :math:`\sum_i p_i \, i/(\text{levels}-1)`.

    Example:
        >>> import torch
        >>> from tractable.vae import CategoricalDecoder
        >>> dec = CategoricalDecoder((1, 4, 4), latent=2, levels=4, hidden=(8,))
        >>> x = torch.randint(0, 4, (2, 1, 4, 4)) / 3
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
        super().__init__(shape, latent, event_layout(shape)[0] * levels, hidden, activation, net)

    def _check_domain(self, x: Tensor) -> None:
        check_grid(x, self.levels)

    def _logits(self, p: Tensor) -> Tensor:
        # (M, C * L, *spatial) -> (M, *event, L)
        t = p.reshape(p.shape[0], self.channels, self.levels, *self.spatial).movedim(2, -1)
        return t.reshape(p.shape[0], *self.event_shape, self.levels)

    def _log_prob(self, x: Tensor, p: Tensor) -> Tensor:
        idx = grid_index(x, self.levels)
        log_p = torch.log_softmax(self._logits(p), -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        return log_p.reshape(x.shape[0], -1).sum(1)

    def _sample(self, p: Tensor) -> Tensor:
        logits = self._logits(p)
        idx = torch.distributions.Categorical(logits=logits).sample()
        return idx.to(p.dtype) / (self.levels - 1)

    def _mean(self, p: Tensor) -> Tensor:
        grid = torch.arange(self.levels, dtype=p.dtype, device=p.device) / (self.levels - 1)
        return torch.softmax(self._logits(p), -1) @ grid


__all__ = [
    "Decoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "CategoricalDecoder",
    "check_grid",
    "grid_index",
]

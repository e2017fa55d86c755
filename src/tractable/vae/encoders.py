r"""Encoders :math:`q(z \mid x)`: a diagonal Gaussian with the reparameterization trick, and a
flow-enhanced posterior that pushes the Gaussian draw through a conditional flow.

Every encoder offers, with ``x`` of shape ``(N, *event_shape)``:

* ``rsample_and_log_prob(x, k) -> (z, log_q)``: ``k`` differentiable draws per row,
  ``(k, N, L)`` and ``(k, N)``;
* ``sample(x, k)``, ``rsample(x, k)``: the draws alone, ``(k, N, L)``;
* ``log_prob(z, x)``: :math:`\log q(z \mid x)` for flat rows ``(M, L), (M, *event) -> (M,)``;
* ``gaussian(x)``: the Gaussian stage, ``(loc, log_scale, features)``.

These match the proposal protocol of :mod:`tractable.estimators`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_event, check_finite, check_positive_int, validation_enabled
from ..nn.autoencoder import encoder_net, event_layout
from .gaussian import log_normal_diag


class GaussianEncoder(nn.Module):
    r"""A diagonal Gaussian posterior (Kingma and Welling 2014; Rezende et al. 2014).

    .. math:: q(z \mid x) = \mathcal{N}(z; \mu(x), \operatorname{diag}\sigma(x)^2), \qquad
              z = \mu(x) + \sigma(x) \odot \epsilon, \quad \epsilon \sim \mathcal{N}(0, I)

    A network ``net`` maps ``x`` to ``features`` values :math:`h(x)`; two linear heads give
    :math:`\mu` and :math:`\log\sigma`. The default network is an MLP for vectors and a small
    conv net for images.

    Example:
        >>> import torch
        >>> from tractable.vae import GaussianEncoder
        >>> enc = GaussianEncoder(6, latent=2, hidden=(8,))
        >>> z, log_q = enc.rsample_and_log_prob(torch.randn(3, 6), k=4)
        >>> z.shape, log_q.shape
        (torch.Size([4, 3, 2]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        latent: int,
        hidden: Sequence[int] = (200, 200),
        activation: str = "tanh",
        net: nn.Module | None = None,
        features: int | None = None,
    ) -> None:
        super().__init__()
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        event_layout(shape)
        check_positive_int(latent, "latent")
        if net is None:
            net, features = encoder_net(shape, hidden, activation)
        else:
            if not isinstance(net, nn.Module):
                raise TypeError(f"net: expected an nn.Module, got {type(net).__name__}")
            if features is None:
                raise ValueError("features: required with a custom net (its output width)")
            check_positive_int(features, "features")
        self.event_shape = shape
        self.latent = latent
        self.features = features
        self.net = net
        self.loc = nn.Linear(features, latent)
        self.log_scale = nn.Linear(features, latent)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def check(self, x: Tensor) -> Tensor:
        return check_event(x, "x", self.event_shape, like=self._anchor)

    def gaussian(self, x: Tensor, check: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        r"""``loc`` and ``log_scale`` ``(N, L)`` and the features ``h`` ``(N, F)``.

        ``check=False`` skips the data checks (for a batch the caller has checked already)."""
        if check:
            x = self.check(x)
        h = self.net(x)
        if not isinstance(h, Tensor) or tuple(h.shape) != (x.shape[0], self.features):
            got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(
                f"net: expected an output of shape ({x.shape[0]}, {self.features}), got {got}"
            )
        loc, log_scale = self.loc(h), self.log_scale(h)
        if validation_enabled():
            check_finite(log_scale, "encoder log_scale")
        return loc, log_scale, h

    def rsample_and_log_prob(self, x: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        r"""``k`` reparameterized draws per row and their log-density: ``(k, N, L)``, ``(k, N)``."""
        loc, log_scale, _ = self.gaussian(x)
        return self.draw(loc, log_scale, k)

    @staticmethod
    def draw(loc: Tensor, log_scale: Tensor, k: int) -> tuple[Tensor, Tensor]:
        r"""``k`` reparameterized draws from given parameters ``(N, L)``: ``(k, N, L)`` and
        their log-density ``(k, N)``."""
        z = GaussianEncoder.reparameterize(loc, log_scale, k)
        return z, log_normal_diag(z, loc, log_scale)

    @staticmethod
    def reparameterize(loc: Tensor, log_scale: Tensor, k: int) -> Tensor:
        r"""``k`` draws :math:`z = \mu + \sigma \odot \varepsilon` from given parameters
        ``(N, L)``, without their density: ``(k, N, L)``."""
        check_positive_int(k, "k")
        eps = torch.randn(k, *loc.shape, dtype=loc.dtype, device=loc.device)
        return loc + torch.exp(log_scale) * eps

    def rsample(self, x: Tensor, k: int = 1) -> Tensor:
        return self.rsample_and_log_prob(x, k)[0]

    def sample(self, x: Tensor, k: int = 1) -> Tensor:
        r"""``k`` draws per row of ``x`` without gradients: ``(k, N, L)``."""
        with torch.no_grad():
            return self.rsample(x, k)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log q(z \mid x)` for matching rows: ``(M, L), (M, *event) -> (M,)``."""
        z = check_event(z, "z", (self.latent,), like=self._anchor)
        loc, log_scale, _ = self.gaussian(x)
        if z.shape[0] != loc.shape[0]:
            raise ValueError(f"z: expected {loc.shape[0]} rows to match x, got {z.shape[0]}")
        return log_normal_diag(z, loc, log_scale)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, latent={self.latent}, features={self.features}"


class FlowEncoder(nn.Module):
    r"""A flow-enhanced posterior: a Gaussian draw pushed through a conditional flow whose
    context is the encoder's features (Rezende and Mohamed 2015; Kingma et al. 2016, IAF).

    .. math:: z_0 \sim \mathcal{N}(\mu(x), \sigma(x)^2), \quad z = g(z_0; h(x)), \qquad
              \log q(z \mid x) = \log \mathcal{N}(z_0; \mu, \sigma^2)
              - \log\left|\det \frac{\partial g}{\partial z_0}\right|

    ``flow`` is a :class:`tractable.flows.Flow` on ``(L,)`` with ``context`` equal to the
    encoder's ``features``; :math:`g` is its sampling direction (``flow.layers.inverse``), so
    an IAF makes sampling and its density one fast pass. ``log_prob`` at arbitrary points runs
    the normalizing direction (sequential for an IAF, so slower); the VAE and its estimators
    only use ``rsample_and_log_prob``. The flow's own base distribution is not used.

    Example:
        >>> import torch
        >>> from tractable.vae import FlowEncoder, GaussianEncoder
        >>> from tractable.flows import Flow
        >>> from tractable.transforms import Compose
        >>> enc = FlowEncoder(GaussianEncoder(4, latent=2, hidden=(8,)),
        ...                   Flow(Compose(), event_shape=(2,), context=8))
        >>> enc.rsample_and_log_prob(torch.randn(3, 4), k=5)[1].shape
        torch.Size([5, 3])
    """

    def __init__(self, gaussian: GaussianEncoder, flow: nn.Module) -> None:
        super().__init__()
        if not isinstance(gaussian, GaussianEncoder):
            raise TypeError(f"gaussian: expected a GaussianEncoder, got {type(gaussian).__name__}")
        for attr in ("layers", "transform", "context_features", "event_shape"):
            if not hasattr(flow, attr):
                raise TypeError(
                    f"flow: expected a tractable Flow (missing {attr!r}), got {type(flow).__name__}"
                )
        if tuple(flow.event_shape) != (gaussian.latent,):
            raise ValueError(
                f"flow: expected event_shape ({gaussian.latent},) to match the "
                f"latent size, got {tuple(flow.event_shape)}"
            )
        if flow.context_features != gaussian.features:
            raise ValueError(
                f"flow: expected context={gaussian.features} (the encoder's feature "
                f"width), got context={flow.context_features}"
            )
        self.base_encoder = gaussian
        self.flow = flow
        self.event_shape = gaussian.event_shape
        self.latent = gaussian.latent
        self.features = gaussian.features

    def check(self, x: Tensor) -> Tensor:
        return self.base_encoder.check(x)

    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.base_encoder.gaussian(x)

    def rsample_and_log_prob(self, x: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        r"""``k`` draws per row through the flow and their log-density: ``(k, N, L)`` and
        ``(k, N)``."""
        loc, log_scale, h = self.base_encoder.gaussian(x)
        z0, log_q0 = self.base_encoder.draw(loc, log_scale, k)
        n = h.shape[0]
        c = h.unsqueeze(0).expand(k, *h.shape).reshape(k * n, -1)
        if getattr(self.flow, "embedding", None) is not None:
            c = self.flow.embedding(c)
        z, ladj_inv = self.flow.layers.inverse(z0.reshape(k * n, self.latent), c)
        return z.reshape(k, n, self.latent), log_q0 - ladj_inv.reshape(k, n)

    def rsample(self, x: Tensor, k: int = 1) -> Tensor:
        return self.rsample_and_log_prob(x, k)[0]

    def sample(self, x: Tensor, k: int = 1) -> Tensor:
        with torch.no_grad():
            return self.rsample(x, k)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log q(z \mid x)` for matching rows, through the flow's normalizing direction."""
        loc, log_scale, h = self.base_encoder.gaussian(x)
        z0, ladj = self.flow.transform(z, h)
        return log_normal_diag(z0, loc, log_scale) + ladj


__all__ = ["GaussianEncoder", "FlowEncoder"]

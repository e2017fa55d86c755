r"""The :class:`Flow` model: a base distribution pushed through an invertible transform.

.. math:: \log p(x \mid c) = \log p_Z(f(x; c)) + \log |\det J_f(x; c)|

``transform`` maps data to noise; sampling runs its inverse on draws from the base.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import check_context, check_event, check_positive_int
from ..distributions import Distribution, StandardNormal
from ..transforms.base import Transform


class Flow(nn.Module):
    r"""A normalizing flow: ``transform`` (data to noise) on top of a ``base`` distribution.

    Args:
        transform: the invertible map from data to noise.
        base: the base distribution; a standard normal on ``event_shape`` by default.
        event_shape: the shape of one example, e.g. ``(D,)`` or ``(C, H, W)``.
        context: the number of context features (0 for an unconditional flow).
        embedding: an optional network applied to the raw context before the transforms see it;
            ``context`` is then the width of its input.

    Example:
        >>> import torch, tractable as tr
        >>> flow = tr.flows.Flow(tr.transforms.ElementwiseAffine(2), event_shape=(2,))
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        transform: Transform,
        base: Distribution | None = None,
        event_shape: int | Sequence[int] | None = None,
        context: int = 0,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"transform: expected a Transform, got {type(transform).__name__}")
        if base is None:
            if event_shape is None:
                raise ValueError("event_shape: required when no base distribution is given")
            base = StandardNormal(event_shape)
        if not isinstance(base, Distribution):
            raise TypeError(f"base: expected a tractable Distribution, got {type(base).__name__}")
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            raise ValueError(f"context: expected an int >= 0, got {context!r}")
        self.layers = transform
        self.base = base
        self.event_shape = tuple(base.event_shape)
        self.context_features = context
        self.embedding = embedding
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def features(self) -> int:
        return math.prod(self.event_shape)

    # -- input handling ---------------------------------------------------------------------
    def _x(self, x: Tensor, name: str = "x") -> Tensor:
        return check_event(x, name, self.event_shape, like=self._anchor)

    def _c(self, context: Tensor | None, batch: int | None) -> Tensor | None:
        context = check_context(context, self.context_features, batch, like=self._anchor)
        if context is not None and self.embedding is not None:
            context = self.embedding(context)
        return context

    # -- the public surface -----------------------------------------------------------------
    def transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Map data to noise: returns ``z`` and the log-abs-det-Jacobian ``ladj`` of shape (N,)."""
        x = self._x(x)
        return self.layers(x, self._c(context, x.shape[0]))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Map noise to data."""
        z = self._x(z, "z")
        x, _ = self.layers.inverse(z, self._c(context, z.shape[0]))
        return x

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The exact log-density of each row of ``x``: ``(N, *event_shape) -> (N,)``."""
        z, ladj = self.transform(x, context)
        log_p = self.base.log_prob(z) + ladj
        return log_p

    def loss(self, batch: Tensor | Sequence[Tensor]) -> Tensor:
        r"""Mean negative log-likelihood of a batch ``x`` or ``(x, context)``: the training loss."""
        if isinstance(batch, Tensor):
            return -self.log_prob(batch).mean()
        if len(batch) == 1:
            return -self.log_prob(batch[0]).mean()
        x, c = batch[0], batch[1]
        return -self.log_prob(x, c if self.context_features else None).mean()

    def _draw(
        self, n: int, context: Tensor | None, temperature: float
    ) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
        return draw_base(self, n, context, temperature)

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""Draw ``n`` samples: ``(n, *event_shape)``, or ``(M, n, *event_shape)`` given an
        ``(M, C)`` context. ``temperature`` scales the base distribution's spread."""
        with torch.no_grad():
            z, c, lead = self._draw(n, context, temperature)
            x, _ = self.layers.inverse(z, c)
        return x.reshape(*lead, *self.event_shape)

    def rsample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""Like :meth:`sample`, but differentiable with respect to the flow's parameters."""
        z, c, lead = self._draw(n, context, temperature)
        x, _ = self.layers.inverse(z, c)
        return x.reshape(*lead, *self.event_shape)

    def sample_and_log_prob(
        self, n: int, context: Tensor | None = None, temperature: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        r"""Samples and their log-density under the model, in one pass.

        The density is the model's own at the returned points, whatever the temperature (which
        only changes where the base draws fall): :math:`\log p(x) = \log p_Z(z) - \log|\det
        J_{f^{-1}}(z)|`. Shapes: ``(n, *event_shape)`` and ``(n,)``, or with a leading ``M``
        for ``M`` context rows."""
        z, c, lead = self._draw(n, context, temperature)
        x, ladj_inv = self.layers.inverse(z, c)
        log_p = self.base.log_prob(z) - ladj_inv
        return x.reshape(*lead, *self.event_shape), log_p.reshape(lead)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, context={self.context_features}"


__all__ = ["Flow"]


def draw_base(
    flow: nn.Module, n: int, context: Tensor | None, temperature: float
) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
    r"""Base draws for ``flow.sample``: ``n`` of them, or ``n`` for each of the ``M`` context
    rows as ``(M * n, ...)`` with the context repeated to match; returns the draws, the
    (validated, repeated) context and the leading shape of the samples, ``(n,)`` or
    ``(M, n)``. ``flow`` has ``base``, ``context_features`` and ``_c`` (context checking and
    embedding)."""
    check_positive_int(n, "n")
    if flow.context_features == 0:
        if context is not None:
            raise ValueError("context: this flow is unconditional but a context was given")
        return flow.base.rsample(n, temperature), None, (n,)
    c = flow._c(context, None)
    m = c.shape[0]
    return flow.base.rsample(m * n, temperature), c.repeat_interleave(n, dim=0), (m, n)

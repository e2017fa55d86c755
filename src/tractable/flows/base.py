r"""The :class:`Flow` model: a base distribution pushed through an invertible transform.

.. math:: \log p(x \mid c) = \log p_Z(f(x; c)) + \log |\det J_f(x; c)|

``transform`` maps data to noise; sampling runs its inverse on draws from the base. Every flow
model of the library is a :class:`Flow` or one of its direct subclasses
(:class:`~tractable.flows.MultiscaleFlow`, :class:`~tractable.continuous.ContinuousFlow`), so they
share one implementation of the model protocol (:mod:`tractable.protocol`): ``likelihood`` is
``"exact"``, :meth:`Flow.estimate` offers the single estimator ``"exact"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..checks import check_context, check_event, check_positive_int
from ..distributions import Distribution, StandardNormal
from ..estimators import Estimate, exact
from ..protocol import check_method
from ..transforms.base import Transform


def context_width(context: int, embedding: nn.Module | None) -> int:
    r"""The width of the context the transforms of a flow see: ``context`` itself, or the output
    width ``E`` of ``embedding`` applied to an ``(N, context)`` context.

    A clear ``ValueError`` for a negative or non-int ``context``, an embedding without a context,
    or an embedding whose output is not ``(N, E)``.

    Example:
        >>> import torch
        >>> context_width(3, None), context_width(3, torch.nn.Linear(3, 5))
        (3, 5)
    """
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context: expected an int >= 0, got {context!r}")
    if embedding is None:
        return context
    if context == 0:
        raise ValueError("embedding: given, but context is 0; set context to its input width")
    with torch.no_grad():
        out = embedding(torch.zeros(1, context))
    if out.dim() != 2:
        raise ValueError(f"embedding: expected an output of shape (N, E), got {tuple(out.shape)}")
    return out.shape[1]


class Flow(nn.Module):
    r"""A normalizing flow: ``transform`` (data to noise) on top of a ``base`` distribution.

    Implements :class:`tractable.protocol.Model` with an exact density: ``log_prob``, ``loss``
    (the mean negative log-likelihood), ``estimate`` (kind ``"exact"``), ``sample`` (with a
    temperature that scales the base's spread), ``rsample``, ``sample_and_log_prob`` and
    ``extra_log``.

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
        >>> flow.estimate(torch.zeros(3, 2)).kind
        'exact'
    """

    likelihood: ClassVar[str] = "exact"
    estimators: ClassVar[tuple[str, ...]] = ("exact",)

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
        # the shape of one example; a subclass whose transform changes the shape (a multiscale
        # image flow) sets its own, the latent keeps the base's
        self.event_shape = tuple(base.event_shape)
        self.context_features = context
        self.embedding = embedding
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self._compiled: Any = None

    @property
    def features(self) -> int:
        return math.prod(self.event_shape)

    # -- input handling ---------------------------------------------------------------------
    def _x(self, x: Tensor, name: str = "x", allow_empty: bool = False) -> Tensor:
        return check_event(x, name, self.event_shape, like=self._anchor, allow_empty=allow_empty)

    def _c(self, context: Tensor | None, batch: int | None) -> Tensor | None:
        context = check_context(context, self.context_features, batch, like=self._anchor)
        if context is not None and self.embedding is not None:
            context = self.embedding(context)
        return context

    def _draw(
        self, n: int, context: Tensor | None, temperature: float
    ) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
        r"""Base draws: ``n`` of them, or ``n`` for each of the ``M`` context rows as
        ``(M * n, ...)`` with the (checked, embedded) context repeated to match; returns the
        draws, that context and the leading shape of the samples, ``(n,)`` or ``(M, n)``."""
        check_positive_int(n, "n", minimum=0)
        if self.context_features == 0:
            if context is not None:
                raise ValueError("context: this flow is unconditional but a context was given")
            return self._base_draws(n, temperature), None, (n,)
        c = self._c(context, None)
        m = c.shape[0]
        return self._base_draws(m * n, temperature), c.repeat_interleave(n, dim=0), (m, n)

    def _base_draws(self, n: int, temperature: float) -> Tensor:
        # one draw sliced to none checks the temperature and gives the dtype and shape of n = 0
        return self.base.rsample(n, temperature) if n else self.base.rsample(1, temperature)[:0]

    def _inverse_tempered(
        self, z: Tensor, c: Tensor | None, temperature: float
    ) -> tuple[Tensor, Tensor]:
        r"""The inverse of base draws taken at ``temperature``: a huge temperature scales them
        beyond what the transforms can invert, which is the temperature's fault, said so."""
        if temperature == 1.0:
            return self.layers.inverse(z, c)
        try:
            x, ladj = self.layers.inverse(z, c)
        except RuntimeError as err:  # e.g. an ODE solve that fails on huge draws
            raise ValueError(
                f"temperature: sampling at temperature {temperature:g} failed ({err}); use a "
                "temperature nearer 1"
            ) from err
        if not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"temperature: the samples drawn at temperature {temperature:g} are not finite "
                "(the scaled base draws overflow the transforms); use a temperature nearer 1"
            )
        return x, ladj

    # -- compiled density pass --------------------------------------------------------------
    def compile(self, **options: Any) -> Flow:  # type: ignore[override]
        r"""Run the layer stack's density pass (data to noise: :meth:`transform`,
        :meth:`log_prob`, :meth:`loss`, training) through :func:`torch.compile`; returns the
        flow itself.

        Only ``layers(x, context)`` is compiled: the checks of ``x`` and the context before it,
        and the base density (with its finiteness check of ``z``) after it, run eagerly, so
        bad input raises the same ``ValueError`` as without compilation and the compiled graph
        holds no data-dependent branch. Sampling (the inverse) stays eager. ``options`` go to
        :func:`torch.compile` (``backend``, ``mode``, ``dynamic``, ``fullgraph``). The first
        call of each new input shape, dtype or mode pays the compilation (``dynamic=False``
        keeps static-shape kernels, compiled once per batch size: the choice for a fixed batch
        size); ``state_dict`` is unchanged and a copy of the flow compiles its own graph on
        first use.

        On CPU (inductor needs a C compiler) compiling MAF takes seconds to tens of seconds
        and pays only for long runs; ``BENCHMARKS.md`` ("Compiled MAF") gives the time per
        step with and without it and the number of steps at which compilation pays for itself.

        Example:
            >>> import torch, tractable as tr
            >>> flow = tr.flows.MAF(2, transforms=1, hidden=(8,))
            >>> x = torch.randn(4, 2)
            >>> eager = flow.log_prob(x)
            >>> flow = flow.compile(backend="eager")  # "inductor" (the default) generates code
            >>> bool(torch.allclose(flow.log_prob(x), eager))
            True
        """
        self._compiled = torch.compile(_forward_layers, **options)
        return self

    def uncompile(self) -> Flow:
        r"""Return to the eager density pass (undo :meth:`compile`); returns the flow."""
        self._compiled = None
        return self

    @property
    def is_compiled(self) -> bool:
        r"""Whether the density pass runs through :func:`torch.compile` (see :meth:`compile`)."""
        return self._compiled is not None

    # -- the public surface -----------------------------------------------------------------
    def transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Map data ``(N, *event_shape)`` to noise: returns ``z`` (the base's shape) and the
        log-abs-det-Jacobian ``ladj`` of shape (N,)."""
        x = self._x(x)
        c = self._c(context, x.shape[0])
        if self._compiled is not None:
            return self._compiled(self.layers, x, c)
        return self.layers(x, c)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Map noise (the base's shape) to data ``(N, *event_shape)``."""
        z = check_event(z, "z", self.base.event_shape, like=self._anchor)
        x, _ = self.layers.inverse(z, self._c(context, z.shape[0]))
        return x

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The exact log-density of each row of ``x``: ``(N, *event_shape) -> (N,)``; an empty
        batch ``(0, *event_shape)`` gives an empty ``(0,)``, as in :mod:`torch.distributions`."""
        x = self._x(x, allow_empty=True)
        if x.shape[0] == 0:
            self._c(context, 0)
            return x.new_zeros(0)
        z, ladj = self.transform(x, context)
        return self.base.log_prob(z) + ladj

    def loss(self, batch: Tensor | Sequence[Tensor]) -> Tensor:
        r"""Mean negative log-likelihood of a batch ``x`` or ``(x, context)``: the training loss.

        The context of an unconditional flow is ignored (a labelled data set can train one);
        for a conditional flow, integer class labels of shape ``(N,)`` are one-hot encoded."""
        if isinstance(batch, Tensor):
            return -self.log_prob(batch).mean()
        if len(batch) == 1 or not self.context_features:
            return -self.log_prob(batch[0]).mean()
        x, c = batch[0], batch[1]
        if isinstance(c, Tensor) and c.dim() == 1 and not c.is_floating_point():
            c = nn.functional.one_hot(c.long(), self.context_features)
        return -self.log_prob(x, c).mean()

    def estimate(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
        batch_size: int | None = None,
    ) -> Estimate:
        r"""The exact log-likelihood of each row of ``x`` as an
        :class:`~tractable.estimators.Estimate` of kind ``"exact"``: :meth:`log_prob`, computed
        under :func:`torch.no_grad` in chunks of ``batch_size`` rows (all at once by default).

        ``method`` may only be ``"exact"`` (the default) and ``k`` only ``None``: the density
        needs no samples. Evaluate in evaluation mode (``model.eval()``): in training mode
        batch normalisation uses the chunk's statistics and a CNF Hutchinson's trace estimate.

        Example:
            >>> import torch, tractable as tr
            >>> flow = tr.flows.MAF(2, transforms=1, hidden=(8,)).eval()
            >>> x = torch.randn(5, 2)
            >>> est = flow.estimate(x, batch_size=2)
            >>> est.kind, bool(torch.allclose(est.values, flow.log_prob(x)))
            ('exact', True)
        """
        check_method(self, method)
        if k is not None:
            raise ValueError(f"k: the exact log-density draws no samples; expected None, got {k!r}")
        if self._x(x, allow_empty=True).shape[0] == 0:
            self._c(context, 0)  # an empty batch: checked here, as log_prob is never called
        return exact(self, x, batch_size, context=context)

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""Draw ``n`` samples: ``(n, *event_shape)``, or ``(M, n, *event_shape)`` given an
        ``(M, C)`` context. ``temperature`` scales the base distribution's spread. ``n = 0``
        gives an empty tensor of that shape."""
        with torch.no_grad():
            return self.rsample(n, context, temperature)

    def rsample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""Like :meth:`sample`, but differentiable with respect to the flow's parameters."""
        z, c, lead = self._draw(n, context, temperature)
        if z.shape[0] == 0:
            return z.new_zeros((*lead, *self.event_shape))
        x, _ = self._inverse_tempered(z, c, temperature)
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
        if z.shape[0] == 0:
            return z.new_zeros((*lead, *self.event_shape)), z.new_zeros(lead)
        x, ladj_inv = self._inverse_tempered(z, c, temperature)
        log_p = self.base.log_prob(z) - ladj_inv
        return x.reshape(*lead, *self.event_shape), log_p.reshape(lead)

    def extra_log(self) -> dict[str, float]:
        r"""Numbers for the trainer's log beside the loss: none for a discrete flow."""
        return {}

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, context={self.context_features}"


def _forward_layers(layers: Transform, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
    # compiled by Flow.compile; the layers are an argument so that a copy of the flow (which
    # shares the compiled function) is guarded on, and compiled for, its own modules
    return layers(x, context)


__all__ = ["Flow", "context_width"]

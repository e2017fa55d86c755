r"""Variational dequantization (Ho et al. 2019, Flow++).

Uniform dequantization fits a density to :math:`(x + v)/L` with :math:`v \sim \mathcal{U}[0,
1)^D`; variational dequantization learns the noise distribution instead, a conditional flow
:math:`q(v \mid x)` on :math:`(0, 1)^D`, trained jointly with the model on the bound

.. math:: \log P(x) \ge \mathbb{E}_{v \sim q(\cdot \mid x)}\left[
          \log p_U\!\left(\tfrac{x + v}{L}\right) - D \log L - \log q(v \mid x)\right],

where :math:`p_U` is the model's density on the :math:`[0, 1]`-scaled data: Jensen's
inequality applied to :math:`P(x) = \int_{[0,1)^D} p_U((x+v)/L) L^{-D} \, dv`. With :math:`q`
uniform the bound is the uniform-dequantization bound.

Here :math:`v = \sigma(g(\epsilon; x))` with :math:`\epsilon` standard logistic, :math:`g` a
stack of coupling layers conditioned on :math:`x` (zero-initialised, so :math:`g` starts as the
identity) and :math:`\sigma` the sigmoid. Since :math:`\sigma(\epsilon)` is uniform, :math:`q`
starts exactly at uniform dequantization, and

.. math:: \log q(v \mid x) = \log p_{\text{logistic}}(\epsilon)
          - \log|\det J_g(\epsilon)| - \sum_i \log \sigma'(y_i), \qquad y = g(\epsilon; x).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_event, check_positive_int, validation_enabled
from ..transforms import Affine, Compose, Coupling, RQSpline, Transform
from ..transforms.base import sum_except_batch
from ..transforms.image import ImageCoupling
from .preprocess import Preprocessor

__all__ = ["VariationalDequantizer"]


def _log_sigmoid_derivative(y: Tensor) -> Tensor:
    r""":math:`\log \sigma'(y) = -\operatorname{softplus}(-y) - \operatorname{softplus}(y)`,
    which is also the standard logistic log-density; summed per example, ``(N,)``."""
    return sum_except_batch(-F.softplus(-y) - F.softplus(y))


class VariationalDequantizer(nn.Module):
    r"""A learned dequantization distribution :math:`q(v \mid x)` on :math:`(0, 1)^D` for
    discrete data with ``levels`` values per dimension (Ho et al. 2019).

    Args:
        shape: the event shape, ``(D,)`` with :math:`D \ge 2` (MLP couplings with alternating
            halves) or ``(C, H, W)`` (convolutional couplings with alternating checkerboard
            masks, conditioned on the image as a feature map).
        levels: the number of discrete values :math:`L` per dimension.
        transforms: the number of coupling layers.
        hidden: the width of the coupling networks.
        coupling: ``"affine"`` or ``"spline"`` (rational-quadratic, 8 bins on :math:`[-5, 5]`).

    The conditioner sees :math:`x` rescaled to :math:`[-1, 1]`.

    Example:
        >>> import torch
        >>> from tractable.data.dequantization import VariationalDequantizer
        >>> q = VariationalDequantizer((2,), levels=4, hidden=8)
        >>> x = torch.tensor([[0.0, 3.0], [1.0, 2.0]])
        >>> v, log_q = q(x)
        >>> bool(((v > 0) & (v < 1)).all()), log_q.abs().max().item() < 1e-12  # uniform at first
        (True, True)
        >>> uniform_box = lambda u: torch.zeros(u.shape[0])  # p_U = 1 on [0, 1]^2
        >>> [round(b, 4) for b in q.lower_bound(uniform_box, x).tolist()]  # -2 log 4
        [-2.7726, -2.7726]
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        levels: int,
        transforms: int = 4,
        hidden: int = 64,
        coupling: str = "affine",
        blocks: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, Sequence) or len(shape) not in (1, 3):
            raise ValueError(f"shape: expected (D,) or (C, H, W), got {shape!r}")
        self.shape = tuple(check_positive_int(s, "shape") for s in shape)
        check_positive_int(levels, "levels", minimum=2)
        check_positive_int(transforms, "transforms")
        check_positive_int(hidden, "hidden")
        if coupling not in ("affine", "spline"):
            raise ValueError(f"coupling: expected 'affine' or 'spline', got {coupling!r}")
        self.levels = levels

        def elementwise() -> Affine | RQSpline:
            return Affine() if coupling == "affine" else RQSpline()

        layers: list[Transform] = []
        if len(self.shape) == 1:
            d = self.shape[0]
            if d < 2:
                raise ValueError(f"shape: variational dequantization needs D >= 2, got {shape!r}")
            for i in range(transforms):
                mask = "half" if i % 2 == 0 else "half-flip"
                layers.append(Coupling(d, elementwise(), mask, d, (hidden, hidden)))
        else:
            c = self.shape[0]
            for i in range(transforms):
                mask = "checkerboard" if i % 2 == 0 else "checkerboard-flip"
                layers.append(ImageCoupling(c, elementwise(), mask, c, hidden, blocks))
        self.flow = Compose(layers)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def _x(self, x: Tensor) -> Tensor:
        x = check_event(x, "x", self.shape, like=self._anchor)
        if validation_enabled():
            bad = (x < 0) | (x > self.levels - 1) | (x != torch.round(x))
            if bool(bad.any()):
                raise ValueError(
                    f"x: expected raw integer values in 0..{self.levels - 1}, found "
                    f"{int(bad.sum())} other values (e.g. {float(x[bad][0])!r})"
                )
        return x

    def _context(self, x: Tensor) -> Tensor:
        return 2.0 * x / (self.levels - 1) - 1.0

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        r"""Draw noise :math:`v \sim q(\cdot \mid x)` for raw data ``x`` ``(N, *shape)``
        (integers :math:`0 \dots L-1`). Returns ``v`` (same shape, in :math:`(0, 1)`) and
        :math:`\log q(v \mid x)` ``(N,)``; differentiable with respect to the parameters."""
        x = self._x(x)
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        tiny = torch.finfo(x.dtype).eps
        u = u.clamp(tiny, 1.0 - tiny)
        eps = torch.log(u) - torch.log1p(-u)  # standard logistic
        y, ladj = self.flow(eps, self._context(x))
        log_q = _log_sigmoid_derivative(eps) - ladj - _log_sigmoid_derivative(y)
        return torch.sigmoid(y), log_q

    def log_prob(self, v: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log q(v \mid x)` of given noise ``v`` in :math:`(0, 1)`, ``(N,)``."""
        x = self._x(x)
        v = check_event(v, "v", self.shape, like=self._anchor)
        y = torch.log(v) - torch.log1p(-v)
        eps, ladj_inv = self.flow.inverse(y, self._context(x))
        return _log_sigmoid_derivative(eps) + ladj_inv - _log_sigmoid_derivative(y)

    def lower_bound(
        self,
        log_prob: Callable[[Tensor], Tensor],
        x: Tensor,
        preprocess: Preprocessor | None = None,
        samples: int = 1,
        importance_weighted: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""A lower bound on the discrete log-probability :math:`\log P(x)` in nats, ``(N,)``.

        Each draw gives :math:`\log w = \log p_U((x + v)/L) - D \log L - \log q(v \mid x)`;
        the result is the mean of ``samples`` draws (an unbiased estimate of the bound), or
        with ``importance_weighted=True`` their log-mean-exp, a tighter bound that tends to
        :math:`\log P(x)` as ``samples`` grows (Burda et al. 2016).

        Args:
            log_prob: the model's log-density. Without ``preprocess`` it is called on the
                :math:`[0, 1]`-scaled data :math:`u = (x + v)/L`; with a discrete
                :class:`~tractable.data.Preprocessor` on its output :math:`y` (e.g. after the
                logit transform), whose log-Jacobian is added.
            x: raw data ``(N, *shape)``, integers :math:`0 \dots L-1`.

        The training loss is ``-lower_bound(model.log_prob, x, preprocess).mean()``, optimised
        over the model and this dequantizer together.
        """
        check_positive_int(samples, "samples")
        if preprocess is not None:
            if not isinstance(preprocess, Preprocessor):
                raise TypeError(
                    f"preprocess: expected a Preprocessor, got {type(preprocess).__name__}"
                )
            if preprocess.kind != "discrete" or preprocess.levels != self.levels:
                raise ValueError(
                    f"preprocess: expected discrete data with {self.levels} levels, got "
                    f"{preprocess!r}"
                )
            if preprocess.shape != self.shape:
                raise ValueError(f"preprocess: expected shape {self.shape}, got {preprocess.shape}")
        x = self._x(x)
        offset = self.dims * math.log(self.levels)
        log_w = []
        for _ in range(samples):
            v, log_q = self(x, generator)
            if preprocess is None:
                log_p = log_prob((x + v) / self.levels)
            else:
                y, ladj = preprocess.forward(x, v)
                log_p = log_prob(y) + ladj
            if log_p.shape != (x.shape[0],):
                raise ValueError(
                    f"log_prob: expected a result of shape ({x.shape[0]},), got "
                    f"{tuple(log_p.shape)}"
                )
            log_w.append(log_p - offset - log_q)
        w = torch.stack(log_w)  # (samples, N)
        if importance_weighted:
            return torch.logsumexp(w, dim=0) - math.log(samples)
        return w.mean(dim=0)

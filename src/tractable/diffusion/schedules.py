r"""Noise schedules of the variance-preserving diffusion, in continuous time :math:`s \in [0, 1]`.

The forward process :math:`x_s = \sqrt{\bar\alpha(s)}\, x_0 + \sqrt{1 - \bar\alpha(s)}\,
\varepsilon` is given by :math:`\log \bar\alpha(s)` and its rate :math:`\beta(s) = -\frac{d}{ds}
\log \bar\alpha(s)` (the VP SDE :math:`dx = -\tfrac12 \beta(s) x\, ds + \sqrt{\beta(s)}\, dW`,
Song et al. 2021, "Score-Based Generative Modeling through SDEs"). A chain of :math:`T` steps
takes :math:`\bar\alpha_t = \bar\alpha(t / T)` and :math:`\beta_t = 1 - \bar\alpha_t /
\bar\alpha_{t-1}`, so chains of every length discretise the same process.

* ``"linear"``: :math:`\beta(s) = \beta_{\min} + s(\beta_{\max} - \beta_{\min})` with
  :math:`\beta_{\min} = 0.1`, :math:`\beta_{\max} = 20`, the continuous form of Ho et al.
  2020's :math:`\beta_t` from :math:`10^{-4}` to :math:`0.02` over 1000 steps (Song et al.
  2021); at :math:`T = 1000` the discrete :math:`\beta_t` run from :math:`1.0 \cdot 10^{-4}`
  to :math:`0.0198`.
* ``"cosine"``: :math:`\bar\alpha(s) = \cos^2(a + s(b - a)) / \cos^2 a` (Nichol and Dhariwal
  2021, "Improved DDPM", offset :math:`0.008`: :math:`a = \frac{0.008}{1.008}\frac{\pi}{2}`),
  ending where :math:`\bar\alpha(1) = e^{-10}` (the linear schedule's :math:`\bar\alpha(1)
  \approx 4.3 \cdot 10^{-5}`) instead of at 0 with :math:`\beta_t` clipped at 0.999 as in the
  paper, so that the probability-flow ODE stays finite at :math:`s = 1`.

Example:
    >>> import torch
    >>> s = torch.tensor([0.0, 1.0])
    >>> log_alpha_bar("linear", s).exp()
    tensor([1.0000e+00, 4.3186e-05])
    >>> round(float(log_alpha_bar("cosine", s)[1]), 3)
    -10.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SCHEDULES = ("linear", "cosine")
BETA_MIN, BETA_MAX = 0.1, 20.0
_A = 0.008 / 1.008 * math.pi / 2
_B = math.acos(math.exp(-5.0) * math.cos(_A))


def _check(kind: str) -> None:
    if kind not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {kind!r}")


def log_alpha_bar(kind: str, s: Tensor) -> Tensor:
    r""":math:`\log \bar\alpha(s)` of schedule ``kind`` at times ``s`` (any shape)."""
    _check(kind)
    if kind == "linear":
        return -(BETA_MIN * s + 0.5 * (BETA_MAX - BETA_MIN) * s**2)
    return 2.0 * torch.log(torch.cos(_A + s * (_B - _A))) - 2.0 * math.log(math.cos(_A))


def beta(kind: str, s: Tensor) -> Tensor:
    r"""The rate :math:`\beta(s) = -\frac{d}{ds} \log\bar\alpha(s)` of schedule ``kind``."""
    _check(kind)
    if kind == "linear":
        return BETA_MIN + s * (BETA_MAX - BETA_MIN)
    return 2.0 * (_B - _A) * torch.tan(_A + s * (_B - _A))


def discrete(kind: str, steps: int, dtype: torch.dtype = torch.float64) -> Tensor:
    r"""``(steps + 1,)``: :math:`\bar\alpha_t = \bar\alpha(t / T)` for :math:`t = 0, \dots, T`
    (:math:`\bar\alpha_0 = 1`).

    Example:
        >>> b = 1 - discrete("linear", 1000)[1:] / discrete("linear", 1000)[:-1]
        >>> round(float(b[0]), 6), round(float(b[-1]), 4)
        (0.00011, 0.0198)
    """
    s = torch.arange(steps + 1, dtype=torch.float64) / steps
    return log_alpha_bar(kind, s).exp().to(dtype)


__all__ = ["BETA_MAX", "BETA_MIN", "SCHEDULES", "beta", "discrete", "log_alpha_bar"]

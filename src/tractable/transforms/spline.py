r"""Monotonic rational-quadratic splines with linear tails (Durkan et al. 2019, "Neural Spline
Flows"; Gregory and Delbourgo 1982).

On :math:`[-B, B]` the map is a monotonic rational-quadratic spline with :math:`K` bins; outside
it is the identity, and the derivatives at :math:`\pm B` are fixed to 1 so the map is
continuously differentiable. In bin :math:`k`, with :math:`\xi = (x - x_k)/w_k`,
:math:`s_k = h_k / w_k` and boundary derivatives :math:`d_k, d_{k+1}`,

.. math::
    y = y_k + \frac{h_k \left[s_k \xi^2 + d_k \xi (1 - \xi)\right]}
                   {s_k + (d_{k+1} + d_k - 2 s_k)\,\xi (1 - \xi)},
    \qquad
    \frac{dy}{dx} = \frac{s_k^2 \left[d_{k+1} \xi^2 + 2 s_k \xi (1 - \xi) + d_k (1 - \xi)^2\right]}
                         {\left[s_k + (d_{k+1} + d_k - 2 s_k)\,\xi (1 - \xi)\right]^2}.

The inverse solves the quadratic in :math:`\xi` with the cancellation-free root
:math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`.

Parameters come unconstrained, ``3K - 1`` per dimension: ``K`` widths, ``K`` heights and
``K - 1`` interior derivatives. All-zero parameters give the identity map, so a conditioner with
a zero-initialised last layer starts the flow at the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(_DERIV_SHIFT) + MIN_DERIVATIVE == 1: zero parameters give unit derivatives.
_DERIV_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def spline_params(bins: int) -> int:
    r"""Number of unconstrained parameters per dimension for ``bins`` bins: :math:`3K - 1`."""
    return 3 * bins - 1


def _knots(raw: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    r"""Bin sizes and knot positions on :math:`[-B, B]` from unconstrained values ``(..., K)``."""
    K = raw.shape[-1]
    sizes = minimum + (1 - minimum * K) * torch.softmax(raw, dim=-1)
    knots = torch.cumsum(sizes, dim=-1)
    knots = F.pad(knots, (1, 0), value=0.0)
    knots = 2 * bound * knots - bound
    # pin the ends exactly, so that rounding never leaves a gap at the edges
    knots = torch.cat(
        [
            torch.full_like(knots[..., :1], -bound),
            knots[..., 1:-1],
            torch.full_like(knots[..., :1], bound),
        ],
        dim=-1,
    )
    return knots[..., 1:] - knots[..., :-1], knots


def rational_quadratic_spline(
    x: Tensor, params: Tensor, bound: float = 5.0, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Apply the spline elementwise.

    Args:
        x: inputs ``(...)``.
        params: unconstrained parameters ``(..., 3K - 1)``, matching ``x`` in the leading dims.
        bound: the half-width :math:`B` of the spline's interval.
        inverse: apply the inverse map instead.

    Returns:
        the outputs ``(...)`` and the elementwise log-derivative ``(...)`` of the map applied.

    Example:
        >>> import torch
        >>> y, logd = rational_quadratic_spline(torch.tensor([0.3, 7.0]), torch.zeros(2, 23))
        >>> [round(v, 6) for v in y.tolist()], logd.abs().max().item() < 1e-6
        ([0.3, 7.0], True)
    """
    K = (params.shape[-1] + 1) // 3
    if params.shape[-1] != 3 * K - 1:
        raise ValueError(f"params: expected a last dimension of 3K - 1, got {params.shape[-1]}")
    raw_w, raw_h, raw_d = params[..., :K], params[..., K : 2 * K], params[..., 2 * K :]
    widths, xs = _knots(raw_w, bound, MIN_BIN_WIDTH)
    heights, ys = _knots(raw_h, bound, MIN_BIN_HEIGHT)
    d = MIN_DERIVATIVE + F.softplus(raw_d + _DERIV_SHIFT)
    d = F.pad(d, (1, 1), value=1.0)  # unit derivatives at the edges match the linear tails

    inside = (x > -bound) & (x < bound)
    # Clamp before the spline maths, so the discarded branch of `where` has finite gradients.
    xc = x.clamp(-bound, bound)
    knots = ys if inverse else xs
    k = torch.searchsorted(knots[..., 1:-1].contiguous(), xc.unsqueeze(-1)).clamp(0, K - 1)

    def pick(t: Tensor) -> Tensor:
        return t.gather(-1, k).squeeze(-1)

    x_k, w_k, y_k, h_k = pick(xs[..., :-1]), pick(widths), pick(ys[..., :-1]), pick(heights)
    d_k, d_k1 = pick(d[..., :-1]), pick(d[..., 1:])
    s_k = h_k / w_k
    c_k = d_k1 + d_k - 2 * s_k

    if not inverse:
        xi = ((xc - x_k) / w_k).clamp(0, 1)
        t = xi * (1 - xi)
        denom = s_k + c_k * t
        y = y_k + h_k * (s_k * xi.pow(2) + d_k * t) / denom
        num = s_k.pow(2) * (d_k1 * xi.pow(2) + 2 * s_k * t + d_k * (1 - xi).pow(2))
        logd = torch.log(num) - 2 * torch.log(denom)
    else:
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * c_k
        b = h_k * d_k - dy * c_k
        c = -s_k * dy
        disc = (b.pow(2) - 4 * a * c).clamp_min(0)
        xi = (2 * c / (-b - torch.sqrt(disc))).clamp(0, 1)
        y = x_k + xi * w_k
        t = xi * (1 - xi)
        denom = s_k + c_k * t
        num = s_k.pow(2) * (d_k1 * xi.pow(2) + 2 * s_k * t + d_k * (1 - xi).pow(2))
        logd = -(torch.log(num) - 2 * torch.log(denom))
    y = torch.where(inside, y, x)
    logd = torch.where(inside, logd, torch.zeros_like(logd))
    return y, logd

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


def _knots(raw: Tensor, bound: float, minimum: Tensor) -> list[Tensor]:
    r"""The :math:`K - 1` interior knots on :math:`[-B, B]` from unconstrained bin sizes
    ``(2, K, ...)`` (widths and heights; bins on the second dimension), each ``(2, ...)``.

    The softmax and the cumulative sum run across the bins as a few elementwise operations on
    whole slabs of elements: ATen's softmax and cumsum along a short last dimension are several
    times slower on CPU than this."""
    K = raw.shape[1]
    e = torch.exp(raw - raw.amax(dim=1, keepdim=True))
    # 2B (m + (1 - mK) softmax): one pass over the bins, with the scale formed per element
    scale = (2 * bound) * (1 - minimum * K) / e.sum(dim=1, keepdim=True)
    sizes = torch.addcmul((2 * bound) * minimum, e, scale)
    knots = [sizes[:, 0] - bound]
    for j in range(1, K - 1):
        knots.append(knots[-1] + sizes[:, j])
    return knots


def rational_quadratic_spline(
    x: Tensor, params: Tensor, bound: float = 5.0, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Apply the spline elementwise.

    Args:
        x: inputs ``(...)``.
        params: unconstrained parameters ``(..., 3K - 1)``, matching ``x`` in the leading dims.
            Fastest when the parameters are the slowest-varying dimension in memory, e.g. the
            transposed view of an ``(N, 3K - 1, D)`` tensor, as the conditioners give.
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
    # parameters first: (3K - 1, ...), each a slab of elements
    q = params.movedim(-1, 0)
    view = (-1, *([1] * x.dim()))
    minimum = q.new_tensor([MIN_BIN_WIDTH, MIN_BIN_HEIGHT]).view(-1, 1, *view[1:])
    knots = _knots(q[: 2 * K].unflatten(0, (2, K)), bound, minimum)
    d = MIN_DERIVATIVE + F.softplus(q[2 * K :] + _DERIV_SHIFT)
    # One table per element, [x-knots, y-knots, derivatives] (3K + 3, ...), read with a single
    # gather. The ends are pinned to -B and B exactly, so rounding never leaves a gap at the
    # edges, and the derivatives there are 1, matching the linear tails.
    lo, hi, one = (x.new_full((1, *x.shape), v).expand(1, *x.shape) for v in (-bound, bound, 1))
    kx = [t[0].unsqueeze(0) for t in knots]
    ky = [t[1].unsqueeze(0) for t in knots]
    table = torch.cat([lo, *kx, hi, lo, *ky, hi, one, d, one], dim=0)

    inside = (x > -bound) & (x < bound)
    # Clamp before the spline maths, so the discarded branch of `where` has finite gradients.
    xc = x.clamp(-bound, bound)
    # the bin: how many interior knots lie below the point (torch.searchsorted's left side)
    first = K + 2 if inverse else 1
    k = (table[first : first + K - 1] < xc).sum(0, keepdim=True)
    offsets = torch.tensor([0, 1, K + 1, K + 2, 2 * K + 2, 2 * K + 3], device=x.device)
    x_k, x_k1, y_k, y_k1, d_k, d_k1 = table.gather(0, k + offsets.view(view)).unbind(0)
    w_k, h_k = x_k1 - x_k, y_k1 - y_k
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
    logd = torch.where(inside, logd, 0.0)
    return y, logd

r"""Exact log-likelihoods: a model with a tractable density, or a finite latent summed out.

.. math:: \log p(x) = \log \sum_{z} p(x, z)

Both return an :class:`~tractable.estimators.Estimate` of kind ``"exact"``; its ``se`` only
reflects the finite number of examples.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_positive_int
from .base import Estimate
from .checks import (
    check_callable,
    check_examples,
    check_output,
    latent_states,
    repeat_rows,
    row_limit,
)
from .sampling import LogJoint


def exact(
    model: object,
    x: Tensor,
    batch_size: int | None = None,
    context: Tensor | None = None,
) -> Estimate:
    r"""The exact log-likelihood of a model with a tractable density (a flow, say).

    ``model`` is an object with ``log_prob(x) -> (N,)`` (``log_prob(x, context)`` when a
    ``context`` ``(N, ...)`` is given) or such a callable itself. It is called under
    :func:`torch.no_grad` on chunks of ``batch_size`` rows (all at once by default), the context
    split along with ``x``. The result is exact; its ``se`` only reflects the finite number of
    examples.

    Example:
        >>> import torch
        >>> from tractable.estimators import exact
        >>> normal = torch.distributions.Normal(0.0, 1.0)
        >>> est = exact(lambda x: normal.log_prob(x).sum(1), torch.zeros(3, 2))
        >>> round(est.mean, 4), est.kind
        (-1.8379, 'exact')
    """
    fn = getattr(model, "log_prob", model)
    check_callable(fn, "model")
    x = check_examples(x)
    n = x.shape[0]
    if context is not None and (not isinstance(context, Tensor) or context.shape[:1] != (n,)):
        shape = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
        raise ValueError(f"context: expected a tensor with {n} rows to match x, got {shape}")
    b = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    if n == 0:
        return Estimate.from_values("exact", "exact", torch.zeros(0, dtype=torch.float64))
    values = []
    with torch.no_grad():
        for start in range(0, n, b):
            xb = x[start : start + b]
            out = fn(xb) if context is None else fn(xb, context[start : start + b])
            values.append(check_output(out, "model.log_prob", (xb.shape[0],)))
    return Estimate.from_values("exact", "exact", torch.cat(values))


def enumerate_latent(
    log_joint: LogJoint, x: Tensor, support: Tensor | int, max_rows: int | None = None
) -> Estimate:
    r"""The exact :math:`\log p(x) = \log \sum_{z} p(x, z)` for a finite latent space.

    ``support`` is an int :math:`K` (states ``0..K-1``, as a ``long`` tensor) or a tensor
    ``(S, *z_shape)`` listing every state.

    Example:
        >>> import math, torch
        >>> from tractable.estimators import enumerate_latent
        >>> log_joint = lambda x, z: torch.full(x.shape[:1], math.log(0.25))
        >>> abs(enumerate_latent(log_joint, torch.zeros(2, 1), 4).mean) < 1e-6
        True
    """
    check_callable(log_joint, "log_joint")
    x = check_examples(x)
    states = latent_states(support, x)
    rows = row_limit(x, max_rows)
    s_count, n = states.shape[0], x.shape[0]
    if n == 0:
        return Estimate.from_values("enumerate", "exact", torch.zeros(0, dtype=torch.float64))
    b_size = min(n, rows)
    out = []
    with torch.no_grad():
        for start in range(0, n, b_size):
            xb = x[start : start + b_size]
            b = xb.shape[0]
            chunk = max(1, rows // b)
            acc = None
            for s0 in range(0, s_count, chunk):
                zs = states[s0 : s0 + chunk]
                c = zs.shape[0]
                zf = zs.unsqueeze(1).expand(c, b, *zs.shape[1:]).reshape(c * b, *zs.shape[1:])
                lj = check_output(log_joint(repeat_rows(xb, c), zf), "log_joint", (c * b,))
                if bool((lj == math.inf).any()):
                    raise ValueError("log_joint: returned +inf")
                lse = torch.logsumexp(lj.reshape(c, b).double(), 0)
                acc = lse if acc is None else torch.logaddexp(acc, lse)
            out.append(acc)
    return Estimate.from_values("enumerate", "exact", torch.cat(out))


__all__ = ["exact", "enumerate_latent"]

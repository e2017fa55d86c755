r"""The normaliser of an unnormalised density, estimated by importance sampling with a flow.

With draws :math:`x_i \sim q` from a flow and log-weights
:math:`\log w_i = \log\tilde p(x_i) - \log q(x_i)`, :math:`i = 1..n`:

.. math::
    \widehat{\mathrm{ELBO}} = \frac1n \sum_i \log w_i, \qquad
    \widehat{\log Z} = \log \frac1n \sum_i w_i, \qquad
    \mathrm{ESS} = \frac{(\sum_i w_i)^2}{\sum_i w_i^2}.

The ELBO :math:`\mathbb{E}_q[\log\tilde p - \log q] = \log Z - \mathrm{KL}(q\,\|\,p)` is a lower
bound on :math:`\log Z`; its standard error is :math:`s/\sqrt n`. :math:`\hat Z` is unbiased for
:math:`Z`, so :math:`\widehat{\log Z}` is consistent (and a stochastic lower bound in
expectation); its standard error is the delta-method one,
:math:`\sqrt{(n/\mathrm{ESS} - 1)/(n - 1)}` (:math:`\operatorname{Var}\hat Z / \hat Z^2`), and
Kish's effective sample size :math:`\mathrm{ESS} \in [1, n]` says how far :math:`q` is from
:math:`p` (:math:`n` when :math:`q = p`). A :math:`q` narrower than :math:`p` can miss mass that
no draw visits: the estimate is then low, with a standard error that does not show it
(Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and Inference",
section 2.3.3; Owen 2013, "Monte Carlo theory, methods and examples", chapter 9).

The two numbers come from the same draws, so :math:`\widehat{\mathrm{ELBO}} \le
\widehat{\log Z}` always (Jensen's inequality on the sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checks import NonFiniteError, check_positive_int
from ..estimators import log_mean_exp

LogDensity = Callable[[Tensor], Tensor]


def check_flow(flow: object) -> nn.Module:
    r"""``flow`` after checking it is an unconditional flow that draws reparameterised samples
    with their log-density (``sample_and_log_prob``) and has parameters to fit."""
    if not isinstance(flow, nn.Module) or not callable(getattr(flow, "sample_and_log_prob", None)):
        raise TypeError(
            "flow: expected a tractable Flow (an nn.Module with sample_and_log_prob), got "
            f"{type(flow).__name__}"
        )
    if getattr(flow, "context_features", 0):
        got = flow.context_features
        raise ValueError(f"flow: expected an unconditional flow (context=0), got context={got}")
    base = getattr(flow, "base", None)
    components = getattr(base, "logits", None)
    if not getattr(base, "has_rsample", True) and (components is None or components.numel() > 1):
        raise ValueError(
            f"flow: its base distribution {type(base).__name__} picks a component without a "
            "pathwise gradient, so the reverse-KL gradient would be biased; use a flow with a "
            "reparameterised base (a standard normal, or a single Gaussian)"
        )
    return flow


def check_log_density(log_density: object) -> LogDensity:
    if not callable(log_density):
        raise TypeError(
            "log_density: expected a callable x (N, D) -> (N,) log-densities, got "
            f"{type(log_density).__name__}"
        )
    return log_density


def density_values(log_density: LogDensity, x: Tensor) -> Tensor:
    r""":math:`\log\tilde p` of the rows of ``x``, checked to be a tensor ``(N,)`` (values may be
    non-finite: the caller decides)."""
    value = log_density(x)
    n = x.shape[0]
    if not isinstance(value, Tensor):
        raise TypeError(
            f"log_density: expected to return a torch.Tensor of shape ({n},), got "
            f"{type(value).__name__}"
        )
    if tuple(value.shape) != (n,):
        raise ValueError(
            f"log_density: expected to return shape ({n},) (one log-density per row of x "
            f"{tuple(x.shape)}), got {tuple(value.shape)}"
        )
    if not value.is_floating_point():
        raise TypeError(f"log_density: expected floating-point values, got {value.dtype}")
    return value


@dataclass(frozen=True)
class LogZEstimate:
    r"""What :func:`estimate_log_z` found (see the module notes).

    Attributes:
        log_z: :math:`\log \frac1n \sum_i w_i`, the importance-sampled :math:`\log Z`.
        log_z_se: its delta-method standard error (``inf`` when every weight is 0).
        ess: Kish's effective sample size of the weights, in :math:`[1, n]` (0 if all are 0).
        ess_fraction: ``ess / n``.
        elbo: :math:`\frac1n \sum_i \log w_i`, an estimate of the ELBO.
        elbo_se: its standard error :math:`s / \sqrt n` (``inf`` if a weight is 0).
        n: the number of draws.
    """

    log_z: float
    log_z_se: float
    ess: float
    ess_fraction: float
    elbo: float
    elbo_se: float
    n: int

    @classmethod
    def from_log_weights(cls, log_w: Tensor) -> LogZEstimate:
        r"""The figures of ``n >= 2`` log-weights ``(n,)`` (finite, or :math:`-\infty` where
        the target has no mass).

        Example:
            >>> est = LogZEstimate.from_log_weights(torch.full((100,), 1.5))
            >>> est.log_z, est.log_z_se, est.ess_fraction, est.elbo
            (1.5, 0.0, 1.0, 1.5)
        """
        log_w = log_w.detach().double().flatten()
        n = log_w.numel()
        if n < 2:
            raise ValueError(f"log_w: expected at least 2 log-weights, got {n}")
        if bool(torch.isnan(log_w).any()) or bool((log_w == math.inf).any()):
            raise NonFiniteError("log_w: expected values in [-inf, inf), found NaN or +inf")
        log_z = float(log_mean_exp(log_w))
        if log_z == -math.inf:
            return cls(-math.inf, math.inf, 0.0, 0.0, -math.inf, math.inf, n)
        lse1, lse2 = torch.logsumexp(log_w, 0), torch.logsumexp(2 * log_w, 0)
        ess = min(float(n), float(torch.exp(2 * lse1 - lse2)))
        log_z_se = math.sqrt(max(0.0, (n / ess - 1) / (n - 1)))
        if bool(torch.isfinite(log_w).all()):
            elbo, elbo_se = float(log_w.mean()), float(log_w.std()) / math.sqrt(n)
        else:
            elbo, elbo_se = -math.inf, math.inf
        return cls(log_z, log_z_se, ess, ess / n, elbo, elbo_se, n)

    def __str__(self) -> str:
        return (
            f"log Z {self.log_z:.4f} ± {self.log_z_se:.4f}, ELBO {self.elbo:.4f} ± "
            f"{self.elbo_se:.4f}, ESS {self.ess:.0f} of {self.n} ({100 * self.ess_fraction:.1f}%)"
        )


@torch.no_grad()
def log_weights(flow: nn.Module, log_density: LogDensity, n: int, batch_size: int) -> Tensor:
    r"""``n`` log-weights :math:`\log\tilde p(x_i) - \log q(x_i)`, :math:`x_i \sim q`, drawn
    ``batch_size`` at a time: ``(n,)`` in float64."""
    parts = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x, log_q = flow.sample_and_log_prob(b)
        log_p = density_values(log_density, x)
        if not bool(torch.isfinite(log_q).all()) or not bool(torch.isfinite(x).all()):
            raise NonFiniteError(
                "flow: its samples or their log-density are not finite; the flow is not usable "
                "as a proposal (refit it, e.g. with a smaller lr or grad_clip)"
            )
        if bool(torch.isnan(log_p).any()) or bool((log_p == math.inf).any()):
            raise NonFiniteError(
                f"log_density: returned {int(torch.isnan(log_p).sum())} NaN and "
                f"{int((log_p == math.inf).sum())} +inf values at draws of the flow"
            )
        parts.append(log_p.double() - log_q.double())
    return torch.cat(parts)


def estimate_log_z(
    flow: nn.Module,
    log_density: LogDensity,
    *,
    n: int = 10_000,
    batch_size: int = 4096,
    seed: int | None = None,
) -> LogZEstimate:
    r"""Importance-sampled :math:`\log Z` of ``log_density`` with the flow as proposal, with
    its standard error, Kish's ESS and the ELBO of the same draws (see the module notes).

    Args:
        flow: an unconditional :class:`~tractable.flows.Flow` (``sample_and_log_prob``).
        log_density: :math:`\log\tilde p`, ``(N, D) -> (N,)``; :math:`-\infty` where the
            target has no mass.
        n: draws (at least 2).
        batch_size: draws per call of the flow and of ``log_density``.
        seed: seeds the draws (the global generator is left as it was); ``None`` draws from
            the global generator.

    Example:
        >>> import tractable as tr
        >>> from tractable.variational import target
        >>> t = target("gaussian", mean=[0.0, 0.0], cov=[[1.0, 0.0], [0.0, 1.0]], offset=2.0)
        >>> est = estimate_log_z(tr.flows.MAF(2, transforms=1, hidden=(4,)), t, n=1000, seed=0)
        >>> abs(est.log_z - 2.0) < 4 * est.log_z_se + 1e-3, est.elbo <= est.log_z
        (True, True)
    """
    check_flow(flow)
    check_log_density(log_density)
    check_positive_int(n, "n", minimum=2)
    check_positive_int(batch_size, "batch_size")
    if seed is not None:
        check_positive_int(seed, "seed", minimum=0)
    was_training = flow.training
    flow.eval()
    try:
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            log_w = log_weights(flow, log_density, n, batch_size)
    finally:
        flow.train(was_training)
    return LogZEstimate.from_log_weights(log_w)


__all__ = ["LogZEstimate", "check_flow", "check_log_density", "density_values", "estimate_log_z"]

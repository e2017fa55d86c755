r"""Log-likelihood estimators for latent-variable models, as pure functions.

A latent-variable model is given by callables that work on flat batches of rows:

* ``log_joint(x, z)``: :math:`\log p(x, z)`, ``(M, *x_shape), (M, *z_shape) -> (M,)``;
* a proposal :math:`q(z \mid x)`: ``sample(x, k)`` draws ``(k, N, *z_shape)`` (``k`` draws for
  each of the ``N`` rows of ``x``) and ``log_q(z, x)`` scores flat rows, ``(M,)``; or a single
  ``sample_and_log_q(x, k)`` returning the draws ``(k, N, *z_shape)`` and their log-density
  ``(k, N)`` (cheaper for flow posteriors, whose density at arbitrary points is slow).

With :math:`w_i = p(x, z_i) / q(z_i \mid x)` and :math:`z_i \sim q`:

.. math::
    \hat p_k(x) = \frac{1}{k} \sum_{i=1}^k w_i, \qquad
    \mathbb{E}[\hat p_k(x)] = p(x), \qquad
    \mathbb{E}[\log \hat p_k(x)] = \mathcal{L}_k \le \log p(x).

:func:`importance_sampling` reports :math:`\log \hat p_k(x)` as an *estimate* of
:math:`\log p(x)` (consistent as :math:`k\to\infty`; biased low by about
:math:`\operatorname{Var}(w) / (2 k\, p(x)^2)`), with the delta-method standard error and Kish's
effective sample size. :func:`iwae` reports the same quantity read as the IWAE *bound*
:math:`\mathcal{L}_k` (Burda et al. 2016, "Importance Weighted Autoencoders"), averaged over
independent repeats. :func:`elbo` reports the evidence lower bound
:math:`\mathcal{L}_1 = \mathbb{E}_q[\log w]` (a *bound*; equal to :math:`\log p(x)` only when
:math:`q` is the true posterior).

The ``k`` samples are drawn in chunks so that no call sees more than ``max_rows`` rows: the
replicated data then holds at most ``2**24`` values by default (64 MB in float32), so
:math:`k = 5000` on 784-dimensional data runs in bounded memory whatever the number of examples.
Everything runs under :func:`torch.no_grad`; the training objectives live in
:mod:`tractable.vae`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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

LogJoint = Callable[[Tensor, Tensor], Tensor]
Sample = Callable[[Tensor, int], Tensor]
LogQ = Callable[[Tensor, Tensor], Tensor]
SampleAndLogQ = Callable[[Tensor, int], tuple[Tensor, Tensor]]
# draw(x, c) -> (z rows (c*b, ...), x rows (c*b, ...), log q (c, b))
_Draw = Callable[[Tensor, int], tuple[Tensor, Tensor, Tensor]]


# -- input checks ---------------------------------------------------------------------------------
def _check_inputs(log_joint: LogJoint, x: object, k: int) -> Tensor:
    r"""The checks every estimator starts with (in this order); returns ``x``."""
    check_callable(log_joint, "log_joint")
    x = check_examples(x)
    check_positive_int(k, "k")
    return x


def _draw_fn(
    sample: Sample | None, log_q: LogQ | None, sample_and_log_q: SampleAndLogQ | None
) -> _Draw:
    if sample_and_log_q is not None:
        if sample is not None or log_q is not None:
            raise ValueError(
                "sample_and_log_q: give either sample_and_log_q or the pair (sample, log_q), "
                "not both"
            )
        check_callable(sample_and_log_q, "sample_and_log_q")

        def draw(xb: Tensor, c: int) -> tuple[Tensor, Tensor, Tensor]:
            out = sample_and_log_q(xb, c)
            if not isinstance(out, tuple) or len(out) != 2:
                raise TypeError("sample_and_log_q: expected to return a pair (z, log_q)")
            z, lq = out
            b = xb.shape[0]
            if not isinstance(z, Tensor) or z.dim() < 2 or tuple(z.shape[:2]) != (c, b):
                got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
                raise ValueError(
                    f"sample_and_log_q: expected z of shape ({c}, {b}, ...), got {got}"
                )
            lq = check_output(lq, "sample_and_log_q", (c, b))
            return z.reshape(c * b, *z.shape[2:]), repeat_rows(xb, c), lq

        return draw

    if sample is None or log_q is None:
        raise ValueError(
            "sample: a proposal is needed, either sample(x, k) together with log_q(z, x), "
            "or sample_and_log_q(x, k)"
        )
    check_callable(sample, "sample")
    check_callable(log_q, "log_q")

    def draw(xb: Tensor, c: int) -> tuple[Tensor, Tensor, Tensor]:
        z = sample(xb, c)
        b = xb.shape[0]
        if not isinstance(z, Tensor) or z.dim() < 2 or tuple(z.shape[:2]) != (c, b):
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"sample: expected to return shape ({c}, {b}, ...), got {got}")
        zf, xr = z.reshape(c * b, *z.shape[2:]), repeat_rows(xb, c)
        lq = check_output(log_q(zf, xr), "log_q", (c * b,))
        return zf, xr, lq.reshape(c, b)

    return draw


def _log_weights(log_joint: LogJoint, draw: _Draw, xb: Tensor, c: int) -> Tensor:
    r"""``c`` log importance weights for each row of ``xb``: ``(c, b)``."""
    zf, xr, lq = draw(xb, c)
    b = xb.shape[0]
    lj = check_output(log_joint(xr, zf), "log_joint", (c * b,)).reshape(c, b)
    if bool((lq == -math.inf).any()):
        raise ValueError(
            "log_q: returned -inf for a point the proposal itself drew; the proposal's sampler "
            "and density disagree"
        )
    lw = lj - lq
    if bool(torch.isnan(lw).any()) or bool((lw == math.inf).any()):
        raise ValueError(
            "log_joint: the log importance weights log p(x, z) - log q(z | x) hold NaN or +inf "
            "(log_joint or log_q is infinite at a drawn point)"
        )
    return lw


@torch.no_grad()
def _weight_stats(
    log_joint: LogJoint, x: Tensor, draw: _Draw, k: int, max_rows: int | None
) -> dict[str, Tensor]:
    r"""One pass of ``k`` draws per example, in chunks and without gradients; float64
    per-example statistics.

    Returns ``lse1`` :math:`=\log\sum w`, ``lse2`` :math:`=\log\sum w^2`, ``mean`` and ``var``
    (unbiased, 0 for one draw) of :math:`\log w`, each ``(N,)``.
    """
    rows = row_limit(x, max_rows)
    n = x.shape[0]
    b_size = min(n, rows)
    parts: dict[str, list[Tensor]] = {"lse1": [], "lse2": [], "mean": [], "var": []}
    if n == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=x.device)
        return {key: empty for key in parts}
    for start in range(0, n, b_size):
        xb = x[start : start + b_size]
        b = xb.shape[0]
        chunk = max(1, rows // b)
        lse1 = lse2 = None
        s1 = s2 = shift = None
        neg_inf = torch.zeros(b, dtype=torch.bool, device=x.device)
        done = 0
        while done < k:
            c = min(chunk, k - done)
            lw = _log_weights(log_joint, draw, xb, c).double()
            l1, l2 = torch.logsumexp(lw, 0), torch.logsumexp(2 * lw, 0)
            finite = torch.isfinite(lw)
            neg_inf |= ~finite.all(0)
            lw0 = torch.where(finite, lw, torch.zeros_like(lw))
            if shift is None:
                # Shifting by a first-chunk mean keeps the variance free of cancellation.
                shift = lw0.sum(0) / finite.sum(0).clamp(min=1)
                lse1, lse2 = l1, l2
                s1 = torch.zeros_like(shift)
                s2 = torch.zeros_like(shift)
            else:
                lse1, lse2 = torch.logaddexp(lse1, l1), torch.logaddexp(lse2, l2)
            d = torch.where(finite, lw0 - shift, torch.zeros_like(lw0))
            s1 = s1 + d.sum(0)
            s2 = s2 + d.pow(2).sum(0)
            done += c
        mean = shift + s1 / k
        var = ((s2 - s1.pow(2) / k) / (k - 1)).clamp(min=0) if k > 1 else torch.zeros_like(mean)
        mean = torch.where(neg_inf, torch.full_like(mean, -math.inf), mean)
        var = torch.where(neg_inf, torch.full_like(var, math.inf), var)
        for key, val in (("lse1", lse1), ("lse2", lse2), ("mean", mean), ("var", var)):
            parts[key].append(val)
    return {key: torch.cat(val) for key, val in parts.items()}


def _is_estimate(
    name: str, log_joint: LogJoint, x: Tensor, draw: _Draw, k: int, max_rows: int | None
) -> Estimate:
    r"""The importance-sampling estimate from one pass of ``k`` draws: the log-mean-exp of the
    weights, Kish's ESS and the delta-method standard error."""
    stats = _weight_stats(log_joint, x, draw, k, max_rows)
    lse1, lse2 = stats["lse1"], stats["lse2"]
    value = lse1 - math.log(k)
    zero = lse1 == -math.inf
    ess = torch.exp(2 * lse1 - lse2).clamp(max=float(k))
    ess = torch.where(zero, torch.zeros_like(ess), ess)
    se = None
    if k > 1:
        # Var(log p_hat) ~ Var(w) / (k mean(w)^2) = (k / ESS - 1) / (k - 1)  (delta method).
        rel = (k / ess.clamp(min=1e-300) - 1) / (k - 1)
        se = rel.clamp(min=0).sqrt()
        se = torch.where(zero, torch.full_like(se, math.inf), se)
    return Estimate.from_values(name, "estimate", value, k, se, ess)


# -- public estimators -----------------------------------------------------------------------
def importance_sampling(
    log_joint: LogJoint,
    x: Tensor,
    sample: Sample | None = None,
    log_q: LogQ | None = None,
    *,
    k: int,
    sample_and_log_q: SampleAndLogQ | None = None,
    max_rows: int | None = None,
) -> Estimate:
    r"""Importance-sampling estimate of :math:`\log p(x)` with any proposal :math:`q(z\mid x)`.

    .. math:: \log \hat p_k(x) = \log \frac{1}{k} \sum_{i=1}^{k}
              \frac{p(x, z_i)}{q(z_i \mid x)}, \qquad z_i \sim q(z \mid x).

    An *estimate*, not a bound: :math:`\hat p_k` is unbiased for :math:`p(x)`, so its log is a
    consistent estimate of :math:`\log p(x)` which, by Jensen's inequality, is a *stochastic
    lower bound in expectation* (bias about :math:`-\operatorname{Var}(w)/(2k\,p(x)^2)`). Each
    value carries the delta-method standard error
    :math:`\sqrt{(k/\mathrm{ESS} - 1)/(k - 1)}` and Kish's effective sample size
    :math:`\mathrm{ESS} = (\sum w_i)^2 / \sum w_i^2`. A small ESS means the proposal fits the
    posterior poorly and the standard error itself is unreliable. Neither can see posterior mass
    that the proposal never visits: a proposal much narrower than the posterior can give a
    large ESS, a tiny standard error and a wrong answer. Use proposals at least as wide as the
    posterior (e.g. mixed with the prior).

    Args:
        log_joint: ``(M, *x_shape), (M, *z_shape) -> (M,)``, :math:`\log p(x, z)`.
        x: ``(N, *x_shape)`` the data.
        sample: ``(N, *x_shape), k -> (k, N, *z_shape)`` draws from :math:`q(z \mid x)`.
        log_q: ``(M, *z_shape), (M, *x_shape) -> (M,)``, :math:`\log q(z \mid x)`.
        k: samples per example.
        sample_and_log_q: instead of ``sample`` and ``log_q``, ``x, k -> (z, log_q)`` with
            shapes ``(k, N, *z_shape)`` and ``(k, N)``.
        max_rows: the most rows passed to the callables at once (default: ``2**24`` data values).

    Example:
        >>> import torch
        >>> from tractable.estimators import importance_sampling
        >>> # z ~ N(0, 1), x | z ~ N(z, 1): the prior as proposal; log p(0) = log N(0; 0, 2)
        >>> n01 = torch.distributions.Normal(0.0, 1.0)
        >>> est = importance_sampling(
        ...     lambda x, z: n01.log_prob(z).sum(1) + n01.log_prob(x - z).sum(1),
        ...     torch.zeros(1, 1),
        ...     sample=lambda x, k: torch.randn(k, x.shape[0], 1),
        ...     log_q=lambda z, x: n01.log_prob(z).sum(1),
        ...     k=5000,
        ... )
        >>> exact = torch.distributions.Normal(0.0, 2**0.5).log_prob(torch.tensor(0.0))
        >>> abs(est.mean - exact.item()) < 4 * est.per_example_se.item()
        True
    """
    x = _check_inputs(log_joint, x, k)
    draw = _draw_fn(sample, log_q, sample_and_log_q)
    return _is_estimate("importance_sampling", log_joint, x, draw, k, max_rows)


def naive_monte_carlo(
    log_joint: LogJoint,
    x: Tensor,
    support: Tensor | int,
    *,
    k: int,
    max_rows: int | None = None,
) -> Estimate:
    r"""Naive Monte Carlo over a finite latent space: a uniform proposal over its states.

    .. math:: \log \hat p_k(x) = \log S + \log \frac{1}{k} \sum_{i=1}^{k} p(x, z_i),
              \qquad z_i \sim \mathcal{U}\{s_1, \dots, s_S\}

    An *estimate* with the same properties as :func:`importance_sampling` (it is importance
    sampling with :math:`q = 1/S`); it ignores ``x`` when choosing states, so it needs
    :math:`k \gg S` when few states explain ``x``. ``support`` is an int :math:`K` (states
    ``0..K-1``) or a tensor ``(S, *z_shape)``.

    Example:
        >>> import math, torch
        >>> from tractable.estimators import naive_monte_carlo
        >>> log_joint = lambda x, z: torch.full(x.shape[:1], math.log(0.25))
        >>> abs(naive_monte_carlo(log_joint, torch.zeros(2, 1), 4, k=10).mean) < 1e-6
        True
    """
    x = _check_inputs(log_joint, x, k)
    states = latent_states(support, x)
    log_s = math.log(states.shape[0])

    def sample_and_log_q(xb: Tensor, c: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(states.shape[0], (c, xb.shape[0]), device=states.device)
        lq = torch.full((c, xb.shape[0]), -log_s, dtype=torch.float64, device=xb.device)
        return states[idx], lq

    draw = _draw_fn(None, None, sample_and_log_q)
    return _is_estimate("naive_monte_carlo", log_joint, x, draw, k, max_rows)


def elbo(
    log_joint: LogJoint,
    x: Tensor,
    sample: Sample | None = None,
    log_q: LogQ | None = None,
    *,
    k: int = 1,
    sample_and_log_q: SampleAndLogQ | None = None,
    max_rows: int | None = None,
) -> Estimate:
    r"""Monte Carlo estimate of the evidence lower bound (a *bound*, not an estimate of
    :math:`\log p(x)`).

    .. math:: \mathrm{ELBO}(x) = \mathbb{E}_{q(z\mid x)}\left[\log p(x, z) - \log q(z \mid x)
              \right] = \log p(x) - \mathrm{KL}(q(z\mid x) \,\|\, p(z \mid x)) \le \log p(x)

    averaged over ``k`` draws per example (unbiased for the bound), with the per-example Monte
    Carlo standard error :math:`s_{\log w}/\sqrt{k}`. The bound is tight, with zero variance,
    exactly when :math:`q` is the true posterior. Arguments as in
    :func:`importance_sampling`.

    Example:
        >>> import torch
        >>> from tractable.estimators import elbo
        >>> n01 = torch.distributions.Normal(0.0, 1.0)
        >>> est = elbo(
        ...     lambda x, z: n01.log_prob(z).sum(1) + n01.log_prob(x - z).sum(1),
        ...     torch.zeros(1, 1),
        ...     sample=lambda x, k: torch.randn(k, x.shape[0], 1),
        ...     log_q=lambda z, x: n01.log_prob(z).sum(1),
        ...     k=100,
        ... )
        >>> est.kind, est.mean < -1.2655  # log N(0; 0, 2) = -1.2655
        ('bound', True)
    """
    x = _check_inputs(log_joint, x, k)
    draw = _draw_fn(sample, log_q, sample_and_log_q)
    stats = _weight_stats(log_joint, x, draw, k, max_rows)
    se = (stats["var"] / k).sqrt() if k > 1 else None
    return Estimate.from_values("elbo", "bound", stats["mean"], k, se)


def iwae(
    log_joint: LogJoint,
    x: Tensor,
    sample: Sample | None = None,
    log_q: LogQ | None = None,
    *,
    k: int,
    repeats: int = 1,
    sample_and_log_q: SampleAndLogQ | None = None,
    max_rows: int | None = None,
) -> Estimate:
    r"""Monte Carlo estimate of the IWAE bound :math:`\mathcal{L}_k` (Burda et al. 2016).

    .. math:: \mathcal{L}_k(x) = \mathbb{E}_{z_{1..k} \sim q}\left[\log \frac{1}{k}
              \sum_{i=1}^k \frac{p(x, z_i)}{q(z_i \mid x)}\right], \qquad
              \mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_k \le \mathcal{L}_{k+1}
              \le \log p(x).

    A *bound*: each value averages ``repeats`` independent draws of the k-sample log-mean-exp
    (unbiased for :math:`\mathcal{L}_k`), and ``per_example_se`` is their standard error over
    the repeats (``None`` for one repeat). One draw is numerically the same number as
    :func:`importance_sampling` with the same ``k``; the two differ in what they claim about
    it. Arguments as in :func:`importance_sampling`.

    Example:
        >>> import torch
        >>> from tractable.estimators import iwae
        >>> n01 = torch.distributions.Normal(0.0, 1.0)
        >>> est = iwae(
        ...     lambda x, z: n01.log_prob(z).sum(1) + n01.log_prob(x - z).sum(1),
        ...     torch.zeros(1, 1),
        ...     sample=lambda x, k: torch.randn(k, x.shape[0], 1),
        ...     log_q=lambda z, x: n01.log_prob(z).sum(1),
        ...     k=10, repeats=50,
        ... )
        >>> est.kind, est.per_example_se.shape
        ('bound', torch.Size([1]))
    """
    x = _check_inputs(log_joint, x, k)
    check_positive_int(repeats, "repeats")
    draw = _draw_fn(sample, log_q, sample_and_log_q)
    draws = torch.stack(
        [_weight_stats(log_joint, x, draw, k, max_rows)["lse1"] for _ in range(repeats)]
    ) - math.log(k)
    values = draws.mean(0)
    se = None
    if repeats > 1:
        # (an empty batch has no spread to reduce over)
        spread = draws.std(0, unbiased=True) if values.numel() else torch.zeros_like(values)
        se = spread / math.sqrt(repeats)
        se = torch.where(torch.isfinite(values), se, torch.full_like(se, math.inf))
    return Estimate.from_values("iwae", "bound", values, k, se, None, repeats)


__all__ = [
    "importance_sampling",
    "naive_monte_carlo",
    "elbo",
    "iwae",
]

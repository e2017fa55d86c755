r"""The :class:`Estimate` result and the stable log-mean-exp shared by every estimator.

Every estimator in this package returns one log-likelihood value per example, in nats, and says
which kind of number it is:

* ``"exact"``: the model's log-density itself (a flow, a model summed over a finite latent);
* ``"estimate"``: a consistent stochastic estimate of :math:`\log p(x)` (importance sampling,
  naive Monte Carlo). It is the log of an *unbiased* estimate of :math:`p(x)`, hence by Jensen's
  inequality a stochastic *lower bound* in expectation, with a bias of order :math:`1/k`;
* ``"bound"``: an estimate of a deterministic lower bound on :math:`\log p(x)` (the ELBO, the
  IWAE bound :math:`\mathcal{L}_k`), which does not converge to :math:`\log p(x)` unless the
  proposal is the true posterior (ELBO) or :math:`k \to \infty` (IWAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_positive_int, warn_undefined_se

KINDS = ("exact", "estimate", "bound")


def log_mean_exp(t: Tensor, dim: int = 0) -> Tensor:
    r"""The log of the mean of :math:`e^{t}` along ``dim``, without overflow.

    .. math:: \log \frac{1}{k} \sum_{i=1}^{k} e^{t_i} = \operatorname{logsumexp}(t) - \log k

    Rows that are all :math:`-\infty` give :math:`-\infty` (zero probability), not NaN; NaN and
    :math:`+\infty` in ``t`` are refused with a ``ValueError``.

    Example:
        >>> import torch
        >>> from tractable.estimators import log_mean_exp
        >>> log_mean_exp(torch.tensor([[1000.0], [1000.0]]), dim=0)
        tensor([1000.])
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"t: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 0:
        raise ValueError("t: expected at least one dimension, got a scalar")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    if not -t.dim() <= dim < t.dim():
        raise ValueError(f"dim: expected an int in [{-t.dim()}, {t.dim()}), got {dim}")
    k = t.shape[dim]
    if k == 0:
        raise ValueError(f"t: expected a non-empty dimension {dim}, got shape {tuple(t.shape)}")
    if bool(torch.isnan(t).any()) or bool((t == math.inf).any()):
        raise ValueError(
            f"t: expected values in [-inf, inf), found {int(torch.isnan(t).sum())} NaN and "
            f"{int((t == math.inf).sum())} +inf entries in a tensor of shape {tuple(t.shape)}"
        )
    return torch.logsumexp(t, dim=dim) - math.log(k)


def _summary(values: Tensor) -> tuple[float | None, float | None]:
    # Mean over examples and its standard error s / sqrt(N): None for no example (both) or one
    # example (the standard error, undefined), inf when some value is infinite (a
    # zero-probability example makes the spread unbounded). Never NaN.
    v = values.detach().double()
    n = v.numel()
    if n == 0:
        return None, None
    mean = float(v.mean())
    if n == 1:
        return mean, None
    if not bool(torch.isfinite(v).all()):
        return mean, math.inf
    return mean, float(v.std(unbiased=True)) / math.sqrt(n)


@dataclass(frozen=True)
class Estimate:
    r"""A per-example log-likelihood (nats) with its uncertainty.

    Attributes:
        method: the estimator that produced it (``"exact"``, ``"enumerate"``,
            ``"naive_monte_carlo"``, ``"importance_sampling"``, ``"elbo"``, ``"iwae"``).
        kind: ``"exact"``, ``"estimate"`` or ``"bound"`` (see the module docstring).
        values: ``(N,)`` one value per example (``(0,)`` for an empty batch).
        mean: the mean of ``values`` over the examples (``None`` for an empty batch).
        se: the standard error of ``mean`` across examples, :math:`s/\sqrt{N}`: the spread due to
            the finite test set (``None`` when :math:`N \le 1`, inf when a value is infinite).
            Never NaN: :meth:`to_dict` reports it as ``null``, with an
            :class:`~tractable.checks.UndefinedStandardErrorWarning` for :math:`N = 1`.
        k: the number of samples per example (``None`` for exact values).
        per_example_se: ``(N,)`` the Monte Carlo standard error of each value, or ``None`` where
            it is not defined (exact values; one sample). For importance sampling it is the
            delta-method standard error of the log-mean-exp,
            :math:`\sqrt{(k/\mathrm{ESS} - 1)/(k - 1)}`.
        ess: ``(N,)`` Kish's effective sample size of the importance weights,
            :math:`(\sum_i w_i)^2 / \sum_i w_i^2 \in [1, k]`, or ``None``.
        repeats: the number of independent repeats averaged into each value (IWAE).

    Example:
        >>> import torch
        >>> from tractable.estimators import exact
        >>> est = exact(lambda x: -x.pow(2).sum(1), torch.ones(4, 2))
        >>> est.kind, est.mean, est.nll
        ('exact', -2.0, 2.0)
    """

    method: str
    kind: str
    values: Tensor
    mean: float | None
    se: float | None
    k: int | None = None
    per_example_se: Tensor | None = None
    ess: Tensor | None = None
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.values, Tensor) or self.values.dim() != 1:
            raise ValueError("values: expected a tensor of shape (N,)")

    @classmethod
    def from_values(
        cls,
        method: str,
        kind: str,
        values: Tensor,
        k: int | None = None,
        per_example_se: Tensor | None = None,
        ess: Tensor | None = None,
        repeats: int = 1,
    ) -> Estimate:
        r"""Build an :class:`Estimate`, computing ``mean`` and ``se`` from ``values``."""
        values = values.detach()
        mean, se = _summary(values)
        return cls(method, kind, values, mean, se, k, per_example_se, ess, repeats)

    @property
    def nll(self) -> float | None:
        r"""The mean negative log-likelihood in nats, :math:`-\text{mean}` (``None`` when
        ``mean`` is)."""
        return None if self.mean is None else -self.mean

    @property
    def mc_se(self) -> float | None:
        r"""The Monte Carlo standard error of ``mean``, :math:`\sqrt{\sum_n \sigma_n^2} / N`.

        The examples' estimates are independent, so their Monte Carlo variances add; this is the
        sampling noise of the estimator alone, as opposed to ``se``, which is dominated by the
        spread of the test examples. ``None`` when ``per_example_se`` is not defined.
        """
        if self.per_example_se is None or self.per_example_se.numel() == 0:
            return None
        n = self.per_example_se.numel()
        return float(self.per_example_se.double().pow(2).sum().sqrt()) / n

    def bits_per_dim(self, dims: int) -> float | None:
        r"""The mean NLL in bits per dimension, :math:`-\text{mean} / (D \ln 2)` (``None`` for
        an empty batch)."""
        check_positive_int(dims, "dims")
        nll = self.nll
        return None if nll is None else nll / (dims * math.log(2))

    def to_dict(self) -> dict[str, object]:
        r"""A JSON-friendly summary (no per-example tensors); undefined numbers are ``None``."""
        if self.se is None and self.values.numel() == 1:
            warn_undefined_se(f"{self.method} estimate")
        out: dict[str, object] = {
            "method": self.method,
            "kind": self.kind,
            "n": self.values.numel(),
            "mean": self.mean,
            "se": self.se,
            "nll": self.nll,
            "k": self.k,
            "repeats": self.repeats,
            "mc_se": self.mc_se,
        }
        if self.ess is not None and self.ess.numel() > 0:
            ess = self.ess.double()
            out["ess_mean"] = float(ess.mean())
            out["ess_min"] = float(ess.min())
        return out

    def __str__(self) -> str:
        mean = "undefined" if self.mean is None else f"{self.mean:.4f}"
        se = "" if self.se is None else f" +- {self.se:.4f}"
        text = f"{self.method} ({self.kind}): {mean}{se} nats"
        if self.k is not None:
            text += f", k={self.k}"
        if self.ess is not None and self.ess.numel() > 0:
            text += f", mean ESS={float(self.ess.double().mean()):.1f}"
        return text


__all__ = ["Estimate", "log_mean_exp"]

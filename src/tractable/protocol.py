r"""The model protocol that every family implements, and the one vocabulary of estimators.

Every model family (flows, image flows, continuous-time flows, VAEs, and later GANs and
diffusion models) is an ``nn.Module`` with this surface, so that the trainer, the run
directory, the command line, the metrics and the reports never ask which family they hold:

* ``likelihood``, a class attribute: what :meth:`Model.estimate` gives without options,
  ``"exact"`` (a flow's density), ``"bound"`` (a VAE's ELBO/IWAE) or ``"none"`` (a GAN);
* ``estimators``, a class attribute: the estimator names :meth:`Model.estimate` accepts, the
  default first;
* ``loss(batch)``: the training objective, a scalar;
* ``estimate(x, context=None, *, method=None, k=None)``: a per-example log-likelihood
  :class:`~tractable.estimators.Estimate` tagged with its kind;
* ``sample(n, context=None, temperature=1.0)``: draws in the model's space;
* ``extra_log()``: numbers the trainer writes to ``log.jsonl`` beside the loss;
* ``log_prob(x, context=None)``: only where the density is exact (and differentiable);
* ``diagnostics(x)``: optional, a family's own JSON-ready figures of data ``x`` (a VAE's
  active units and KL per latent dimension), which ``tractable eval`` reports;
* ``parts()``, ``updates(step)`` and ``loss(batch, part)``: only for a family trained by
  several optimisers (a GAN's discriminator and generator), see :mod:`tractable.train.updates`.

The estimator names mean the same thing everywhere (Python API, ``tractable eval
--estimator``, ``metrics.json``):

==============  ==========  ==============================================================
name            kind        what it is
==============  ==========  ==============================================================
``exact``       exact       the model's own log-density
``elbo``        bound       the evidence lower bound, Monte Carlo over ``k`` draws
``iwae``        bound       the importance-weighted bound :math:`\mathcal{L}_k`
                            (Burda et al. 2016)
``importance``  estimate    importance sampling with the encoder as proposal: a consistent
                            estimate of :math:`\log p(x)` with per-example standard errors
==============  ==========  ==============================================================

Example:
    >>> import tractable as tr
    >>> flow = tr.flows.MAF(2, transforms=1, hidden=(8,))
    >>> isinstance(flow, Model), flow.likelihood, flow.estimators
    (True, 'exact', ('exact',))
    >>> ESTIMATORS["iwae"]
    'bound'
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor

from .estimators import Estimate

LIKELIHOODS = ("exact", "bound", "none")
ESTIMATORS = {"exact": "exact", "elbo": "bound", "iwae": "bound", "importance": "estimate"}


@runtime_checkable
class Model(Protocol):
    r"""What every model family offers (see the module docstring)."""

    likelihood: ClassVar[str]
    estimators: ClassVar[tuple[str, ...]]

    def loss(self, batch: Any) -> Tensor: ...

    def estimate(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
    ) -> Estimate: ...

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor: ...

    def extra_log(self) -> dict[str, float]: ...


def check_method(model: object, method: str | None) -> str:
    r"""The estimator ``method`` resolved for ``model``: its default when ``None``; a clear
    ``ValueError`` for a name outside the vocabulary or one the model does not offer.

    Example:
        >>> import tractable as tr
        >>> check_method(tr.flows.MAF(2, transforms=1, hidden=(8,)), None)
        'exact'
    """
    offered = tuple(getattr(type(model), "estimators", ()))
    if method is None:
        if not offered:
            raise ValueError(
                f"method: {type(model).__name__} has no likelihood (likelihood 'none'); "
                "compare it with sample-based metrics instead"
            )
        return offered[0]
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise ValueError(f"method: expected one of {', '.join(ESTIMATORS)}, got {method!r}")
    if method not in offered:
        kind = getattr(type(model), "likelihood", "none")
        raise ValueError(
            f"method: {type(model).__name__} (likelihood {kind!r}) offers "
            f"{', '.join(offered) or 'no estimator'}, not {method!r}"
        )
    return method


__all__ = ["ESTIMATORS", "LIKELIHOODS", "Model", "check_method"]

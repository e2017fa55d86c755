r"""Variational inference with flows: fit a flow :math:`q` to an unnormalised density
:math:`\tilde p` by minimising the reverse KL divergence :math:`\mathrm{KL}(q\,\|\,p)`
(:func:`fit_reverse_kl`), estimate the normaliser :math:`\log Z` by importance sampling with
the fitted flow (:func:`estimate_log_z`), and the classic targets to try it on
(:mod:`tractable.variational.targets`: the energies of Rezende and Mohamed 2015, Neal's funnel,
a Gaussian and a two-mode mixture with known :math:`\log Z`).

Example:
    >>> import tractable as tr
    >>> t = tr.variational.target("gaussian")
    >>> r = tr.fit_reverse_kl(tr.flows.Gaussian(2), t, steps=200, lr=0.05, eval_samples=1000,
    ...                       seed=0)
    >>> r.elbo <= r.log_z, round(t.log_z, 2)
    (True, 2.5)
"""

from .fit import SCHEDULES, ReverseKLResult, anneal_beta, fit_reverse_kl
from .importance import LogZEstimate, estimate_log_z
from .targets import TARGETS, Target, funnel, gaussian, mixture, target, u1, u2, u3, u4

__all__ = [
    "SCHEDULES",
    "TARGETS",
    "LogZEstimate",
    "ReverseKLResult",
    "Target",
    "anneal_beta",
    "estimate_log_z",
    "fit_reverse_kl",
    "funnel",
    "gaussian",
    "mixture",
    "target",
    "u1",
    "u2",
    "u3",
    "u4",
]

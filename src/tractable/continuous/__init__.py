r"""Continuous normalizing flows: CNF transforms solved with torchdiffeq, and FFJORD.

Chen et al. 2018 (Neural ODEs), Grathwohl et al. 2019 (FFJORD), Finlay et al. 2020 (RNODE). The
networks of the vector fields (:class:`~tractable.nn.ODEMLP`, ...) are in :mod:`tractable.nn`.
"""

from .cnf import ADAPTIVE_SOLVERS, CNF, DIVERGENCES, EXACT_MAX_FEATURES, FIXED_SOLVERS
from .divergence import NOISES, exact_divergence, hutchinson_divergence, hutchinson_noise
from .ffjord import FFJORD, ContinuousFlow, reset_nfe, rnode_penalty, total_nfe

__all__ = [
    "CNF",
    "FFJORD",
    "ContinuousFlow",
    "exact_divergence",
    "hutchinson_divergence",
    "hutchinson_noise",
    "total_nfe",
    "reset_nfe",
    "rnode_penalty",
    "ADAPTIVE_SOLVERS",
    "FIXED_SOLVERS",
    "DIVERGENCES",
    "EXACT_MAX_FEATURES",
    "NOISES",
]

r"""Log-likelihood estimators for any latent-variable model, as pure functions.

Each returns an :class:`Estimate` with per-example values (nats), their mean and its standard
error, and says whether it is ``"exact"``, an ``"estimate"`` (importance sampling, naive Monte
Carlo: consistent, biased low in expectation by Jensen's inequality) or a ``"bound"`` (ELBO,
IWAE).
"""

from .base import Estimate, log_mean_exp
from .exact import enumerate_latent, exact
from .figures import jensen_bias, jensen_bias_figure
from .oracles import DiscreteMixture, LinearGaussian
from .sampling import elbo, importance_sampling, iwae, naive_monte_carlo

__all__ = [
    "Estimate",
    "log_mean_exp",
    "exact",
    "enumerate_latent",
    "importance_sampling",
    "naive_monte_carlo",
    "elbo",
    "iwae",
    "LinearGaussian",
    "DiscreteMixture",
    "jensen_bias",
    "jensen_bias_figure",
]

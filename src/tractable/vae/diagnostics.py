r"""Posterior collapse made visible: the KL term per latent dimension, and active units.

A VAE whose decoder can model the data without :math:`z` pays nothing to ignore a latent
dimension: the encoder then returns the prior for it, :math:`q(z_j \mid x) = p(z_j)`, whatever
:math:`x` (posterior collapse; Bowman et al. 2016, "Generating sentences from a continuous
space"). Two figures show it, per dimension :math:`j`:

* the KL term, averaged over the data (only when posterior and prior both factorise over the
  dimensions; :func:`kl_per_dimension`),

  .. math:: \overline{\mathrm{KL}}_j = \frac1N \sum_{n=1}^N
            \mathrm{KL}\big(q(z_j \mid x_n) \,\|\, p(z_j)\big),

  zero exactly for a collapsed dimension, and summing to the ELBO's KL term;
* the activity of Burda et al. (2016, "Importance Weighted Autoencoders", section 5.2),

  .. math:: A_j = \operatorname{Cov}_x\big(\mathbb{E}_{q(z \mid x)}[z_j]\big),

  the variance over the data of the posterior mean; a unit is *active* when
  :math:`A_j > 0.01` (their threshold; :func:`active_units`). A collapsed unit has
  :math:`A_j = 0`.

The VAE calls :func:`latent_diagnostics` from its ``diagnostics(x)`` method, which
``tractable eval`` reports for VAE runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..checks import check_positive_int
from ..distributions import DiagNormal, StandardNormal
from .encoders import GaussianEncoder
from .gaussian import kl_normal_normal, kl_normal_standard

if TYPE_CHECKING:
    from .model import VAE

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016), section 5.2
_ROWS = 1024  # data rows per encoder pass


def _vae_parts(vae: object) -> tuple[Any, Any]:
    encoder, prior = getattr(vae, "encoder", None), getattr(vae, "prior", None)
    if encoder is None or prior is None or not hasattr(encoder, "gaussian"):
        raise TypeError(
            f"vae: expected a tractable VAE (with encoder and prior), got {type(vae).__name__}"
        )
    return encoder, prior


def _check_data(encoder: Any, x: Tensor, minimum: int) -> Tensor:
    x = encoder.check(x)
    if x.shape[0] < minimum:
        raise ValueError(f"x: expected at least {minimum} rows, got {x.shape[0]}")
    return x


def per_dimension_kl_defined(vae: VAE) -> str | None:
    r"""``None`` when the KL term of ``vae`` splits over latent dimensions (a diagonal Gaussian
    posterior and a standard or diagonal normal prior), else the reason it does not."""
    encoder, prior = _vae_parts(vae)
    if not isinstance(encoder, GaussianEncoder):
        return (
            f"the posterior ({type(encoder).__name__}) is not a diagonal Gaussian: a flow "
            "posterior couples the dimensions, so the KL does not split over them"
        )
    if not isinstance(prior, (StandardNormal, DiagNormal)):
        return (
            f"the prior ({type(prior).__name__}) does not factorise over the dimensions, so "
            "the KL does not split over them"
        )
    return None


@torch.no_grad()
def kl_per_dimension(vae: VAE, x: Tensor, context: Tensor | None = None) -> Tensor:
    r"""The mean over the rows of ``x`` of :math:`\mathrm{KL}(q(z_j \mid x) \,\|\, p(z_j))`
    for each latent dimension :math:`j`: ``(N, *event_shape) -> (L,)``, in nats.

    Closed form (Kingma and Welling 2014, Appendix B) for a diagonal Gaussian posterior
    (:class:`~tractable.vae.GaussianEncoder`) with a standard or diagonal normal prior; the sum
    over :math:`j` is the ELBO's KL term averaged over ``x``. Any other prior (a mixture, the
    VampPrior, a flow) or a flow posterior does not factorise over the dimensions, so the
    per-dimension KL is not defined there: a ``ValueError`` says so.

    Example:
        >>> from tractable.vae import build_vae
        >>> model = build_vae(4, latent=3, hidden=(8,), decoder="gaussian")
        >>> kl_per_dimension(model, torch.randn(10, 4)).shape
        torch.Size([3])
    """
    if context is not None:
        raise ValueError("context: a VAE is unconditional, got a context tensor")
    reason = per_dimension_kl_defined(vae)
    if reason is not None:
        raise ValueError(f"kl_per_dimension: not defined for this VAE: {reason}")
    encoder, prior = _vae_parts(vae)
    x = _check_data(encoder, x, 1)
    total = torch.zeros(encoder.latent, dtype=torch.float64, device=x.device)
    was_training = vae.training
    vae.eval()
    try:
        for xb in x.split(_ROWS):
            loc, log_scale, _ = encoder.gaussian(xb, check=False)
            # a trailing axis of one makes the library's summed KL an elementwise one: (n, L)
            loc, log_scale = loc.unsqueeze(-1), log_scale.unsqueeze(-1)
            if isinstance(prior, StandardNormal):
                kl = kl_normal_standard(loc, log_scale)
            else:
                kl = kl_normal_normal(loc, log_scale, prior.loc.unsqueeze(-1),
                                      prior.log_scale.unsqueeze(-1))  # fmt: skip
            total += kl.double().sum(0)
    finally:
        vae.train(was_training)
    return (total / x.shape[0]).to(x.dtype)


@torch.no_grad()
def _posterior_means(encoder: Any, x: Tensor, samples: int) -> tuple[Tensor, Tensor | None]:
    r"""``E_q[z | x]`` ``(N, L)``: the Gaussian mean, or for another posterior a Monte Carlo
    mean of ``samples`` draws with the mean within-row variance of the draws ``(L,)``."""
    if isinstance(encoder, GaussianEncoder):
        return torch.cat([encoder.gaussian(xb, check=False)[0] for xb in x.split(_ROWS)]), None
    means, within = [], []
    for xb in x.split(max(1, _ROWS * 64 // samples)):
        z = encoder.rsample(xb, samples)  # (k, n, L)
        means.append(z.mean(0))
        within.append(z.double().var(0).sum(0))
    return torch.cat(means), torch.stack(within).sum(0) / x.shape[0]


def active_units(
    vae: VAE, x: Tensor, threshold: float = ACTIVE_THRESHOLD, *, samples: int = 100
) -> tuple[int, Tensor]:
    r"""The number of active latent units on data ``x`` and the activity of every unit:
    ``(count, A)`` with :math:`A_j = \operatorname{Cov}_x(\mathbb{E}_{q(z\mid x)}[z_j])`
    ``(L,)`` (the unbiased variance over the ``N >= 2`` rows) and ``count`` the units with
    :math:`A_j >` ``threshold`` (Burda et al. 2016, section 5.2).

    For a diagonal Gaussian posterior :math:`\mathbb{E}_q[z]` is its mean. For a flow posterior
    it is the mean of ``samples`` draws per row; the Monte Carlo noise, which would add
    :math:`\mathbb{E}_x[\operatorname{Var}_q(z_j \mid x)] / k` to :math:`A_j`, is estimated from
    the same draws and subtracted (the result clipped at 0).

    Example:
        >>> from tractable.vae import build_vae
        >>> model = build_vae(4, latent=3, hidden=(8,), decoder="gaussian")
        >>> count, activity = active_units(model, torch.randn(50, 4))
        >>> activity.shape, 0 <= count <= 3
        (torch.Size([3]), True)
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a float >= 0, got {type(threshold).__name__}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: expected a finite float >= 0, got {threshold!r}")
    check_positive_int(samples, "samples", minimum=2)
    encoder, _ = _vae_parts(vae)
    x = _check_data(encoder, x, 2)
    was_training = vae.training
    vae.eval()
    try:
        means, within = _posterior_means(encoder, x, samples)
    finally:
        vae.train(was_training)
    activity = means.double().var(0)
    if within is not None:
        activity = (activity - within / samples).clamp(min=0)
    activity = activity.to(x.dtype)
    return int((activity > threshold).sum()), activity


def latent_diagnostics(vae: VAE, x: Tensor) -> dict[str, Any]:
    r"""The posterior-collapse figures of ``vae`` on data ``x``, JSON-ready: ``latent`` (the
    latent size), ``active_units`` (Burda et al. 2016, :math:`A_j > 0.01`), ``activity``
    (:math:`A_j` per unit) and, when it is defined, ``kl_per_dimension``.

    Example:
        >>> from tractable.vae import build_vae
        >>> model = build_vae(4, latent=2, hidden=(8,), decoder="gaussian")
        >>> sorted(latent_diagnostics(model, torch.randn(20, 4)))
        ['active_units', 'activity', 'kl_per_dimension', 'latent']
    """
    count, activity = active_units(vae, x)
    out: dict[str, Any] = {
        "latent": int(activity.numel()),
        "active_units": count,
        "activity": [float(a) for a in activity],
    }
    if per_dimension_kl_defined(vae) is None:
        out["kl_per_dimension"] = [float(k) for k in kl_per_dimension(vae, x)]
    return out


__all__ = [
    "ACTIVE_THRESHOLD",
    "active_units",
    "kl_per_dimension",
    "latent_diagnostics",
    "per_dimension_kl_defined",
]

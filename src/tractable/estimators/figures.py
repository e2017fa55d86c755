r"""A figure of the Jensen bias of importance-sampled log-likelihoods.

For an unbiased estimate :math:`\hat p_k` of :math:`p(x)` built from :math:`k` importance
weights, the second-order (delta-method) expansion of the logarithm gives

.. math:: \mathbb{E}[\log \hat p_k(x)] - \log p(x) \approx -\frac{\rho(x)}{2k}, \qquad
          \rho(x) = \frac{\operatorname{Var}_q(w)}{p(x)^2}
          = \frac{\mathbb{E}_q[w^2]}{p(x)^2} - 1,

so the log of an average is biased low, by an amount that shrinks as :math:`1/k` (Burda et al.
2016 read :math:`\mathbb{E}[\log \hat p_k]` as the IWAE bound :math:`\mathcal{L}_k`). On
probabilistic PCA with the prior as proposal every quantity is analytic:
:math:`\mathbb{E}_{p(z)}[p(x\mid z)^2] = (4\pi\sigma^2)^{-D/2}\,
\mathcal{N}(x; \mu, WW^\top + \tfrac{\sigma^2}{2} I)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch.distributions import MultivariateNormal

from ..checks import check_positive_int
from .oracles import LinearGaussian


def _relative_variance(model: LinearGaussian, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\rho(x)` for the prior proposal on pPCA, analytic: ``(N,)``."""
    s2 = model.sigma**2
    eye = torch.eye(model.features, dtype=model.W.dtype)
    cov_half = model.W @ model.W.T + 0.5 * s2 * eye
    log_m2 = -0.5 * model.features * math.log(4 * math.pi * s2) + MultivariateNormal(
        model.mu, cov_half
    ).log_prob(x)
    return torch.expm1(log_m2 - 2 * model.log_marginal(x))


def jensen_bias(
    ks: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    repeats: int = 200,
    seed: int = 0,
    features: int = 4,
    latent: int = 2,
    sigma: float = 1.0,
    points: int = 4,
) -> dict[str, list[float]]:
    r"""The measured bias :math:`\mathbb{E}[\log \hat p_k] - \log p(x)` on a pPCA model with the
    prior as proposal, for each ``k`` in ``ks``, averaged over ``points`` data points and
    ``repeats`` independent estimates, with its standard error and the delta-method prediction
    :math:`-\bar\rho / (2k)`. Uses its own generator (the global RNG is untouched), in float64.

    Example:
        >>> from tractable.estimators import jensen_bias
        >>> out = jensen_bias(ks=(1, 100), repeats=50)
        >>> out["bias"][0] < out["bias"][1] < 0
        True
    """
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks: expected a non-empty sequence of ints >= 1, got {ks!r}")
    check_positive_int(repeats, "repeats")
    check_positive_int(points, "points")
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    base = LinearGaussian.random(features, latent, sigma=sigma, seed=seed)
    model = LinearGaussian(base.W.to(dt), base.mu.to(dt), sigma)
    z = torch.randn(points, latent, generator=g, dtype=dt)
    x = z @ model.W.T + model.mu + sigma * torch.randn(points, features, generator=g, dtype=dt)
    log_p = model.log_marginal(x)
    rho = _relative_variance(model, x)
    out: dict[str, list[float]] = {"k": [], "bias": [], "bias_se": [], "predicted": []}
    for k in ks:
        zs = torch.randn(repeats, k, points, latent, generator=g, dtype=dt)
        r = x - zs @ model.W.T - model.mu
        log_w = -0.5 * r.pow(2).sum(-1) / sigma**2 - features * (
            math.log(sigma) + 0.5 * math.log(2 * math.pi)
        )
        # (repeats, points): the error of each estimate, then averaged over the points.
        err = (torch.logsumexp(log_w, 1) - math.log(k) - log_p).mean(1)
        out["k"].append(float(k))
        out["bias"].append(float(err.mean()))
        out["bias_se"].append(float(err.std(unbiased=True)) / math.sqrt(repeats))
        out["predicted"].append(float(-rho.mean() / (2 * k)))
    out["rho"] = [float(v) for v in rho]
    return out


def jensen_bias_figure(
    path: str | os.PathLike[str],
    ks: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    repeats: int = 200,
    seed: int = 0,
) -> dict[str, list[float]]:
    r"""Draw the bias of :math:`\log \hat p_k(x)` against :math:`k` (log axis) and save it.

    The measured bias (with two standard errors) is set against the delta-method prediction
    :math:`-\bar\rho/(2k)` and zero. It shows that importance sampling gives an *estimate* whose
    log is biased low (a stochastic lower bound in expectation), that the bias vanishes as
    :math:`k` grows, and that :math:`k = 1` is the ELBO. Rendered with matplotlib's Agg canvas
    (no display, no global backend change). Returns the numbers of :func:`jensen_bias`.

    Example:
        >>> import os, tempfile
        >>> from tractable.estimators import jensen_bias_figure
        >>> path = os.path.join(tempfile.mkdtemp(), "jensen.png")
        >>> _ = jensen_bias_figure(path, ks=(1, 10, 100), repeats=20)
        >>> os.path.getsize(path) > 0
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = jensen_bias(ks=ks, repeats=repeats, seed=seed)
    fig = Figure(figsize=(11.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    k = data["k"]
    ax.errorbar(
        k,
        data["bias"],
        yerr=[2 * s for s in data["bias_se"]],
        fmt="o-",
        capsize=3,
        label=r"measured $\mathbb{E}[\log \hat p_k] - \log p(x)$ ($\pm 2$ s.e.)",
    )
    ax.plot(k, data["predicted"], "--", label=r"delta method $-\bar\rho / (2k)$")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("importance samples $k$")
    ax.set_ylabel("bias (nats)")
    ax.set_title("Jensen bias of the log of an average (pPCA, prior proposal)")
    ax.annotate(
        "k = 1: the ELBO",
        (k[0], data["bias"][0]),
        textcoords="offset points",
        xytext=(10, 0),
        fontsize=8,
    )
    ax.legend(fontsize=8, loc="lower right")

    # Right: the magnitude on log-log axes, where the 1/k law is a line of slope -1.
    ax2 = fig.add_subplot(1, 2, 2)
    pos = [(kk, -b, s) for kk, b, s in zip(k, data["bias"], data["bias_se"], strict=True) if b < 0]
    ax2.errorbar(
        [p[0] for p in pos],
        [p[1] for p in pos],
        yerr=[p[2] for p in pos],
        fmt="o",
        capsize=3,
        label=r"measured $|$bias$|$ ($\pm 1$ s.e.)",
    )
    ax2.plot(k, [-p for p in data["predicted"]], "--", label=r"$\bar\rho / (2k)$")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("importance samples $k$")
    ax2.set_ylabel("|bias| (nats)")
    ax2.set_title("The bias vanishes as 1/k")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    return data


__all__ = ["jensen_bias", "jensen_bias_figure"]

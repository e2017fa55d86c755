r"""
5. Estimating log-likelihoods
=============================

A latent-variable model (a VAE, a diffusion model) defines
:math:`p(x) = \int p(x \mid z)\, p(z)\, dz`, an integral nobody can compute. Every number
reported for such a model is an *estimate* or a *bound*, and this tutorial shows how they behave
on a model where the truth is known: probabilistic PCA,

.. math:: z \sim \mathcal{N}(0, I_L), \qquad x \mid z \sim \mathcal{N}(Wz + \mu, \sigma^2 I_D),
          \qquad p(x) = \mathcal{N}(x;\ \mu,\ WW^\top + \sigma^2 I_D),

:class:`tractable.estimators.LinearGaussian`, whose :math:`\log p(x)` and exact posterior
:math:`p(z \mid x)` are closed-form. The estimators are the pure functions of
:mod:`tractable.estimators`: they take :math:`\log p(x, z)` and a proposal :math:`q(z \mid x)`
as callables and return an :class:`~tractable.estimators.Estimate` that says whether it is an
``estimate`` or a ``bound``, with standard errors and the effective sample size.
"""

# %%
# Naive Monte Carlo, and why it fails in high dimensions
# ------------------------------------------------------
# The obvious estimator samples the prior, :math:`\hat p(x) = \frac1k \sum_i p(x \mid z_i)` with
# :math:`z_i \sim p(z)`: importance sampling with the prior as proposal. It is unbiased for
# :math:`p(x)`, but almost every prior draw misses the small region of latent space that
# explains :math:`x`. Kish's effective sample size
# :math:`\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2` counts how many draws really contribute.
# With :math:`k = 2{,}000` draws and data dimension :math:`D = 2L`:
import matplotlib.pyplot as plt
import torch
from torch.distributions import MultivariateNormal, kl_divergence

import tractable as tr
from tractable.estimators import LinearGaussian, elbo, importance_sampling, iwae

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
k = 2000
latents = [1, 2, 4, 8, 16, 32]
rows = []
for L in latents:
    model = LinearGaussian.random(features=2 * L, latent=L, sigma=0.5, seed=L)
    x = model.sample(20)
    est = importance_sampling(model.log_joint, x, sample=model.prior_sample,
                              log_q=model.prior_log_prob, k=k)
    error = est.values - model.log_marginal(x)
    rows.append((L, float(est.ess.median()), float(error.mean()), float(error.std())))
    print(f"L = {L:2d}: median ESS {rows[-1][1]:8.1f} of {k}; estimate - log p(x) = "
          f"{rows[-1][2]:+9.2f} (sd over 20 points {rows[-1][3]:.2f})")

fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
a1.plot(latents, [r[1] for r in rows], "o-")
a1.set_xscale("log", base=2)
a1.set_yscale("log")
a1.set_xlabel("latent dimension L")
a1.set_ylabel(f"median ESS of k = {k}")
a1.set_title("prior proposal: the ESS collapses")
a2.errorbar(latents, [r[2] for r in rows], yerr=[r[3] for r in rows], fmt="o-", capsize=3)
a2.axhline(0, color="black", lw=0.8)
a2.set_xscale("log", base=2)
a2.set_xlabel("latent dimension L")
a2.set_ylabel(r"$\log \hat p(x) - \log p(x)$ (nats)")
a2.set_title("and the estimate falls far below the truth")
fig.tight_layout()

# %%
# In one or two latent dimensions the prior is a fine proposal. From :math:`L = 8` on, one
# draw in two thousand carries the whole estimate (ESS near 1), and the log of the average
# misses the truth by tens, then hundreds of nats, always from below. The reported standard error
# does not save it: it is computed from the same few weights.
#
# Importance sampling with a proposal near the posterior
# ------------------------------------------------------
# The remedy is a proposal close to the posterior :math:`p(z \mid x)`; a VAE's encoder is
# trained to be one. With the exact posterior every weight equals :math:`p(x)`, so one sample
# gives the exact answer; a Gaussian at the posterior mean with a covariance 1.5 times too wide
# (wider, never narrower: a proposal narrower than the posterior misses mass that no standard
# error reveals) is realistic. :math:`L = 16`, :math:`k = 2{,}000` again:
L = 16
model = LinearGaussian.random(features=2 * L, latent=L, sigma=0.5, seed=L)
x = model.sample(20)
truth = model.log_marginal(x)
mean, cov = model.posterior(x)


def gaussian_proposal(scale):
    q_cov = scale * cov

    def sample(xb, kk):
        m, _ = model.posterior(xb)
        return MultivariateNormal(m, q_cov).sample((kk,))

    def log_q(z, xb):
        m, _ = model.posterior(xb)
        return MultivariateNormal(m, q_cov).log_prob(z)

    return sample, log_q


proposals = {
    "prior": (model.prior_sample, model.prior_log_prob),
    "posterior x 1.5 (wider)": gaussian_proposal(1.5),
    "exact posterior": (model.posterior_sample, model.posterior_log_prob),
}
for name, (sample, log_q) in proposals.items():
    est = importance_sampling(model.log_joint, x, sample=sample, log_q=log_q, k=k)
    err = (est.values - truth).abs().mean()
    print(f"{name:24s} ESS {float(est.ess.median()):7.1f}, mean |error| {float(err):.4f} nats, "
          f"mean reported s.e. {float(est.per_example_se.mean()):.4f}")

# %%
# The ELBO gap is a KL divergence
# -------------------------------
# With one draw per example and the log taken inside the expectation, importance sampling
# becomes the evidence lower bound, and the amount by which it falls short is exactly the KL
# divergence from the proposal to the true posterior:
#
# .. math:: \mathrm{ELBO}(x) = \mathbb{E}_q[\log p(x, z) - \log q(z \mid x)]
#           = \log p(x) - \mathrm{KL}(q(z \mid x)\,\|\,p(z \mid x)).
#
# Here :math:`q` is the posterior with its mean shifted by half a posterior standard deviation
# in every coordinate and its covariance scaled by a factor; the Monte Carlo ELBO
# (:func:`tractable.estimators.elbo`, 500 draws), the analytic gap and the KL computed by
# :func:`torch.distributions.kl_divergence`:
x1 = x[:1]
m1, c1 = model.posterior(x1)
shift = 0.5 * c1.diagonal().sqrt()
print("scale   MC ELBO gap        analytic gap   KL(q || p(z|x))")
for scale in (0.5, 1.0, 2.0):
    loc, q_cov = m1 + shift, scale * c1
    q = MultivariateNormal(loc, q_cov)
    est = elbo(model.log_joint, x1, sample=lambda xb, kk, q=q: q.sample((kk,)),
               log_q=lambda z, xb, q=q: q.log_prob(z), k=500)
    analytic = truth[0] - model.gaussian_elbo(x1, loc, q_cov)[0]
    kl = kl_divergence(q, MultivariateNormal(m1, c1))[0]
    gap, se = float(truth[0] - est.values[0]), float(est.per_example_se[0])
    print(f"{scale:5.1f}   {gap:6.3f} ± {se:.3f}      {float(analytic):6.3f}"
          f"        {float(kl):6.3f}")

# %%
# The three columns agree (the first up to its Monte Carlo error): the ELBO is as good as the
# posterior approximation and no better. A VAE trained on the ELBO therefore reports a number
# that mixes how good its model is with how good its encoder is.
#
# IWAE: tighter bounds with more samples
# --------------------------------------
# Averaging :math:`k` weights *inside* the log gives the importance-weighted bound
# (Burda et al. 2016),
#
# .. math:: \mathcal{L}_k = \mathbb{E}\left[\log \frac1k \sum_{i=1}^k
#           \frac{p(x, z_i)}{q(z_i \mid x)}\right], \qquad
#           \mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_k \le \mathcal{L}_{k+1} \le \log p(x).
#
# With the shifted, twice-too-wide proposal of the last row above, averaged over 20 repeats:
q = MultivariateNormal(m1 + shift, 2.0 * c1)
ks = [1, 3, 10, 30, 100, 300, 1000]
bounds = []
for kk in ks:
    est = iwae(model.log_joint, x1, sample=lambda xb, n: q.sample((n,)),
               log_q=lambda z, xb: q.log_prob(z), k=kk, repeats=20)
    bounds.append((float(est.values[0]), float(est.per_example_se[0])))
    print(f"k = {kk:4d}: L_k - log p(x) = {bounds[-1][0] - float(truth[0]):+.4f} "
          f"± {bounds[-1][1]:.4f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(ks, [b - float(truth[0]) for b, _ in bounds], yerr=[2 * s for _, s in bounds],
            fmt="o-", capsize=3, label=r"$L_k - \log p(x)$ ($\pm 2$ s.e.)")
ax.axhline(0, color="black", lw=0.8, label=r"$\log p(x)$ (exact)")
ax.set_xscale("log")
ax.set_xlabel("samples k")
ax.set_ylabel("nats")
ax.set_title("IWAE bounds tighten towards log p(x)")
ax.legend()
fig.tight_layout()

# %%
# The Jensen bias of the log of an average
# ----------------------------------------
# Why are all these numbers low? Each :math:`\hat p_k` is an *unbiased* estimate of
# :math:`p(x)`, but the logarithm is concave, so by Jensen's inequality
# :math:`\mathbb{E}[\log \hat p_k] \le \log \mathbb{E}[\hat p_k] = \log p(x)`. A second-order
# expansion predicts the size of the bias, :math:`-\rho / (2k)` with
# :math:`\rho = \operatorname{Var}(w) / p(x)^2`, and on pPCA with the prior as proposal
# :math:`\rho` is closed-form. :func:`tractable.estimators.jensen_bias` measures the bias
# against that prediction:
out = tr.estimators.jensen_bias(ks=(1, 3, 10, 30, 100, 300, 1000), repeats=200)
for kk, b, se, pred in zip(out["k"], out["bias"], out["bias_se"], out["predicted"], strict=True):
    print(f"k = {int(kk):4d}: measured bias {b:+.4f} ± {se:.4f}, predicted {pred:+.4f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(out["k"], out["bias"], yerr=[2 * s for s in out["bias_se"]], fmt="o-", capsize=3,
            label="measured (± 2 s.e.)")
ax.plot(out["k"], out["predicted"], "--", label=r"delta method $-\bar\rho/(2k)$")
ax.axhline(0, color="black", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("samples k")
ax.set_ylabel(r"$E[\log \hat p_k] - \log p(x)$")
ax.set_title("the log of an average is biased low")
ax.legend()
fig.tight_layout()

# %%
# At small :math:`k` the measured bias is larger than the expansion predicts (the expansion
# assumes the bias is small, and it is not); as :math:`k` grows the two meet. The bias shrinks
# roughly as :math:`1/k` and never changes sign. This is why :mod:`tractable` reports
# importance-sampled log-likelihoods as ``estimate`` (consistent, biased low in expectation), ELBO
# and IWAE as ``bound``, and only flows' numbers as ``exact`` (``tractable eval RUN --estimator
# importance --k 5000`` for a VAE run; see :doc:`/guide/evaluation`).
#
# What to take away
# -----------------
# * Prior sampling fails exponentially in the latent dimension: watch the ESS.
# * A proposal near the posterior (an encoder) makes importance sampling accurate; keep it
#   wider than the posterior.
# * ELBO = :math:`\log p(x)` minus a KL; IWAE closes the gap as :math:`k` grows.
# * The log of an unbiased average is biased low by about :math:`\rho/(2k)`.

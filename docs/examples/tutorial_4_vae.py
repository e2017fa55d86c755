r"""
4. Parameterising distributions in VAEs
=======================================

A variational autoencoder has three distributions to choose: the prior :math:`p(z)`, the decoder
:math:`p(x \mid z)` and the approximate posterior (encoder) :math:`q(z \mid x)`. It is trained on
the evidence lower bound,

.. math:: \log p(x) \ge \mathbb{E}_{q(z \mid x)}[\log p(x \mid z)]
          - \mathrm{KL}(q(z \mid x)\,\|\,p(z)),

and every choice changes both the model and how tight that bound is. This tutorial trains small
VAEs on the 8x8 ``digits`` (17 grey levels, 64 pixels) with each option of
:func:`tractable.vae.build_vae`, through :func:`tractable.runs.train_run` (the Python form of
``tractable train --model vae``), and reads the test likelihood each reaches: an IWAE bound with
:math:`k = 100`, in bits per dimension. Budgets are tiny (600 steps, one hidden layer of 64
units, 16 latent dimensions), so the numbers compare options at equal cost; they are far from
converged.
"""

# %%
# One helper trains a run and returns its test bits/dim
# -----------------------------------------------------
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from tractable.runs import Run, train_run

torch.set_num_threads(1)
root = tempfile.mkdtemp()


def vae_run(name, data="digits", **options):
    start = time.perf_counter()
    out = f"{root}/{name}"
    metrics = train_run(model="vae", data=data, steps=600, out=out, progress=False, plots=False,
                        options={"latent": 16, "hidden": [64], **options})
    seconds = time.perf_counter() - start
    print(f"{name:34s} test {metrics['test_bpd']:.3f} ± {metrics['test_bpd_se']:.3f} bits/dim "
          f"({metrics['test_estimator']}, k = {metrics['test_k']}), {seconds:4.1f} s")
    return out, metrics


# %%
# Priors
# ------
# The standard normal prior is fixed; the others are learned with the model and let the
# aggregate posterior take a shape other than a ball: a mixture of Gaussians (``mog``), the
# VampPrior (Tomczak and Welling 2018: a mixture of the encoder's posteriors at learned
# pseudo-inputs, ``vamp``) and a MAF on the latent space (``flow``). The decoder is a
# discretized logistic, the default for discrete data.
results = {}
for prior in ("normal", "mog", "vamp", "flow"):
    extra = {"pseudo_inputs": 50} if prior == "vamp" else {}  # 50 pseudo-inputs, not 500
    results[f"prior {prior}"] = vae_run(f"prior {prior}", prior=prior, **extra)

# %%
# Decoders
# --------
# The decoder is the likelihood of a pixel given :math:`z`. A discretized logistic puts
# probability mass on the 17 grey levels (the likelihood of the actual discrete data); a
# Gaussian decoder is a density, so the data are dequantized first and its number is a bound on
# the same discrete likelihood (see :doc:`/guide/data`); a Bernoulli decoder models
# *binarized* digits, a different dataset (``digits-binary``: each pixel on with probability
# equal to its intensity), so its bits/dim are not comparable with the other two.
results["decoder gaussian"] = vae_run("decoder gaussian", decoder="gaussian")
results["decoder bernoulli (binary data)"] = vae_run(
    "decoder bernoulli (binary data)", data="digits-binary", decoder="bernoulli"
)

# %%
# Posteriors
# ----------
# A diagonal Gaussian encoder cannot represent a posterior with correlations or several modes,
# and the ELBO pays for the mismatch with :math:`\mathrm{KL}(q(z \mid x)\,\|\,p(z \mid x))`
# (tutorial 5). An inverse autoregressive flow on top of the Gaussian (Kingma et al. 2016,
# ``posterior="iaf"``: cheap to sample, which is all the ELBO needs, see tutorial 2) makes
# :math:`q` richer.
results["posterior iaf"] = vae_run("posterior iaf", posterior="iaf")

names = list(results)
bpd = [results[n][1]["test_bpd"] for n in names]
se = [results[n][1]["test_bpd_se"] for n in names]
fig, ax = plt.subplots(figsize=(8, 3.6))
colors = ["C0"] * 4 + ["C1", "C7", "C2"]
ax.barh(names, bpd, xerr=[2 * s for s in se], color=colors)
ax.invert_yaxis()
ax.set_xlim(min(bpd) - 0.3, max(bpd) + 0.2)
ax.set_xlabel("test bits/dim (IWAE bound, k = 100; ± 2 s.e.)")
ax.set_title("600 steps each on digits 8x8 (grey: binarized data, not comparable)")
fig.tight_layout()

# %%
# Lower is better. At this budget the differences between priors are small next to the effect
# of the decoder, which decides what the likelihood even measures; the printed standard errors
# (over the 179 test images) say which gaps are real. Richer priors and posteriors pay off
# more with longer training and larger latent spaces (Tomczak and Welling 2018; Kingma et al.
# 2016), and cost time per step: compare the seconds printed above.
#
# Posterior collapse, made visible
# --------------------------------
# A latent dimension whose posterior equals the prior for every input, :math:`q(z_j \mid x) =
# p(z_j)`, carries no information about :math:`x`: its KL term is zero and the decoder ignores
# it. Two diagnostics show how many dimensions a trained VAE really uses:
# :func:`tractable.vae.kl_per_dimension` (the ELBO's KL term split over the dimensions) and
# :func:`tractable.vae.active_units` (Burda et al. 2016: a unit is active when the encoder's
# mean for it varies across inputs, :math:`\operatorname{Cov}_x(\mathbb{E}_q[z_j]) > 0.01`).
# ``tractable eval RUN`` prints both for a VAE run; :meth:`tractable.runs.Run.diagnostics`
# returns them. Here for the standard-normal prior with the two decoders on the same data, and
# for a run with a 32-dimensional latent space:
results["latent 32"] = vae_run("latent 32, prior normal", latent=32)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, name in zip(axes, ("prior normal", "decoder gaussian", "latent 32"), strict=True):
    diag = Run.load(results[name][0]).diagnostics("test")
    kl = np.sort(np.asarray(diag["kl_per_dimension"]))[::-1]
    active = diag["active_units"]
    ax.bar(range(len(kl)), kl, color=["C0" if v > 0.01 else "C3" for v in kl])
    ax.set_title(f"{name}: {active} of {diag['latent']} units active", fontsize=10)
    ax.set_xlabel("latent dimension (sorted)")
    print(f"{name:18s} active units {active:2d} of {diag['latent']}; KL per dimension "
          f"(sorted, nats): {' '.join(f'{v:.2f}' for v in kl)}")
axes[0].set_ylabel("KL(q(z_j|x) || p(z_j)), nats")
fig.tight_layout()

# %%
# The bars count how many nats of information about each image each dimension carries. With
# the discretized logistic decoder a few dimensions carry most of it and the rest little; with
# 32 dimensions a larger share sits near zero (the model does not need them, and the ELBO's KL
# term pushes an unneeded dimension to the prior). The Gaussian decoder shows collapse in full:
# every dimension's KL is near zero, so :math:`z` says almost nothing about the image and the
# decoder models the pixels on their own, which is also why its likelihood above is so poor
# (worse than the :math:`\log_2 17 \approx 4.09` bits/dim of a uniform distribution over the
# grey levels). KL warm-up (``-o warmup=N``), a better-suited decoder and richer posteriors are
# the usual remedies; counting active units on a trained run is how to check.
#
# What to take away
# -----------------
# * The decoder defines the likelihood (mass on a grid, a density on dequantized data, or a
#   model of other data altogether): compare bits/dim only between models of the same data.
# * Learned priors and flow posteriors make the bound tighter and the model richer, at a cost
#   in time per step.
# * ``kl_per_dimension`` and ``active_units`` tell how much of the latent space is in use.

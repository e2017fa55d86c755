r"""
1. Flexibility against tractability
===================================

A density model is useful when three things are cheap: evaluating :math:`p(x)` exactly, drawing
samples, and fitting it. The simplest models make all three trivial and fit the data badly; the
most flexible ones give something up. This tutorial fits three models with an exact density to
the same 2-D data and measures what each costs and buys:

* a single Gaussian, :class:`tractable.flows.Gaussian` (``--model gaussian``): closed-form
  density and sampling, one mode;
* a mixture of eight Gaussians, :class:`tractable.flows.GaussianMixture` (``--model mixture``):
  an exact density with as many modes as components, no closed-form fit;
* a neural spline flow, :class:`tractable.flows.NSF`: an invertible network that bends a
  Gaussian into the data (Durkan et al. 2019).

All three implement the same protocol, so the same training loop, the same
:meth:`~tractable.flows.Flow.estimate` and the same :meth:`~tractable.flows.Flow.sample` serve
them all.
"""

# %%
# The data and one training loop
# ------------------------------
# ``moons`` is two interleaving half-moons: curved, bimodal and thin, everything a Gaussian is
# not. Every model is fitted by maximum likelihood, :math:`\min_\theta -\frac1N \sum_i \log
# p_\theta(x_i)`, with Adam on minibatches of 256, which is what
# :meth:`~tractable.flows.Flow.loss` returns.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import tractable as tr

torch.set_num_threads(1)
torch.manual_seed(0)
ds = tr.data.load("moons", seed=0)
print(f"moons: {len(ds.train)} train, {len(ds.val)} val, {len(ds.test)} test points")


def train(model, steps, lr=5e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for _ in range(steps):
        batch = ds.train[torch.randint(len(ds.train), (256,), generator=g)]
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


models = {
    "Gaussian": tr.flows.Gaussian(2),
    "mixture (K = 8)": tr.flows.GaussianMixture(2, components=8),
    "spline flow": tr.flows.NSF(2, transforms=3, hidden=(32, 32)),
}
steps = {"Gaussian": 300, "mixture (K = 8)": 600, "spline flow": 600}
for name, model in models.items():
    seconds = train(model, steps[name])
    params = sum(p.numel() for p in model.parameters())
    print(f"{name:16s} {params:6d} parameters, {steps[name]} steps in {seconds:5.1f} s")

# %%
# Exact test log-likelihoods
# --------------------------
# All three densities are exact, so the test NLL is an average of exact numbers; the ± is the
# standard error over the 5,000 test points, not an estimator's noise.
# :meth:`~tractable.flows.Flow.estimate` returns an :class:`~tractable.estimators.Estimate`
# whose ``kind`` says so.
for name, model in models.items():
    with torch.no_grad():
        est = model.estimate(ds.test)
    print(f"{name:16s} test NLL {-est.mean:.3f} ± {est.se:.3f} nats ({est.kind})")

# %%
# The lower the better, and the gaps are many standard errors wide. The Gaussian puts one
# ellipse over both moons; eight components tile the moons with blobs; the flow follows their
# curves. The densities, on a grid, with the test points:
lo, hi = (-3.0, -2.0), (3.0, 2.0)
gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 150))
grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
for ax, (name, model) in zip(axes, models.items(), strict=True):
    with torch.no_grad():
        density = model.log_prob(grid).exp().reshape(gx.shape)
    ax.pcolormesh(gx, gy, density.numpy(), cmap="viridis", shading="auto")
    ax.scatter(*ds.test[:300].T, s=1.5, c="white", alpha=0.5)
    ax.set_title(name)
    ax.set_aspect("equal")
fig.suptitle("exact densities p(x) and test points")
fig.tight_layout()

# %%
# Sampling and density evaluation: what they cost
# ------------------------------------------------
# Exactness is not the whole story: a model is used by evaluating it and by sampling from it.
# Here both are timed on 20,000 points (the best of three runs, one thread).


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            fn()
        times.append(time.perf_counter() - start)
    return min(times)


n = 20_000
x_eval = ds.train[torch.randint(len(ds.train), (n,))]
for name, model in models.items():
    t_sample = best_time(lambda m=model: m.sample(n))
    t_density = best_time(lambda m=model: m.log_prob(x_eval))
    print(f"{name:16s} sample {1e6 * t_sample / n:6.2f} µs/point, "
          f"log_prob {1e6 * t_density / n:6.2f} µs/point")

# %%
# The Gaussian and the mixture sample and evaluate in a few matrix products: well under a
# microsecond per point. The flow runs its networks through three layers, a hundred times
# slower. Its autoregressive spline layers evaluate the density in one pass but invert one
# dimension at a time; in two dimensions that is only two passes, so here sampling and density
# cost about the same. In :math:`D` dimensions sampling takes :math:`D` passes: the subject of
# the next tutorial.
#
# Anomaly detection by likelihood
# -------------------------------
# A density scores how typical a point is, so a low :math:`\log p(x)` can flag anomalies. The
# normal points are the test split; the anomalies are drawn uniformly over the box around the
# data (some of them land on a moon by chance, so even the true density would not separate
# them perfectly). The score is :math:`-\log p(x)` and the measure is the AUROC: the
# probability that a random anomaly scores above a random normal point
# (:func:`tractable.metrics.auroc`; ``tractable score RUN --data FILE --labels-column C`` does
# the same for a trained run, see :doc:`/guide/evaluation`).
g = torch.Generator().manual_seed(2)
anomalies = torch.rand(len(ds.test), 2, generator=g) * torch.tensor([6.0, 4.0]) + torch.tensor(lo)
points = torch.cat([ds.test, anomalies])
labels = np.r_[np.zeros(len(ds.test)), np.ones(len(anomalies))]
aurocs = {}
for name, model in models.items():
    with torch.no_grad():
        score = -model.log_prob(points)
    aurocs[name] = tr.metrics.auroc(score.numpy(), labels)
    flagged = (score[len(ds.test):] > torch.quantile(score[: len(ds.test)], 0.95)).float().mean()
    print(f"{name:16s} AUROC {aurocs[name]:.3f}; at a 5% false-alarm rate it flags "
          f"{100 * float(flagged):.0f}% of the anomalies")

# %%
# The better the density fits, the better it separates: the Gaussian's one broad ellipse
# covers the empty space between the moons and gives many anomalies a high likelihood, while
# the mixture and the flow put their mass where the data are. Likelihood is not always a good
# anomaly score (Nalisnick et al. 2019 found flows giving higher likelihood to some
# out-of-distribution image sets); measure the AUROC on a labelled sample before trusting it.
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(aurocs), list(aurocs.values()), color=["#999999", "#4c72b0", "#dd8452"])
ax.set_ylim(0.5, 1.0)
ax.set_ylabel("AUROC")
ax.set_title("uniform anomalies against moons test points")
fig.tight_layout()

# %%
# What to take away
# -----------------
# * All three models have an exact :math:`\log p(x)`; flexibility is what differs, and it shows
#   in the test NLL, in the pictures and in the AUROC.
# * Flexibility costs: parameters, training steps, and time per sample or per density
#   evaluation. A mixture is a strong baseline in two dimensions and a poor one in a hundred
#   (the number of components needed grows quickly with the dimension); flows scale.
# * The same comparison from the command line: ``tractable train --model gaussian --data moons``,
#   ``--model mixture`` and ``--model nsf``, then ``tractable compare`` on the three runs.

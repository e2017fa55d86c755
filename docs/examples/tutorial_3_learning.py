r"""
3. Learning: what "best" means
==============================

Fitting a model means minimising a divergence between the data's distribution :math:`p` and the
model :math:`q`, and the choice of divergence decides which :math:`q` is "best" whenever the
model cannot match :math:`p` exactly. This tutorial fits the same models to a bimodal target by
the two directions of the KL divergence, measures the fits with other divergences (Jensen-Shannon
and Wasserstein), trains the four families of generative models on one dataset, and compares
three optimisers on one model.
"""

# %%
# Forward and reverse KL on a bimodal target
# ------------------------------------------
# The target is two Gaussians six units apart (:func:`tractable.variational.target` with
# ``"mixture"``), known only up to a constant: :math:`\log \tilde p = \log p + \log Z`. Two
# ways to fit :math:`q`:
#
# * **forward KL**, :math:`\mathrm{KL}(p\,\|\,q) = \mathbb{E}_p[\log p - \log q]`: needs draws
#   from :math:`p`, and is minimised by maximum likelihood on them. Where :math:`p` has mass and
#   :math:`q` has none the integrand is infinite, so :math:`q` must *cover* every mode.
# * **reverse KL**, :math:`\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q - \log \tilde p] +
#   \log Z`: needs only :math:`\log \tilde p` and draws from :math:`q`
#   (:func:`tractable.fit_reverse_kl`). Where :math:`q` has no mass nothing is paid, so
#   :math:`q` may *seek* one mode and ignore the other.
#
# Each direction fits a single Gaussian (:class:`tractable.flows.Gaussian`), which cannot
# represent two modes, and a small RealNVP flow, which can.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import tractable as tr
import tractable.flow_matching
from tractable.train import TrainConfig, fit

torch.set_num_threads(1)
torch.manual_seed(0)
target = tr.variational.target("mixture")
print(f"target modes {target.modes.tolist()}, log Z = {target.log_z}")


def forward_kl_fit(q, steps, lr):
    data = target.sample(20_000)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    for _ in range(steps):
        loss = q.loss(data[torch.randint(len(data), (256,), generator=g)])  # -mean log q
        opt.zero_grad()
        loss.backward()
        opt.step()
    return q


def mode_mass(q, n=20_000):
    with torch.no_grad():
        x = q.sample(n)
    left = float((x[:, 0] < 0).float().mean())
    return left, 1 - left


torch.manual_seed(1)
fits = {
    ("forward KL", "Gaussian"): forward_kl_fit(tr.flows.Gaussian(2), 400, 0.05),
    ("forward KL", "RealNVP"): forward_kl_fit(
        tr.flows.RealNVP(2, transforms=4, hidden=(32, 32)), 600, 3e-3
    ),
}
reverse = {}
for name, q, steps, lr in (
    ("Gaussian", tr.flows.Gaussian(2), 400, 0.05),
    ("RealNVP", tr.flows.RealNVP(2, transforms=4, hidden=(32, 32)), 600, 3e-3),
):
    reverse[name] = tr.fit_reverse_kl(q, target, steps=steps, lr=lr, seed=0, progress=False)
    fits[("reverse KL", name)] = q

rows = {}
for (direction, name), q in fits.items():
    left, right = mode_mass(q)
    z = tr.variational.estimate_log_z(q, target, n=10_000, seed=1)
    rows[(direction, name)] = (left, right, z)
    print(f"{direction} {name}: mass {left:.3f} | {right:.3f}; ELBO {z.elbo:.3f} ± {z.elbo_se:.3f};"
          f" log Z {z.log_z:.3f} ± {z.log_z_se:.3f}; ESS {100 * z.ess_fraction:.0f}%")

# %%
# The Gaussians show the textbook picture. Fitted by the forward KL, the Gaussian covers both
# modes (half its mass on each side) by becoming one broad ellipse centred in the empty gap;
# fitted by the reverse KL, it sits on one mode with all its mass. Its ELBO,
# :math:`\log Z - \mathrm{KL}(q\,\|\,p)`, is then :math:`\log Z - \log 2 \approx -1.69`: half of
# :math:`p` is never visited, and the importance-sampled :math:`\log Z` cannot see the missing
# mode either, however many draws it takes (its standard error is tiny and the true value is
# :math:`-1`). The broad forward-KL Gaussian has a much worse ELBO (its draws land in the gap),
# but because it covers both modes its importance weights find the right :math:`\log Z`.
#
# The flow can represent both modes. By maximum likelihood it does, with about half its mass
# on each. By the reverse KL it reaches both here too, but unevenly, with a worse ELBO, and an
# importance-sampled :math:`\log Z` that misses the truth by more than its standard error:
# mode seeking is a tendency of the reverse KL (it never pays for mass :math:`q` does not
# place), not a law; a flexible :math:`q` whose first draws already straddle both modes can
# keep them.
gx, gy = np.meshgrid(np.linspace(-6, 6, 160), np.linspace(-3, 3, 80))
grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
fig, axes = plt.subplots(2, 2, figsize=(11, 5.5), sharex=True, sharey=True)
with torch.no_grad():
    p_true = target.log_density(grid).sub(target.log_z).exp().reshape(gx.shape).numpy()
for ax, ((direction, name), q) in zip(axes.T.ravel(), fits.items(), strict=True):
    with torch.no_grad():
        dens = q.log_prob(grid).exp().reshape(gx.shape).numpy()
    ax.contourf(gx, gy, dens, levels=12, cmap="Blues")
    ax.contour(gx, gy, p_true, levels=4, colors="red", linewidths=0.8)
    left, right, z = rows[(direction, name)]
    ax.set_title(f"{direction}, {name}: mass {left:.2f} | {right:.2f}, "
                 f"ELBO {z.elbo:.2f}", fontsize=9)
    ax.set_aspect("equal")
fig.suptitle("q (blue) against the target p (red): forward KL covers, reverse KL seeks a mode")
fig.tight_layout()

# %%
# The reverse-KL fits as :func:`~tractable.fit_reverse_kl` reports them (ELBO, importance-sampled
# :math:`\log Z` with its standard error, effective sample size); the same from the command
# line is ``tractable fit --target mixture``:
for name, result in reverse.items():
    print(f"{name}: {result.summary()}")

# %%
# Other yardsticks: Jensen-Shannon and Wasserstein
# ------------------------------------------------
# The KL divergences are not symmetric, and they are infinite when one distribution has mass
# where the other has none. The Jensen-Shannon divergence (the KL of each to their average; at
# most :math:`\log 2`) and the Wasserstein distance (the cost of moving one distribution's mass
# onto the other, finite for any two distributions) weigh the same fits differently.
# :func:`tractable.metrics.grid_divergences` computes KL both ways and JS on a grid;
# :func:`tractable.metrics.wasserstein` the exact :math:`W_1` between samples.
p_samples = target.sample(2000)
print("fit                   KL(p||q)  KL(q||p)    JS     W1")
for (direction, name), q in fits.items():
    div = tr.metrics.grid_divergences(
        lambda x: target.log_density(x.float()), lambda x, q=q: q.log_prob(x.float()),
        bounds=((-7, 7), (-4, 4)), resolution=200,
    )
    with torch.no_grad():
        w1 = tr.metrics.wasserstein(p_samples.numpy(), q.sample(2000).numpy())
    print(f"{direction:10s} {name:8s}  {div.kl_pq:7.3f}  {div.kl_qp:7.3f}  {div.js:6.3f}"
          f"  {w1:5.2f}")

# %%
# Among the Gaussians, each fit wins on the divergence it minimised: the forward-KL Gaussian
# has the smaller :math:`\mathrm{KL}(p\,\|\,q)`, the reverse-KL one the smaller
# :math:`\mathrm{KL}(q\,\|\,p)` (exactly :math:`\log 2`) and an enormous
# :math:`\mathrm{KL}(p\,\|\,q)`. :math:`W_1` sees the one-mode fit as moving half the mass six
# units (about 3). JS (bounded, symmetric) and :math:`W_1` both rank the maximum-likelihood
# flow best.
#
# The four families on one dataset
# --------------------------------
# A flow (maximum likelihood, exact density), a VAE (maximises the ELBO, a bound), a GAN
# (an adversarial game, no density at all) and flow matching (regresses a velocity field; an
# exact density through an ODE) on ``8gaussians``, each with a tiny budget of 600 steps of
# 256 through the same trainer, :func:`tractable.train.fit`, which asks each model only for
# the protocol (a GAN says it has two optimisers; the trainer does not ask its name).
ds = tr.data.load("8gaussians", seed=0)
train, val = ds.preprocess.eval(ds.train)[0], ds.preprocess.eval(ds.val)[0]
test = ds.preprocess.eval(ds.test)[0]
models = {
    "flow (NSF)": tr.flows.NSF(2, transforms=3, hidden=(32, 32)),
    "VAE": tr.vae.build_vae(2, latent=2, hidden=(64, 64), decoder="gaussian"),
    "GAN": tr.gan.build_gan(2, loss="hinge", hidden=(64, 64)),
    "flow matching": tr.flow_matching.build_flow_matching(2, hidden=(64, 64)),
}
modes = ds.preprocess.eval(torch.as_tensor(tr.data.toy_modes("8gaussians")).float())[0]
std = 0.35  # the toy's mode width; its preprocessing leaves the coordinates as they are
samples = {}
for name, model in models.items():
    torch.manual_seed(0)
    cfg = TrainConfig(steps=600, batch_size=256, lr=3e-3, eval_every=600, seed=0)
    start = time.perf_counter()
    fit(model, train, val, cfg, progress=False)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        samples[name] = model.sample(2000)
        nll = -model.estimate(test[:500]).mean if model.likelihood != "none" else float("nan")
    cov = tr.metrics.mode_coverage(samples[name].numpy(), modes.numpy(), std=std)
    w1 = tr.metrics.wasserstein(test.numpy(), samples[name].numpy())
    print(f"{name:14s} {seconds:5.1f} s: test NLL {nll:6.3f} ({model.likelihood}), "
          f"modes {cov.modes_captured}/8, high-quality {cov.fraction_high_quality:.2f}, "
          f"W1 {w1:.3f}")

fig, axes = plt.subplots(1, 5, figsize=(15, 3.2), sharex=True, sharey=True)
axes[0].scatter(*test[:2000].T, s=1, alpha=0.4)
axes[0].set_title("data (test)")
for ax, (name, x) in zip(axes[1:], samples.items(), strict=True):
    ax.scatter(*x.T, s=1, alpha=0.4, color="C1")
    ax.set_title(name)
for ax in axes:
    ax.set_aspect("equal")
fig.tight_layout()

# %%
# The NLL column is exact for the flow and flow matching, a bound (the ELBO's) for the VAE, and
# absent for the GAN, which can only be judged by its samples: how many of the eight modes they
# hit, what fraction lands within three standard deviations of a mode, and the Wasserstein
# distance to the test set. With budgets this small the families show their habits: the flow
# traces the eight blobs; flow matching finds all eight, a little more diffusely; the VAE with a
# Gaussian decoder finds them but smears samples between them (a lower fraction of
# high-quality samples, and its NLL is only a bound); the GAN, after 600 steps, covers only a
# few modes and lands most samples off them. Adversarial training needs far more steps (the
# README's hinge GAN reaches 8 of 8 modes in 8,000), and its progress cannot be read off a
# likelihood.
#
# SGD, momentum and Adam on the same model
# ----------------------------------------
# The last choice is the optimiser. The same RealNVP on ``moons``, the same batches, 300 steps:
moons = tr.data.load("moons", seed=0)
moons_train = moons.preprocess.eval(moons.train)[0]
curves = {}
for name, make in (
    ("SGD (lr 0.01)", lambda p: torch.optim.SGD(p, lr=0.01)),
    ("SGD + momentum 0.9", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    ("Adam (lr 0.003)", lambda p: torch.optim.Adam(p, lr=3e-3)),
):
    torch.manual_seed(0)
    flow = tr.flows.RealNVP(2, transforms=4, hidden=(32, 32))
    opt = make(flow.parameters())
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        loss = flow.loss(moons_train[torch.randint(len(moons_train), (256,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    curves[name] = losses
    print(f"{name:20s} mean loss of the last 50 steps {np.mean(losses[-50:]):.3f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
for name, losses in curves.items():
    smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
    ax.plot(smooth, label=name)
ax.set_xlabel("step")
ax.set_ylabel("training NLL (nats, 10-step mean)")
ax.legend()
fig.tight_layout()

# %%
# Plain SGD moves slowly along the flat directions of the loss; momentum accumulates a velocity
# along them and gets further in the same steps; Adam rescales each parameter's step by its
# recent gradient size and is fastest here, which is why it is the trainer's default
# (``-t optimizer=sgd -t momentum=0.9`` selects the others on the command line).

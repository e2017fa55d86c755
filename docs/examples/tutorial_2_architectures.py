r"""
2. Flow architectures and their Jacobians
=========================================

A normalizing flow maps data :math:`x` to noise :math:`z = f(x)` with an invertible :math:`f`
and reads the density off the change of variables,

.. math:: \log p(x) = \log p_Z(f(x)) + \log \left| \det \frac{\partial f}{\partial x} \right| .

The determinant of a general :math:`D \times D` Jacobian costs :math:`O(D^3)`. Every flow
architecture is a way of making it cheap by giving the Jacobian a structure, and the structure
decides which direction (density or sampling) is fast. This tutorial draws the Jacobians of one
layer of each family, times both directions of MAF and IAF, and fits coupling, autoregressive
and spline flows to the same data.
"""

# %%
# The Jacobian of one layer, as a picture
# ---------------------------------------
# :func:`torch.autograd.functional.jacobian` computes :math:`\partial f / \partial x` of one
# transform at one point in :math:`D = 8`. The layers come from the builders
# (:class:`~tractable.flows.MAF`, :class:`~tractable.flows.RealNVP`,
# :class:`~tractable.flows.NSF`, :class:`~tractable.continuous.FFJORD`): ``flow.layers`` is the
# composition and ``flow.layers.transforms[i]`` its layers. Several builders start each
# layer at the identity (a zero-initialised last layer of the conditioner), whose Jacobian is
# the identity matrix; to show the structure a trained layer has, every parameter is first
# given a random value of scale 0.3.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from torch.autograd.functional import jacobian

import tractable as tr

torch.set_num_threads(1)
torch.manual_seed(0)
D = 8


def randomised(module, scale=0.3):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn_like(p))
    return module


def layer_jacobian(transform, x):
    return jacobian(lambda v: transform(v[None])[0][0], x)


x0 = torch.randn(D)
cnf = randomised(tr.continuous.FFJORD(D, hidden=(32,), solver="rk4", steps=8))
layers = {
    "MAF layer\n(autoregressive)": randomised(tr.flows.MAF(D, transforms=1)).layers.transforms[0],
    "RealNVP layer\n(affine coupling)": randomised(
        tr.flows.RealNVP(D, transforms=1)
    ).layers.transforms[0],
    # NSF's coupling variant puts an LU-parameterised linear map before each coupling layer
    "NSF layer\n(spline coupling)": randomised(
        tr.flows.NSF(D, transforms=1, variant="coupling")
    ).layers.transforms[1],
    "FFJORD\n(continuous time)": lambda v: cnf.transform(v),
}
jacobians = {name: layer_jacobian(t, x0) for name, t in layers.items()}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.9), layout="constrained")
cmap = plt.get_cmap("viridis").copy()
cmap.set_bad("white")  # entries that are exactly zero
for ax, (name, J) in zip(axes, jacobians.items(), strict=True):
    magnitude = np.ma.masked_equal(J.abs().numpy(), 0.0)
    image = ax.imshow(magnitude, cmap=cmap, norm=LogNorm(vmin=1e-4, vmax=10))
    ax.set_title(name, fontsize=10)
    ax.set_xlabel(r"input $x_j$")
    ax.set_xticks(range(D))
    ax.set_yticks(range(D))
axes[0].set_ylabel(r"output $z_i$")
fig.colorbar(image, ax=axes, shrink=0.8, label=r"$|\partial z_i / \partial x_j|$")
fig.suptitle(r"The Jacobian of one layer, D = 8 (white: exactly zero; colour: log scale)")

for name, J in jacobians.items():
    zeros = int((J == 0).sum())
    print(f"{name.replace(chr(10), ' '):36s} zero entries: {zeros:2d} of {D * D}, "
          f"log|det J| = {torch.linalg.slogdet(J)[1]:+.4f}")

# %%
# What the pictures say:
#
# * **Autoregressive** (MAF, Papamakarios et al. 2017): :math:`z_i` depends on :math:`x_{1..i}`
#   only, so the Jacobian is lower triangular and its log-determinant is the sum of the log
#   diagonal, :math:`O(D)`.
# * **Coupling** (RealNVP, Dinh et al. 2017): the first half passes through unchanged (an
#   identity block) and conditions an elementwise map of the second half; the Jacobian is block
#   triangular with a diagonal lower-right block. Splines (NSF, Durkan et al. 2019) keep the
#   same pattern with a more flexible elementwise map.
# * **Continuous time** (FFJORD, Grathwohl et al. 2019): the flow of an ODE mixes every
#   coordinate, so its Jacobian is dense; its log-determinant is the integral of the trace of
#   the field's Jacobian, :math:`-\int \operatorname{tr}(\partial f / \partial z)\,dt`, which
#   the solver integrates alongside :math:`z` (exactly here; by Hutchinson's estimator in
#   training).
#
# Stacking layers with permutations between them makes the whole flow's Jacobian dense too,
# while its log-determinant stays a sum of cheap per-layer terms:
maf = randomised(tr.flows.MAF(D, transforms=3))
J = jacobian(lambda v: maf.transform(v[None])[0][0], x0)
print(f"3-layer MAF: zero entries {int((J == 0).sum())} of {D * D}")

# %%
# MAF against IAF: which direction is cheap
# -----------------------------------------
# An autoregressive layer computes all of :math:`z` from :math:`x` in one pass of its MADE
# network, because :math:`x` is known. Going back, :math:`x_i` needs :math:`x_{1..i-1}` first:
# :math:`D` passes, one per dimension. MAF puts the cheap direction on density evaluation
# (training by maximum likelihood is fast, sampling slow); IAF (Kingma et al. 2016) is the same
# layer inverted, cheap to sample and slow to evaluate on data it did not generate. Timed in
# :math:`D = 16` on 2,000 points:
D16, n = 16, 2000
x16 = torch.randn(n, D16)
flows = {
    "MAF": tr.flows.MAF(D16, transforms=3, hidden=(64, 64)),
    "IAF": tr.flows.IAF(D16, transforms=3, hidden=(64, 64)),
}


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            fn()
        times.append(time.perf_counter() - start)
    return min(times)


timings = {}
for name, flow in flows.items():
    density = best_time(lambda f=flow: f.log_prob(x16))
    sampling = best_time(lambda f=flow: f.sample(n))
    timings[name] = (density, sampling)
    ratio = max(density, sampling) / min(density, sampling)
    slow = "sampling" if sampling > density else "density"
    print(f"{name}: log_prob {1e3 * density:7.1f} ms, sample {1e3 * sampling:7.1f} ms "
          f"({slow} {ratio:.0f}x slower)")

fig, ax = plt.subplots(figsize=(6, 3))
pos = np.arange(2)
ax.bar(pos - 0.2, [1e3 * timings[k][0] for k in flows], 0.4, label="log_prob (density)")
ax.bar(pos + 0.2, [1e3 * timings[k][1] for k in flows], 0.4, label="sample")
ax.set_xticks(pos, list(flows))
ax.set_ylabel(f"ms for {n} points, D = {D16}")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()

# %%
# Each direction is fast for one model and much slower for the other: the slow direction runs
# each layer's network :math:`D = 16` times instead of once, so the ratio is of the order of
# :math:`D` (the exact figure moves with the machine's load, as each pass also pays a fixed
# overhead).
# Coupling layers have no slow direction (both are one pass), at the price of leaving half the
# coordinates unchanged in each
# layer; that is why coupling flows (RealNVP, Glow) are used where both directions matter.
#
# Coupling, autoregressive and splines on the same data
# -----------------------------------------------------
# Same budget for each (500 steps of 256, Adam at 5e-3) on ``checkerboard``, whose sharp-edged
# squares are hard for smooth affine maps. Splines, monotone rational-quadratic maps with
# learned knots, bend more per layer.
ds = tr.data.load("checkerboard", seed=0)
fits = {
    "RealNVP (affine coupling)": tr.flows.RealNVP(2, transforms=4, hidden=(32, 32)),
    "MAF (affine autoregressive)": tr.flows.MAF(2, transforms=4, hidden=(32, 32)),
    "NSF (spline autoregressive)": tr.flows.NSF(2, transforms=2, hidden=(32, 32)),
}
g = torch.Generator().manual_seed(1)
results = {}
for name, flow in fits.items():
    opt = torch.optim.Adam(flow.parameters(), lr=5e-3)
    start = time.perf_counter()
    for _ in range(500):
        loss = flow.loss(ds.train[torch.randint(len(ds.train), (256,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        est = flow.estimate(ds.test)
    results[name] = -est.mean
    params = sum(p.numel() for p in flow.parameters())
    print(f"{name:28s} {params:6d} params, {seconds:4.1f} s: "
          f"test NLL {-est.mean:.3f} ± {est.se:.3f}")

gx, gy = np.meshgrid(np.linspace(-4, 4, 120), np.linspace(-4, 4, 120))
grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, flow) in zip(axes, fits.items(), strict=True):
    with torch.no_grad():
        ax.pcolormesh(gx, gy, flow.log_prob(grid).exp().reshape(gx.shape).numpy(), shading="auto")
    ax.set_title(f"{name}\nNLL {results[name]:.3f}", fontsize=10)
    ax.set_aspect("equal")
fig.tight_layout()

# %%
# A uniform density on the eight squares (area 32) would score :math:`\log 32 \approx 3.47`
# nats; the models approach it from above. With two layers the spline flow, whose elementwise
# maps are piecewise, reaches the sharpest edges; the affine flows need more layers and steps
# for the same picture.
#
# Continuous time: exact density at the price of an ODE solve
# -----------------------------------------------------------
# A continuous normalizing flow has no structural constraint on its network at all: any field
# :math:`\dot z = g(z, t)` gives an invertible map. Its cost is counted in function evaluations
# (NFE) of the adaptive solver, which grow as the field gets more complex during training
# (:func:`tractable.continuous.total_nfe` counts them).
ffjord = tr.continuous.FFJORD(2, hidden=(32, 32))
tr.continuous.reset_nfe(ffjord)
start = time.perf_counter()
with torch.no_grad():
    ffjord.log_prob(ds.test[:500])
t_density = time.perf_counter() - start
nfe = tr.continuous.total_nfe(ffjord)["forward"]
print(f"FFJORD (untrained, dopri5): log_prob of 500 points in {1e3 * t_density:.0f} ms, "
      f"{nfe} function evaluations")

# %%
# What to take away
# -----------------
# * The Jacobian's structure *is* the architecture: triangular (autoregressive), block
#   triangular (coupling), free (continuous time, paid for with an ODE solve).
# * Autoregressive flows are fast in one direction and :math:`D` times slower in the other:
#   MAF for density estimation, IAF for sampling and for variational posteriors (tutorial 4).
# * Splines buy flexibility per layer; coupling buys speed in both directions.

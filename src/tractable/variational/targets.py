r"""Unnormalised target densities :math:`\tilde p(x) = Z\, p(x)` for variational fitting.

Each factory returns a :class:`Target`: ``log_density(x)`` maps ``(N, D)`` to ``(N,)`` values
of :math:`\log \tilde p(x)`, ``dim`` is :math:`D`, ``log_z`` is :math:`\log Z` when it is known
(in closed form, or by quadrature for the 2-D energies; ``None`` otherwise), and the targets with
an exact sampler (Gaussian, mixture, funnel) offer ``sample(n)``, so that a reverse-KL fit
(which needs only :math:`\log\tilde p`) can be set beside a forward-KL fit (which needs samples).
A :class:`Target` is itself callable, ``target(x) == target.log_density(x)``, so it can be passed
to :func:`tractable.variational.fit_reverse_kl` as is.

* ``u1`` ... ``u4``: the four 2-D energies of Rezende and Mohamed (2015, "Variational Inference
  with Normalizing Flows", Table 1), :math:`\tilde p(z) = e^{-U(z)}`;
* ``funnel``: Neal's funnel (Neal 2003, "Slice sampling", Annals of Statistics 31(3)),
  normalised, :math:`\log Z = 0`;
* ``gaussian``: :math:`\mathcal{N}(\mu, \Sigma)` times :math:`e^{c}`, so :math:`\log Z = c`;
* ``mixture``: two Gaussians, :math:`\log Z = c` again; the classic picture of reverse KL
  picking one mode while forward KL covers both (Bishop 2006, "Pattern Recognition and Machine
  Learning", section 10.1.2 and Figure 10.3).

Example:
    >>> t = target("u1")
    >>> t.dim, t.log_density(torch.tensor([[2.0, 0.0]])).shape, round(t.log_z, 3)
    (2, torch.Size([1]), 1.878)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..checks import check_event, check_positive_int

LogDensity = Callable[[Tensor], Tensor]
Extent = tuple[float, float, float, float]
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True, eq=False)
class Target:
    r"""An unnormalised density on :math:`\mathbb{R}^D` (see the module notes).

    Attributes:
        name: the name it has in :data:`TARGETS`.
        dim: the dimension :math:`D`.
        fn: :math:`\log \tilde p` on checked rows, ``(N, D) -> (N,)``.
        log_z: :math:`\log Z = \log \int \tilde p`, or ``None`` when not known.
        sampler: ``n -> (n, D)`` exact draws from :math:`p`, or ``None``.
        extent: ``(x0, x1, y0, y1)``, a box that holds nearly all the mass of a 2-D target
            (where plots look), or ``None``.
        modes: ``(K, D)`` locations of the modes when the target is a mixture, else ``None``.
        description: one line saying what it is and where it comes from.
    """

    name: str
    dim: int
    fn: LogDensity
    log_z: float | None = None
    sampler: Callable[[int], Tensor] | None = None
    extent: Extent | None = None
    modes: Tensor | None = None
    description: str = ""

    def log_density(self, x: Tensor) -> Tensor:
        r""":math:`\log \tilde p(x)` of each row: ``(N, D) -> (N,)``."""
        # non-finite rows pass through (a fit skips the step whose loss they spoil)
        return self.fn(check_event(x, "x", (self.dim,), finite=False))

    def __call__(self, x: Tensor) -> Tensor:
        return self.log_density(x)

    @property
    def has_sampler(self) -> bool:
        return self.sampler is not None

    def sample(self, n: int) -> Tensor:
        r"""``n`` exact draws ``(n, D)`` from the normalised target (the global torch RNG)."""
        if self.sampler is None:
            raise ValueError(
                f"target: {self.name!r} has no exact sampler; the targets with one are "
                f"{', '.join(_SAMPLERS)}"
            )
        check_positive_int(n, "n")
        return self.sampler(n)

    def __repr__(self) -> str:
        log_z = "unknown" if self.log_z is None else f"{self.log_z:.6g}"
        return f"Target({self.name!r}, dim={self.dim}, log_z={log_z})"


# -- the energies of Rezende and Mohamed (2015, Table 1) -------------------------------------------
def _w1(z: Tensor) -> Tensor:
    return torch.sin(0.5 * math.pi * z[:, 0])


def _w2(z: Tensor) -> Tensor:
    return 3.0 * torch.exp(-0.5 * ((z[:, 0] - 1.0) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3.0 * torch.sigmoid((z[:, 0] - 1.0) / 0.3)


def _log_gauss_bump(u: Tensor, width: float) -> Tensor:
    r""":math:`-\tfrac12 (u / w)^2`, the log of an unnormalised Gaussian bump."""
    return -0.5 * (u / width) ** 2


def _u1(z: Tensor) -> Tensor:
    ring = 0.5 * ((torch.linalg.vector_norm(z, dim=1) - 2.0) / 0.4) ** 2
    sides = torch.logaddexp(
        _log_gauss_bump(z[:, 0] - 2.0, 0.6), _log_gauss_bump(z[:, 0] + 2.0, 0.6)
    )
    return ring - sides


def _u2(z: Tensor) -> Tensor:
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def _u3(z: Tensor) -> Tensor:
    a = z[:, 1] - _w1(z)
    return -torch.logaddexp(_log_gauss_bump(a, 0.35), _log_gauss_bump(a + _w2(z), 0.35))


def _u4(z: Tensor) -> Tensor:
    a = z[:, 1] - _w1(z)
    return -torch.logaddexp(_log_gauss_bump(a, 0.4), _log_gauss_bump(a + _w3(z), 0.35))


_ENERGIES = {"u1": _u1, "u2": _u2, "u3": _u3, "u4": _u4}
# boxes holding all but a negligible part of the mass (8 widths beyond every feature)
_QUADRATURE_BOX = {"u1": (-6.0, 6.0, -6.0, 6.0), "u2": (-8.0, 8.0, -5.0, 5.0),
                   "u3": (-8.0, 8.0, -7.5, 5.0), "u4": (-8.0, 8.0, -7.5, 5.0)}  # fmt: skip


def _wall(bound: float | None) -> Callable[[Tensor], Tensor]:
    r"""The confining term :math:`\tfrac12(\max(0, |z_1| - b) / 0.4)^2` (zero inside the box)."""
    if bound is None:
        return lambda z: z.new_zeros(z.shape[0])
    return lambda z: 0.5 * (F.relu(z[:, 0].abs() - bound) / 0.4) ** 2


@functools.lru_cache(maxsize=16)
def _quadrature_log_z(name: str, bound: float | None, step: float = 0.02) -> float:
    r""":math:`\log \int e^{-U}` by the trapezoidal rule on a float64 grid of spacing ``step``
    over a box outside which the mass is below :math:`e^{-30}` of the total (the rule converges
    faster than any power of ``step`` for such smooth, fast-decaying integrands)."""
    energy, wall = _ENERGIES[name], _wall(bound)
    x0, x1, y0, y1 = _QUADRATURE_BOX[name]
    if bound is not None:
        x0, x1 = -(bound + 4.0), bound + 4.0
    gx = torch.arange(x0, x1 + step / 2, step, dtype=torch.float64)
    gy = torch.arange(y0, y1 + step / 2, step, dtype=torch.float64)
    wx = torch.full_like(gx, step)
    wx[[0, -1]] = step / 2
    wy = torch.full_like(gy, step)
    wy[[0, -1]] = step / 2
    terms = []
    for row, w_row in zip(gx.split(256), wx.split(256), strict=True):
        z = torch.stack(torch.meshgrid(row, gy, indexing="ij"), -1).reshape(-1, 2)
        log_f = -(energy(z) + wall(z)).reshape(row.shape[0], gy.shape[0])
        terms.append(torch.logsumexp(log_f + w_row.log()[:, None] + wy.log()[None, :], (0, 1)))
    return float(torch.logsumexp(torch.stack(terms), 0))


def _energy_target(name: str, bound: float | None, what: str) -> Target:
    energy, wall = _ENERGIES[name], _wall(bound)
    if bound is not None:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise TypeError(f"bound: expected a float > 0 or None, got {type(bound).__name__}")
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"bound: expected a finite float > 0 or None, got {bound!r}")
        bound = float(bound)
    log_z = None if bound is None and name != "u1" else _quadrature_log_z(name, bound)
    return Target(
        name=name,
        dim=2,
        fn=lambda z: -(energy(z) + wall(z)),
        log_z=log_z,
        extent=(-4.0, 4.0, -4.0, 4.0),
        description=f"{what} (Rezende and Mohamed 2015, Table 1)",
    )


def u1() -> Target:
    r"""Rezende and Mohamed (2015, Table 1), :math:`U_1`: a ring of radius 2 cut into two arcs.

    .. math:: U_1(z) = \frac12\Big(\frac{\lVert z\rVert - 2}{0.4}\Big)^2
              - \ln\Big(e^{-\frac12 (\frac{z_1 - 2}{0.6})^2}
              + e^{-\frac12 (\frac{z_1 + 2}{0.6})^2}\Big)

    :math:`\tilde p = e^{-U_1}` is normalisable on :math:`\mathbb{R}^2`; ``log_z`` is
    :math:`\log\int e^{-U_1}` by quadrature (float64, trapezoidal rule, spacing 0.02;
    halving it changes ``log_z`` by less than :math:`10^{-12}`).

    Example:
        >>> round(float(u1().log_density(torch.tensor([[0.0, 0.0]]))), 4)
        -17.3624
    """
    return _energy_target("u1", None, "U1: a ring split into two arcs")


def u2(bound: float | None = 4.0) -> Target:
    r"""Rezende and Mohamed (2015, Table 1), :math:`U_2`: a sine-shaped ridge.

    .. math:: U_2(z) = \frac12\Big(\frac{z_2 - w_1(z)}{0.4}\Big)^2, \qquad
              w_1(z) = \sin\Big(\frac{2\pi z_1}{4}\Big)

    As printed, :math:`e^{-U_2}` does not decay along :math:`z_1` and has infinite mass on
    :math:`\mathbb{R}^2` (the paper draws it on :math:`[-4, 4]^2`). With ``bound`` :math:`b`,
    :math:`\tfrac12(\max(0, |z_1| - b)/0.4)^2` is added: the density is exactly the paper's for
    :math:`|z_1| \le b` and falls off like a Gaussian of width 0.4 beyond, so it is normalisable
    and ``log_z`` is known (by quadrature). ``bound=None`` gives the formula as printed
    (``log_z`` ``None``: a reverse-KL fit then has no optimum and spreads along :math:`z_1`).

    Example:
        >>> abs(float(u2().log_density(torch.tensor([[1.0, 1.0]])))) < 1e-12
        True
    """
    return _energy_target("u2", bound, "U2: a sine-shaped ridge")


def u3(bound: float | None = 4.0) -> Target:
    r"""Rezende and Mohamed (2015, Table 1), :math:`U_3`: the ridge of :math:`U_2` split in two
    near :math:`z_1 = 1`.

    .. math:: U_3(z) = -\ln\Big(e^{-\frac12 (\frac{z_2 - w_1(z)}{0.35})^2}
              + e^{-\frac12 (\frac{z_2 - w_1(z) + w_2(z)}{0.35})^2}\Big), \qquad
              w_2(z) = 3 e^{-\frac12 (\frac{z_1 - 1}{0.6})^2}

    ``bound`` confines :math:`z_1` as for :func:`u2` (the formula as printed has infinite mass).
    """
    return _energy_target("u3", bound, "U3: a split sine ridge")


def u4(bound: float | None = 4.0) -> Target:
    r"""Rezende and Mohamed (2015, Table 1), :math:`U_4`: two sine ridges that part to the right.

    .. math:: U_4(z) = -\ln\Big(e^{-\frac12 (\frac{z_2 - w_1(z)}{0.4})^2}
              + e^{-\frac12 (\frac{z_2 - w_1(z) + w_3(z)}{0.35})^2}\Big), \qquad
              w_3(z) = 3\,\sigma\Big(\frac{z_1 - 1}{0.3}\Big)

    with :math:`\sigma` the logistic function. ``bound`` confines :math:`z_1` as for :func:`u2`.
    """
    return _energy_target("u4", bound, "U4: two sine ridges parting")


# -- targets with known normalisers and exact samplers ---------------------------------------------
def _real(value: object, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a finite float > 0" if positive else "a finite float"
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    return float(value)


def funnel(dim: int = 2, scale: float = 3.0) -> Target:
    r"""Neal's funnel (Neal 2003, "Slice sampling", section 8), normalised (``log_z = 0``).

    .. math:: v \sim \mathcal{N}(0, \sigma^2), \qquad
              x_i \mid v \sim \mathcal{N}(0, e^{v}), \quad i = 1, \dots, D - 1

    over :math:`(v, x_1, \dots, x_{D-1})`, :math:`\sigma` = ``scale`` (Neal: 3, with
    :math:`D = 10`). Its neck (:math:`v \ll 0`) is narrow and its mouth wide: a mean-field
    Gaussian cannot follow both, and reverse KL tends to miss the mouth or the neck. Exact
    draws: :math:`v` first, then :math:`x = e^{v/2} \epsilon`.

    Example:
        >>> t = funnel(dim=3)
        >>> t.log_z, t.sample(4).shape
        (0.0, torch.Size([4, 3]))
    """
    check_positive_int(dim, "dim", minimum=2)
    sigma = _real(scale, "scale", positive=True)

    def log_density(z: Tensor) -> Tensor:
        v, x = z[:, 0], z[:, 1:]
        log_pv = -0.5 * (v / sigma) ** 2 - math.log(sigma) - 0.5 * _LOG_2PI
        log_px = -0.5 * x.pow(2).sum(1) * torch.exp(-v) - 0.5 * (dim - 1) * (v + _LOG_2PI)
        return log_pv + log_px

    def sampler(n: int) -> Tensor:
        v = sigma * torch.randn(n, 1)
        return torch.cat([v, torch.exp(0.5 * v) * torch.randn(n, dim - 1)], 1)

    return Target(
        "funnel", dim, log_density, 0.0, sampler, extent=(-2.5 * sigma, 2.5 * sigma, -10.0, 10.0),
        description=f"Neal's funnel in {dim}-D, v ~ N(0, {sigma:g}^2) (Neal 2003)",
    )  # fmt: skip


def _vector(value: object, name: str, dim: int | None = None) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() != 1 or t.numel() == 0 or (dim is not None and t.numel() != dim):
        want = f"({dim},)" if dim is not None else "(D,)"
        raise ValueError(f"{name}: expected a vector of shape {want}, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {t.tolist()}")
    return t


def gaussian(
    mean: Sequence[float] = (1.0, -1.0),
    cov: Sequence[Sequence[float]] = ((2.0, 1.2), (1.2, 1.0)),
    offset: float = 2.5,
) -> Target:
    r"""A Gaussian with an arbitrary constant factor: :math:`\log\tilde p(x) =
    \log\mathcal{N}(x; \mu, \Sigma) + c`, so :math:`\log Z = c` (``offset``), known exactly.

    The reference case of variational inference: a flow that contains the Gaussians (an affine
    flow, :func:`tractable.flows.Gaussian`) reaches :math:`q = p`, where the ELBO equals
    :math:`\log Z` and every importance weight equals :math:`Z` (Papamakarios et al. 2021,
    "Normalizing Flows for Probabilistic Modeling and Inference", section 2.3.3).

    Example:
        >>> t = gaussian()
        >>> t.log_z, round(float(t.log_density(torch.tensor([[1.0, -1.0]]))), 4)
        (2.5, 0.952)
    """
    mu = _vector(mean, "mean")
    d = mu.numel()
    sigma = torch.as_tensor(cov, dtype=torch.float64)
    if sigma.shape != (d, d) or not bool(torch.isfinite(sigma).all()):
        raise ValueError(
            f"cov: expected a finite ({d}, {d}) matrix to match mean, got {tuple(sigma.shape)}"
        )
    if not torch.allclose(sigma, sigma.T):
        raise ValueError("cov: expected a symmetric matrix")
    L, info = torch.linalg.cholesky_ex(sigma)
    if int(info) != 0:
        raise ValueError(f"cov: expected a positive-definite matrix, got {sigma.tolist()}")
    c = _real(offset, "offset")
    dist = torch.distributions.MultivariateNormal(mu, scale_tril=L, validate_args=False)

    def log_density(x: Tensor) -> Tensor:
        return dist.log_prob(x.double()).to(x.dtype) + c

    def sampler(n: int) -> Tensor:
        return dist.sample((n,)).to(torch.get_default_dtype())

    spread = 4.0 * sigma.diagonal().sqrt()
    extent = (
        (float(mu[0] - spread[0]), float(mu[0] + spread[0]), float(mu[1] - spread[1]),
         float(mu[1] + spread[1])) if d == 2 else None
    )  # fmt: skip
    return Target("gaussian", d, log_density, c, sampler, extent,
                  description=f"a {d}-D Gaussian times e^{c:g}")  # fmt: skip


def mixture(
    dim: int = 2,
    separation: float = 6.0,
    scale: float = 0.5,
    weight: float = 0.5,
    offset: float = -1.0,
) -> Target:
    r"""Two isotropic Gaussians :math:`\sigma` = ``scale`` apart by ``separation`` along the
    first axis, with weights :math:`\pi, 1 - \pi` and a constant factor :math:`e^{c}`:

    .. math:: \log\tilde p(x) = \log\big(\pi\,\mathcal{N}(x; m_1, \sigma^2 I)
              + (1 - \pi)\,\mathcal{N}(x; m_2, \sigma^2 I)\big) + c,
              \qquad m_{1,2} = \mp\tfrac{s}{2} e_1, \qquad \log Z = c.

    With modes well apart, minimising the reverse KL :math:`\mathrm{KL}(q\,\|\,p)` with a
    unimodal-leaning :math:`q` settles on one mode (it is "zero-forcing"), while the forward KL
    :math:`\mathrm{KL}(p\,\|\,q)` (maximum likelihood on draws of :math:`p`) spreads :math:`q`
    over both (Bishop 2006, section 10.1.2, Figure 10.3; Minka 2005, "Divergence measures and
    message passing"). ``modes`` holds :math:`m_1, m_2`.

    Example:
        >>> t = mixture(dim=1)
        >>> t.log_z, t.modes.tolist(), t.sample(3).shape
        (-1.0, [[-3.0], [3.0]], torch.Size([3, 1]))
    """
    check_positive_int(dim, "dim")
    sep = _real(separation, "separation", positive=True)
    s = _real(scale, "scale", positive=True)
    w = _real(weight, "weight")
    if not 0 < w < 1:
        raise ValueError(f"weight: expected a float in (0, 1), got {weight!r}")
    c = _real(offset, "offset")
    modes = torch.zeros(2, dim, dtype=torch.float64)
    modes[:, 0] = torch.tensor([-sep / 2, sep / 2])
    log_w = torch.tensor([math.log(w), math.log1p(-w)], dtype=torch.float64)

    def log_density(x: Tensor) -> Tensor:
        u = (x.unsqueeze(1) - modes.to(x.dtype)) / s  # (N, 2, D)
        log_n = -0.5 * u.pow(2).sum(-1) - dim * (math.log(s) + 0.5 * _LOG_2PI)
        return torch.logsumexp(log_n + log_w.to(x.dtype), 1) + c

    def sampler(n: int) -> Tensor:
        k = (torch.rand(n) >= w).long()
        dtype = torch.get_default_dtype()
        return modes.to(dtype)[k] + s * torch.randn(n, dim, dtype=dtype)

    half = sep / 2 + 4 * s
    extent = (-half, half, -max(half, 4 * s), max(half, 4 * s)) if dim == 2 else None
    what = f"two Gaussians {sep:g} apart (scale {s:g}) in {dim}-D, times e^{c:g}"
    return Target("mixture", dim, log_density, c, sampler, extent, modes.clone(), what)


TARGETS: dict[str, Callable[..., Target]] = {
    "u1": u1, "u2": u2, "u3": u3, "u4": u4, "funnel": funnel, "gaussian": gaussian,
    "mixture": mixture,
}  # fmt: skip
_SAMPLERS = ("funnel", "gaussian", "mixture")


def target(name: str, **options: Any) -> Target:
    r"""The target ``name`` of :data:`TARGETS` built with ``options`` (its factory's keywords).

    Example:
        >>> target("mixture", separation=8.0).modes[:, 0].tolist()
        [-4.0, 4.0]
    """
    if not isinstance(name, str) or name not in TARGETS:
        raise ValueError(f"target: expected one of {', '.join(TARGETS)}, got {name!r}")
    factory = TARGETS[name]
    known = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for target {name!r}; expected some of "
            f"{known or 'none'}"
        )
    return factory(**options)


__all__ = ["TARGETS", "Target", "funnel", "gaussian", "mixture", "target", "u1", "u2", "u3", "u4"]

r"""Denoising diffusion probabilistic models (Ho et al. 2020) behind the model protocol.

A forward chain :math:`q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I)`,
:math:`t = 1..T`, with the closed form :math:`q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}
x_0, (1 - \bar\alpha_t) I)`, and a learned reverse chain :math:`p_\theta(x_{t-1} \mid x_t) =
\mathcal{N}(\mu_\theta(x_t, t), \sigma_t^2 I)` with the ε-parametrisation

.. math:: \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Bigl(x_t - \frac{\beta_t}
          {\sqrt{1 - \bar\alpha_t}} \varepsilon_\theta(x_t, t)\Bigr),

trained with :math:`L_\text{simple} = \mathbb{E}_{t, x_0, \varepsilon} \lVert \varepsilon -
\varepsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}\varepsilon, t)\rVert^2`
(mean over dimensions). The schedule is a continuous one (:mod:`tractable.diffusion.schedules`)
read at :math:`s = t / T`; the network sees :math:`s`.

Likelihoods (``estimate``), the model's ``likelihood`` being ``"bound"``:

* ``"elbo"`` (default): the variational bound :math:`-L_\text{vlb} = -L_T - \sum_{t=2}^T
  L_{t-1} - L_0` with :math:`L_T = \mathrm{KL}(q(x_T \mid x_0) \Vert \mathcal{N}(0, I))`,
  :math:`L_{t-1} = \mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \Vert p_\theta(x_{t-1} \mid x_t))` in
  closed form at one draw :math:`x_t \sim q(x_t \mid x_0)` per step and per sample (``k``
  samples averaged, with their standard error), and the decoder :math:`L_0 = -\log
  p_\theta(x_0 \mid x_1)`: Gaussian, or for data on a grid of ``levels`` values the
  discretized Gaussian of Ho et al. 2020 (a bound on the probability mass, not a density).
* ``"iwae"``: the importance-weighted bound (Burda et al. 2016) of the same latent-variable
  model, with whole forward trajectories :math:`x_{1:T} \sim q(x_{1:T} \mid x_0)` as the
  proposal: :math:`\log \frac1k \sum_i p_\theta(x_0, x^i_{1:T}) / q(x^i_{1:T} \mid x_0)`.
* ``"exact"``: the log-density of the probability-flow ODE (Song et al. 2021) :math:`dx/ds =
  -\tfrac12 \beta(s) (x - \varepsilon_\theta(x, s) / \sqrt{1 - \bar\alpha(s)})` that shares
  the network, from :math:`s_0 = 10^{-5}` (where :math:`1 - \bar\alpha` vanishes) to
  :math:`s = 1`, with a :math:`\mathcal{N}(0, I)` prior, by :mod:`tractable.continuous`'
  CNF: exact up to the solver's tolerance (``dopri5``, ``atol = rtol = 1e-5`` by default).
  It is the exact density of the ODE model, not of the reverse chain the bounds are about.

Reverse variances: ``variance="beta"`` (default), :math:`\sigma_t^2 = \beta_t`, or
``"posterior"``, :math:`\sigma_t^2 = \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 -
\bar\alpha_t}\beta_t` (with :math:`\sigma_1^2 = \beta_1` for the decoder, since
:math:`\tilde\beta_1 = 0`): Ho et al.'s two fixed choices; or ``"learned"``,
:math:`\Sigma_\theta = \exp(v \log\beta_t + (1 - v)\log\tilde\beta_t)` per dimension from a
second output :math:`v` of the network (Nichol and Dhariwal 2021; at :math:`t = 1`,
:math:`\tilde\beta_2` stands for :math:`\tilde\beta_1`), trained by the ``objective``
``"hybrid"`` or ``"vlb"`` (:mod:`tractable.diffusion.variance`). The bounds and ancestral
sampling use :math:`\Sigma_\theta`; DDIM and the probability-flow ODE need only
:math:`\varepsilon_\theta`. Measured with the optimal
predictor on a 2-D Gaussian (``tests/diffusion``), the bound's gap to the true
log-likelihood with ``"beta"`` is 0.19 nats at :math:`T = 2`, 0.08 at 5 and within Monte Carlo
noise (0.03) from :math:`T = 20`; with ``"posterior"`` it is 1.8 nats at :math:`T = 20` and
still 0.9 at 1000: the first steps' KL terms stay of order one whatever :math:`T`, because
:math:`\tilde\beta_t` is the reverse variance only for a single data point.

The data are mapped :math:`y = \text{scale}\cdot x + \text{shift}` before the chain (e.g.
:math:`[0, 1] \to [-1, 1]`); densities are reported for :math:`x`, with
:math:`D \log|\text{scale}|` added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import NonFiniteError, check_context, check_event, check_positive_int, split_batch
from ..continuous import CNF
from ..estimators import Estimate, log_mean_exp
from ..protocol import check_method
from . import schedules
from .variance import StepSampler, gaussian_kl, interpolated_variance, split_output

SAMPLERS = ("ancestral", "ddim", "ode")
VARIANCES = ("posterior", "beta", "learned")
DECODERS = ("gaussian", "discretized")
OBJECTIVES = ("simple", "hybrid", "vlb")
STEP_SAMPLING = ("uniform", "importance")
S0 = 1e-5
LOG_2PI = math.log(2 * math.pi)


def _normal_log_prob(x: Tensor, mean: Tensor, var: Tensor | float) -> Tensor:
    var = torch.as_tensor(var, dtype=x.dtype, device=x.device)
    d = (x - mean).pow(2) / var + var.log() + LOG_2PI
    return -0.5 * d.reshape(x.shape[0], -1).sum(1)


def discretized_gaussian_log_prob(y: Tensor, mean: Tensor, std: Tensor, levels: int) -> Tensor:
    r""":math:`\log P(y)` per example ``(N,)`` of values ``y`` on the grid of ``levels``
    points in :math:`[-1, 1]` under :math:`\mathcal{N}(\text{mean}, \text{std}^2)` integrated
    over each value's bin of width :math:`2 / (L - 1)`, the outer bins reaching to
    :math:`\pm\infty` (Ho et al. 2020, the decoder :math:`p_\theta(x_0 \mid x_1)`).

    Example:
        >>> import torch
        >>> y = torch.tensor([[-1.0, 1.0]])
        >>> lp = discretized_gaussian_log_prob(y, torch.zeros(1, 2), torch.tensor(1e-3), 2)
        >>> round(float(lp), 6)  # two bins, each with probability 1/2
        -1.386294
    """
    half = 1.0 / (levels - 1)
    std = torch.as_tensor(std, dtype=y.dtype, device=y.device)
    normal = torch.distributions.Normal(torch.zeros((), dtype=y.dtype, device=y.device), 1.0)
    upper = (y + half - mean) / std
    lower = (y - half - mean) / std
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    mid = torch.log((normal.cdf(upper) - normal.cdf(lower)).clamp_min(1e-300))
    out = torch.where(y < -1 + 1e-6, log_cdf_upper, torch.where(y > 1 - 1e-6, log_sf_lower, mid))
    return out.reshape(y.shape[0], -1).sum(1)


class ProbabilityFlowField(nn.Module):
    r"""The probability-flow ODE as a :class:`~tractable.continuous.CNF` field from data to
    noise in :math:`u \in [0, 1]`, :math:`s = s_0 + u (1 - s_0)`:
    :math:`(1 - s_0) \cdot -\tfrac12 \beta(s) \bigl(z - \varepsilon(z, s) /
    \sqrt{1 - \bar\alpha(s)}\bigr)`. With ``learned``, ``net`` outputs :math:`\varepsilon` and
    :math:`v` stacked along dimension 1 and only :math:`\varepsilon` is used."""

    def __init__(
        self, net: nn.Module, schedule: str, s0: float = S0, learned: bool = False
    ) -> None:
        super().__init__()
        self.net, self.schedule, self.s0, self.learned = net, schedule, float(s0), learned

    def forward(self, u: Tensor, z: Tensor, context: Tensor | None = None) -> Tensor:
        s = self.s0 + u * (1.0 - self.s0)
        b = schedules.beta(self.schedule, s)
        sigma = (-torch.expm1(schedules.log_alpha_bar(self.schedule, s))).sqrt()
        eps = self.net(z, s.expand(z.shape[0]), context)
        if self.learned:
            eps = split_output(eps, z.shape[1:])[0]
        return (1.0 - self.s0) * -0.5 * b * (z - eps / sigma)


class DDPM(nn.Module):
    r"""A DDPM with an ε-prediction network ``net(y, s, c) -> (N, *event)``.

    Args:
        net: the noise-prediction network ``(N, *event)`` (e.g.
            :func:`~tractable.nn.time.time_mlp`); with ``variance="learned"`` it outputs
            ``(N, 2 * event[0], *event[1:])``, :math:`\varepsilon` and :math:`v` stacked along
            dimension 1 (see :func:`~tractable.diffusion.build_ddpm`).
        event_shape: the shape of one example.
        context: the context's width (0: unconditional).
        steps: :math:`T`, the chain's length.
        schedule: ``"linear"`` or ``"cosine"``.
        variance: the reverse variances, ``"beta"``, ``"posterior"`` or ``"learned"``.
        objective: what :meth:`loss` returns: ``"simple"`` (:math:`L_\text{simple}`),
            ``"hybrid"`` (:math:`L_\text{simple} + \lambda L_\text{vlb}` with the mean's
            gradient stopped in :math:`L_\text{vlb}`: it trains only the learned variances) or
            ``"vlb"`` (:math:`L_\text{vlb}` alone, mean and variance); the :math:`L_\text{vlb}`
            terms in bits per dimension, as Nichol and Dhariwal 2021 train them.
        vlb_weight: :math:`\lambda` of the hybrid objective (0.001, Nichol and Dhariwal 2021).
        step_sampling: the steps of the ``"vlb"`` objective: ``"uniform"`` or
            ``"importance"`` (:class:`~tractable.diffusion.variance.StepSampler`).
        decoder: ``"gaussian"`` or ``"discretized"`` (data on a grid of ``levels`` values).
        levels: the grid's size for the discretized decoder.
        scale, shift: the affine map of the data into the chain's space.
        sampler: what :meth:`sample` runs: ``"ancestral"``, ``"ddim"`` or ``"ode"``.
        sample_steps: DDIM's number of steps (default :math:`T`).
        eta: DDIM's :math:`\eta` (0: deterministic).
        solver, atol, rtol, ode_steps: the probability-flow ODE's torchdiffeq solver.
        bound_terms: estimate the bound's sum over :math:`T - 1` steps from this many
            stratified steps per example (see :meth:`vlb`), or ``None`` for every step. At
            :math:`T = 1000` on 28x28 images the full sum costs :math:`T` network passes per
            example; 50 strata cost 50.

    Example:
        >>> import torch
        >>> from tractable.nn.time import time_mlp
        >>> m = DDPM(time_mlp((2,), hidden=(8,)), (2,), steps=10, solver="rk4", ode_steps=4)
        >>> x = torch.randn(3, 2)
        >>> m.loss(x).shape, m.estimate(x, k=2).kind, m.estimate(x, method="exact").kind
        (torch.Size([]), 'bound', 'exact')
    """

    likelihood = "bound"
    estimators: tuple[str, ...] = ("elbo", "iwae", "exact")

    def __init__(
        self,
        net: nn.Module,
        event_shape: Sequence[int],
        *,
        context: int = 0,
        steps: int = 1000,
        schedule: str = "linear",
        variance: str = "beta",
        objective: str = "simple",
        vlb_weight: float = 0.001,
        step_sampling: str = "uniform",
        decoder: str = "gaussian",
        levels: int | None = None,
        scale: float = 1.0,
        shift: float = 0.0,
        sampler: str = "ancestral",
        sample_steps: int | None = None,
        eta: float = 0.0,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        ode_steps: int | None = None,
        bound_terms: int | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.event_shape = tuple(int(s) for s in event_shape)
        self.context_features = check_positive_int(context, "context", 0)
        self.steps = check_positive_int(steps, "steps")
        for name, value, options in (
            ("schedule", schedule, schedules.SCHEDULES),
            ("variance", variance, VARIANCES),
            ("objective", objective, OBJECTIVES),
            ("step_sampling", step_sampling, STEP_SAMPLING),
            ("decoder", decoder, DECODERS),
            ("sampler", sampler, SAMPLERS),
        ):
            if value not in options:
                raise ValueError(f"{name}: expected one of {options}, got {value!r}")
        if decoder == "discretized":
            levels = check_positive_int(levels, "levels", 2)
        for name, value in (
            ("scale", scale),
            ("shift", shift),
            ("eta", eta),
            ("vlb_weight", vlb_weight),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite float, got {value!r}")
        if scale == 0 or eta < 0:
            raise ValueError(f"scale, eta: expected scale != 0 and eta >= 0, got {scale}, {eta}")
        if vlb_weight <= 0:
            raise ValueError(f"vlb_weight: expected a float > 0, got {vlb_weight!r}")
        if variance == "learned" and objective == "simple":
            raise ValueError(
                "objective: L_simple does not see learned variances; expected 'hybrid' or 'vlb' "
                "with variance='learned', got 'simple'"
            )
        if objective == "hybrid" and variance != "learned":
            raise ValueError(
                "objective: the hybrid objective's L_vlb term trains only learned variances (the "
                f"mean's gradient is stopped); expected variance='learned', got {variance!r}"
            )
        if step_sampling == "importance" and objective != "vlb":
            raise ValueError(
                "step_sampling: importance sampling of the steps is for objective='vlb', got "
                f"objective={objective!r}"
            )
        if variance == "learned" and self.steps < 2:
            raise ValueError(
                "steps: learned variances need steps >= 2 (beta~_2 stands for beta~_1)"
            )
        self.schedule, self.variance, self.decoder, self.levels = (
            schedule,
            variance,
            decoder,
            levels,
        )
        self.scale, self.shift, self.sampler, self.eta = float(scale), float(shift), sampler, eta
        self.objective, self.vlb_weight = objective, float(vlb_weight)
        self.step_sampler = (
            StepSampler(self.steps) if step_sampling == "importance" else None
        )  # its history is part of the state: a resumed run draws the same steps
        self._last: dict[str, float] = {}
        self.sample_steps = check_positive_int(sample_steps or steps, "sample_steps")
        self.bound_terms = (
            None if bound_terms is None else check_positive_int(bound_terms, "bound_terms")
        )
        a_bar = schedules.discrete(schedule, self.steps)
        self.register_buffer("alpha_bar", a_bar.to(torch.get_default_dtype()), persistent=False)
        # the exact trace costs D vector-Jacobian products per evaluation: Hutchinson above 64
        divergence = "exact" if math.prod(self.event_shape) <= 64 else "hutchinson"
        self.cnf = CNF(
            ProbabilityFlowField(net, schedule, learned=variance == "learned"),
            solver=solver,
            atol=atol,
            rtol=rtol,
            steps=ode_steps,
            adjoint=False,
            divergence=divergence,
            eval_divergence=divergence,
        )
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # -- the chain's quantities, t = 1..T (tensors of step indices) ----------------------------
    def _at(self, t: Tensor, like: Tensor) -> tuple[Tensor, ...]:
        r"""``(a_bar_t, a_bar_{t-1}, beta_t)`` broadcastable against ``like`` ``(N, ...)``."""
        shape = (-1, *([1] * (like.dim() - 1)))
        ab = self.alpha_bar.to(like)
        a_t, a_prev = ab[t].reshape(shape), ab[t - 1].reshape(shape)
        return a_t, a_prev, 1.0 - a_t / a_prev

    def q_sample(self, y0: Tensor, t: Tensor, eps: Tensor | None = None) -> Tensor:
        r""":math:`x_t \sim q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t} x_0,
        (1 - \bar\alpha_t) I)` for step indices ``t`` ``(N,)``."""
        eps = torch.randn_like(y0) if eps is None else eps
        a_t, _, _ = self._at(t, y0)
        return a_t.sqrt() * y0 + (1 - a_t).sqrt() * eps

    def q_step(self, y: Tensor, t: Tensor) -> Tensor:
        r"""One forward step :math:`x_t \sim q(x_t \mid x_{t-1})` from ``y`` = :math:`x_{t-1}`."""
        _, _, b = self._at(t, y)
        return (1 - b).sqrt() * y + b.sqrt() * torch.randn_like(y)

    def posterior(self, y0: Tensor, yt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean and variance of :math:`q(x_{t-1} \mid x_t, x_0)`: :math:`\tilde\mu_t =
        \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t} x_0 + \frac{\sqrt{\alpha_t}
        (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t`, :math:`\tilde\beta_t`."""
        a_t, a_prev, b = self._at(t, yt)
        mean = (a_prev.sqrt() * b * y0 + (1 - b).sqrt() * (1 - a_prev) * yt) / (1 - a_t)
        return mean, (1 - a_prev) / (1 - a_t) * b

    def reverse_variance(self, t: Tensor, like: Tensor, v: Tensor | None = None) -> Tensor:
        r""":math:`\sigma_t^2` of :math:`p_\theta(x_{t-1} \mid x_t)` (see the module
        docstring), broadcastable against ``like`` ``(N, ...)``; with learned variances
        :math:`\Sigma_\theta` ``(N, *event)`` from the network's ``v``."""
        a_t, a_prev, b = self._at(t, like)
        if self.variance == "beta":
            return b
        if self.variance == "posterior":
            return torch.where(t.reshape(a_t.shape) == 1, b, (1 - a_prev) / (1 - a_t) * b)
        if v is None:
            raise ValueError("v: learned variances need the network's v output, got None")
        a2, a2_prev, b2 = self._at(t.clamp_min(2), like)
        return interpolated_variance(v, b, (1 - a2_prev) / (1 - a2) * b2)

    def outputs(
        self, yt: Tensor, t: Tensor, context: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        r""":math:`(\varepsilon_\theta(x_t, t), v)` with the network at :math:`s = t / T`;
        ``v`` is ``None`` unless the variances are learned."""
        out = self.net(yt, t.to(yt.dtype) / self.steps, context)
        if self.variance != "learned":
            return out, None
        return split_output(out, self.event_shape)

    def eps(self, yt: Tensor, t: Tensor, context: Tensor | None) -> Tensor:
        r""":math:`\varepsilon_\theta(x_t, t)` with the network at :math:`s = t / T`."""
        return self.outputs(yt, t, context)[0]

    def mean_from_eps(self, yt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`\mu_\theta(x_t, t)` from :math:`\varepsilon_\theta` (see the module
        docstring)."""
        a_t, _, b = self._at(t, yt)
        return (yt - b / (1 - a_t).sqrt() * eps) / (1 - b).sqrt()

    def reverse_mean(self, yt: Tensor, t: Tensor, context: Tensor | None) -> Tensor:
        r""":math:`\mu_\theta(x_t, t)`."""
        return self.mean_from_eps(yt, t, self.eps(yt, t, context))

    def reverse(self, yt: Tensor, t: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        r"""Mean ``(N, *event)`` and variance (broadcastable) of :math:`p_\theta(x_{t-1} \mid
        x_t)`, one network pass."""
        eps, v = self.outputs(yt, t, context)
        return self.mean_from_eps(yt, t, eps), self.reverse_variance(t, yt, v)

    # -- input handling -------------------------------------------------------------------------
    def _x(self, x: Tensor, allow_empty: bool = False) -> Tensor:
        return check_event(x, "x", self.event_shape, like=self._anchor, allow_empty=allow_empty)

    def _unpack(self, batch: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        x, c = split_batch(batch, self.context_features)
        x = self._x(x)
        if not self.context_features:
            return x, None
        return x, check_context(c, self.context_features, x.shape[0], like=self._anchor)

    def _y(self, x: Tensor) -> Tensor:
        return self.scale * x + self.shift

    # -- the protocol ---------------------------------------------------------------------------
    def loss(self, batch: Tensor | Sequence[Tensor]) -> Tensor:
        r"""The ``objective`` of a batch ``x`` or ``(x, context)`` (integer labels are one-hot
        encoded), with one step :math:`t` and one noise draw per example:

        * ``"simple"``: :math:`L_\text{simple}`, :math:`t` uniform;
        * ``"hybrid"``: :math:`L_\text{simple} + \lambda\, T\, \overline{L_{t-1}} / (D \log 2)`
          at the same :math:`t` and :math:`x_t`, :math:`L_{t-1}` (:meth:`step_terms`) computed
          with :math:`\varepsilon_\theta` detached, so that it trains only :math:`v` (Nichol
          and Dhariwal 2021, section 3.1);
        * ``"vlb"``: :math:`\overline{L_{t-1} / p_t} / (D \log 2)`, an unbiased estimate of
          :math:`L_\text{vlb}` in bits per dimension without its constant :math:`L_T`, with
          :math:`t` uniform (:math:`p_t = 1/T`) or drawn by importance (section 3.3).

        The bars are means over the batch."""
        x, c = self._unpack(batch)
        y0 = self._y(x)
        bits = math.prod(self.event_shape) * math.log(2)
        if self.objective == "vlb":
            loss = self._vlb_loss(y0, c) / bits
            vlb = loss
        else:
            t = torch.randint(1, self.steps + 1, (y0.shape[0],), device=y0.device)
            eps = torch.randn_like(y0)
            yt = self.q_sample(y0, t, eps)
            eps_hat, v = self.outputs(yt, t, c)
            loss = simple = (eps_hat - eps).pow(2).mean()
            if self.objective == "hybrid":
                # the stop-gradient on the mean: L_simple trains it, L_vlb only the variances
                vlb = self.steps * self.step_terms(y0, yt, t, eps_hat.detach(), v).mean() / bits
                loss = simple + self.vlb_weight * vlb
        if bool(torch.isnan(loss)):
            # the network overflowed on these inputs: the trainer's guard counts this a
            # non-finite step; a direct caller learns which argument did it
            raise NonFiniteError(
                "x: the loss is NaN (values far outside the data's range overflow the network)"
            )
        if self.training and self.objective == "hybrid":
            self._last = {"l_simple": float(simple.detach()), "l_vlb_bpd": float(vlb.detach())}
        elif self.training and self.objective == "vlb":
            self._last = {"l_vlb_bpd": float(vlb.detach())}
        return loss

    def _vlb_loss(self, y0: Tensor, c: Tensor | None) -> Tensor:
        r""":math:`\overline{L_{t-1} / p_t}` in nats (see :meth:`loss`)."""
        n = y0.shape[0]
        if self.step_sampler is None:
            t = torch.randint(1, self.steps + 1, (n,), device=y0.device)
            weight = torch.full((n,), float(self.steps), dtype=y0.dtype, device=y0.device)
        else:
            t, weight = self.step_sampler.draw(n, y0.dtype)
        yt = self.q_sample(y0, t)
        terms = self.step_terms(y0, yt, t, *self.outputs(yt, t, c))
        if self.step_sampler is not None and self.training:
            self.step_sampler.update(t, terms.detach())
        return (weight * terms).mean()

    def step_terms(
        self, y0: Tensor, yt: Tensor, t: Tensor, eps: Tensor, v: Tensor | None
    ) -> Tensor:
        r"""``(N,)``: the bound's term of each row at its own step ``t`` ``(N,)`` and draw
        ``yt`` = :math:`x_t`, given the network's outputs there: the decoder's :math:`L_0 =
        -\log p_\theta(x_0 \mid x_1)` where :math:`t = 1`, else :math:`L_{t-1} =
        \mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \Vert p_\theta(x_{t-1} \mid x_t))` in closed
        form."""
        mean = self.mean_from_eps(yt, t, eps)
        var = self.reverse_variance(t, yt, v)
        first = t == 1
        out = y0.new_zeros(y0.shape[0])
        # rows split by index, not torch.where: at t = 1 the posterior variance is 0, and a
        # decoder's mass far from x_0 underflows; neither may reach the other rows' gradients
        if bool(first.any()):
            out = out.index_put((first,), -self._decoder_log_prob(y0[first], mean[first],
                                                                  var[first]))  # fmt: skip
        rest = ~first
        if bool(rest.any()):
            mean_q, var_q = self.posterior(y0[rest], yt[rest], t[rest])
            out = out.index_put((rest,), gaussian_kl(mean_q, var_q, mean[rest], var[rest]))
        return out

    def _decoder_log_prob(self, y0: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        if self.decoder == "discretized":
            return discretized_gaussian_log_prob(y0, mean, var.sqrt(), self.levels)
        return _normal_log_prob(y0, mean, var)

    def _log_det(self) -> float:
        # the map x -> y of a density; a probability mass on the grid has none
        if self.decoder == "discretized":
            return 0.0
        return math.prod(self.event_shape) * math.log(abs(self.scale))

    def _kl_term(self, y0: Tensor, tt: Tensor, c: Tensor | None) -> Tensor:
        r"""``(N,)``: :math:`L_{t-1}` at one draw of :math:`x_t` for step indices ``tt``
        ``(N,)`` (each row its own step, all :math:`\ge 2`; see :meth:`step_terms`)."""
        yt = self.q_sample(y0, tt)
        return self.step_terms(y0, yt, tt, *self.outputs(yt, tt, c))

    def _decoder_term(self, y0: Tensor, c: Tensor | None) -> Tensor:
        r"""``(N,)``: :math:`L_0` at one draw of :math:`x_1`."""
        one = torch.ones(y0.shape[0], dtype=torch.long, device=y0.device)
        y1 = self.q_sample(y0, one)
        return self.step_terms(y0, y1, one, *self.outputs(y1, one, c))

    def _prior_term(self, y0: Tensor) -> Tensor:
        a_T = self.alpha_bar[self.steps].to(y0)
        prior = 0.5 * (a_T * y0.pow(2) + (1 - a_T) - 1 - torch.log1p(-a_T))
        return prior.reshape(y0.shape[0], -1).sum(1)

    def vlb_terms(self, y0: Tensor, c: Tensor | None) -> Tensor:
        r"""``(N, T + 1)``: :math:`L_0, L_1, \dots, L_{T-1}, L_T` in nats for one draw of each
        :math:`x_t` (their sum is :math:`L_\text{vlb}`, :math:`-\log p` bounded above)."""
        n, T = y0.shape[0], self.steps
        terms = [self._decoder_term(y0, c)]
        for t in range(2, T + 1):
            terms.append(self._kl_term(y0, torch.full((n,), t, device=y0.device), c))
        terms.append(self._prior_term(y0))
        return torch.stack(terms, dim=1)

    def vlb(self, y0: Tensor, c: Tensor | None) -> Tensor:
        r"""``(N,)``: :math:`L_\text{vlb}` of each row, the sum of :meth:`vlb_terms`; with
        ``bound_terms = m`` an unbiased stratified estimate of it: :math:`L_0 + L_T +
        \sum_{j=1}^m |S_j|\, L_{t_j - 1}` with the steps :math:`2..T` cut into :math:`m`
        contiguous strata :math:`S_j` and one :math:`t_j` drawn uniformly in each, per row.
        Each row's value is an independent draw whose mean is the row's bound, so the standard
        error of a mean over rows covers the step sampling too."""
        m = self.bound_terms
        if m is None or m >= self.steps - 1:
            return self.vlb_terms(y0, c).sum(1)
        n, T = y0.shape[0], self.steps
        total = self._decoder_term(y0, c) + self._prior_term(y0)
        edges = torch.linspace(2, T + 1, m + 1).round().long().tolist()
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            tt = torch.randint(lo, hi, (n,), device=y0.device)
            total = total + (hi - lo) * self._kl_term(y0, tt, c)
        return total

    def iwae_log_weights(self, y0: Tensor, c: Tensor | None) -> Tensor:
        r"""``(N,)``: :math:`\log p_\theta(x_{0:T}) - \log q(x_{1:T} \mid x_0)` for one forward
        trajectory per example."""
        n = y0.shape[0]
        log_w = y0.new_zeros(n)
        y_prev = y0
        for t in range(1, self.steps + 1):
            tt = torch.full((n,), t, dtype=torch.long, device=y0.device)
            _, _, b = self._at(tt, y0)
            yt = self.q_step(y_prev, tt)
            log_w = log_w - _normal_log_prob(yt, (1 - b).sqrt() * y_prev, b)
            if t == 1:
                log_w = log_w - self.step_terms(y0, yt, tt, *self.outputs(yt, tt, c))
            else:
                log_w = log_w + _normal_log_prob(y_prev, *self.reverse(yt, tt, c))
            y_prev = yt
        return log_w + _normal_log_prob(y_prev, torch.zeros_like(y_prev), 1.0)

    def estimate(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
    ) -> Estimate:
        r"""The log-likelihood of each row of ``x`` in nats by ``method`` (see the module
        docstring): ``"elbo"`` (default, ``k`` draws, default 1), ``"iwae"`` (``k``
        trajectories, default 8) or ``"exact"`` (the probability-flow ODE; ``k`` only with
        Hutchinson's trace, above 64 features: probes averaged, default 4)."""
        method = check_method(self, method)
        x = self._x(x, allow_empty=True)
        c = check_context(context, self.context_features, x.shape[0], like=self._anchor)
        if method == "exact" and self.decoder == "discretized":
            raise ValueError(
                "method: the probability-flow ODE gives a density, not a mass on the grid of the "
                "discretized decoder; train on dequantized data for 'exact'"
            )
        if k is not None:
            k = check_positive_int(k, "k")
        n = x.shape[0]
        if n == 0:
            kind = "exact" if method == "exact" else "bound"
            return Estimate.from_values(method, kind, x.new_zeros(0), k=k)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                est = self._estimate(x, c, method, k, n)
        except (RuntimeError, ValueError) as err:  # an ODE solve or a field that overflows
            raise ValueError(
                f"x: the {method} log-likelihood could not be computed for these rows ({err}); "
                "are they in the range of the data the model was trained on?"
            ) from err
        finally:
            self.train(was_training)
        if bool(torch.isnan(est.values).any()):
            raise ValueError(
                f"x: the {method} log-likelihood is NaN for {int(torch.isnan(est.values).sum())} "
                "rows (values far outside the data's range overflow the model)"
            )
        return est

    def _estimate(
        self, x: Tensor, c: Tensor | None, method: str, k: int | None, n: int
    ) -> Estimate:
        y0 = self._y(x)
        if method == "exact":
            return self._ode_estimate(y0, c, k)
        draws = k or (1 if method == "elbo" else 8)
        yk = y0.repeat_interleave(draws, 0)
        ck = None if c is None else c.repeat_interleave(draws, 0)
        if method == "elbo":
            values = -self.vlb(yk, ck).reshape(n, draws)
            se = values.std(1) / math.sqrt(draws) if draws > 1 else None
            values = values.mean(1) + self._log_det()
            return Estimate.from_values("elbo", "bound", values, draws, se)
        log_w = self.iwae_log_weights(yk, ck).reshape(n, draws)
        values = log_mean_exp(log_w, dim=1) + self._log_det()
        return Estimate.from_values("iwae", "bound", values, draws)

    def _ode_estimate(self, y0: Tensor, c: Tensor | None, k: int | None) -> Estimate:
        d = math.prod(self.event_shape)
        if self.cnf.eval_divergence == "exact" and k is not None:
            raise ValueError(f"k: the exact trace draws no probes; expected None, got {k!r}")
        probes = 1 if self.cnf.eval_divergence == "exact" else (k or 4)
        runs = []
        for _ in range(probes):
            z, ladj = self.cnf(y0, c)
            log_prior = -0.5 * (z.pow(2).reshape(z.shape[0], -1).sum(1) + d * LOG_2PI)
            runs.append(log_prior + ladj + self._log_det())
        values = torch.stack(runs)
        se = values.std(0) / math.sqrt(probes) if probes > 1 else None
        return Estimate.from_values(
            "exact", "exact", values.mean(0), None if probes == 1 else probes, se
        )

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""``n`` samples ``(n, *event_shape)`` (``(M, n, ...)`` for ``M`` context rows) by the
        model's ``sampler``; ``temperature`` scales the initial noise :math:`x_T` and every
        step's noise."""
        check_positive_int(n, "n", 0)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not (math.isfinite(temperature) and temperature > 0)
        ):
            raise ValueError(f"temperature: expected a finite float > 0, got {temperature!r}")
        if self.context_features == 0:
            if context is not None:
                raise ValueError("context: this model is unconditional but a context was given")
            c, lead = None, (n,)
        else:
            c = check_context(context, self.context_features, None, like=self._anchor)
            lead = (c.shape[0], n)
            c = c.repeat_interleave(n, dim=0)
        total = math.prod(lead)
        if total == 0:
            return self._anchor.new_zeros((*lead, *self.event_shape))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                z = temperature * torch.randn(total, *self.event_shape).to(self._anchor)
                if self.sampler == "ancestral":
                    y = self.ancestral(z, c, temperature)
                elif self.sampler == "ddim":
                    y = self.ddim(z, c, self.sample_steps, self.eta, temperature)
                else:
                    try:
                        y = self.cnf.inverse(z, c)[0]
                    except RuntimeError as err:  # an ODE solve that fails on huge draws
                        raise ValueError(
                            f"temperature: sampling at temperature {temperature:g} failed "
                            f"({err}); use a temperature nearer 1"
                        ) from err
        finally:
            self.train(was_training)
        x = (y - self.shift) / self.scale
        if not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"temperature: the samples at temperature {temperature:g} are not finite"
            )
        return x.reshape(*lead, *self.event_shape)

    def ancestral(self, z: Tensor, c: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""Ancestral sampling from :math:`x_T = z`: :math:`x_{t-1} = \mu_\theta(x_t, t) +
        \sigma_t \cdot T\, \xi`, no noise at the last step (Ho et al. 2020, algorithm 2)."""
        y = z
        for t in range(self.steps, 0, -1):
            tt = torch.full((y.shape[0],), t, dtype=torch.long, device=y.device)
            if t > 1:
                mean, var = self.reverse(y, tt, c)
                y = mean + temperature * var.sqrt() * torch.randn_like(y)
            else:
                y = self.reverse_mean(y, tt, c)
        return y

    def ddim(
        self,
        z: Tensor,
        c: Tensor | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""DDIM sampling (Song, Meng and Ermon 2021) on ``steps`` evenly spaced steps of the
        chain: :math:`x_{\tau'} = \sqrt{\bar\alpha_{\tau'}}\hat x_0 + \sqrt{1 -
        \bar\alpha_{\tau'} - \sigma^2}\,\varepsilon_\theta + \sigma \xi` with :math:`\hat x_0 =
        (x_\tau - \sqrt{1 - \bar\alpha_\tau}\varepsilon_\theta) / \sqrt{\bar\alpha_\tau}` and
        :math:`\sigma = \eta \sqrt{(1 - \bar\alpha_{\tau'})/(1 - \bar\alpha_\tau)}
        \sqrt{1 - \bar\alpha_\tau / \bar\alpha_{\tau'}}` (:math:`\eta = 0`: deterministic)."""
        steps = check_positive_int(steps or self.steps, "steps")
        taus = torch.linspace(self.steps, 0, min(steps, self.steps) + 1).round().long().tolist()
        y = z
        ab = self.alpha_bar.to(y)
        for tau, prev in zip(taus[:-1], taus[1:], strict=True):
            tt = torch.full((y.shape[0],), tau, dtype=torch.long, device=y.device)
            eps = self.eps(y, tt, c)
            a_t, a_p = ab[tau], ab[prev]
            y0 = (y - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            sigma = eta * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)).clamp_min(0).sqrt()
            y = a_p.sqrt() * y0 + (1 - a_p - sigma**2).clamp_min(0).sqrt() * eps
            if eta > 0 and prev > 0:
                y = y + temperature * sigma * torch.randn_like(y)
        return y

    sampling_options: tuple[str, ...] = ("sampler", "sample_steps", "eta")

    def configure_sampling(
        self, sampler: str | None = None, sample_steps: int | None = None, eta: float | None = None
    ) -> None:
        r"""Change how :meth:`sample` draws, without touching the weights (e.g. DDIM with 100
        steps for a model trained with ancestral sampling's :math:`T = 1000`; Song et al.
        2021). Arguments left ``None`` keep their values."""
        if sampler is not None:
            if sampler not in SAMPLERS:
                raise ValueError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}")
            self.sampler = sampler
        if sample_steps is not None:
            self.sample_steps = check_positive_int(sample_steps, "sample_steps")
        if eta is not None:
            if isinstance(eta, bool) or not isinstance(eta, int | float) or not eta >= 0:
                raise ValueError(f"eta: expected a float >= 0, got {eta!r}")
            self.eta = float(eta)

    def extra_log(self) -> dict[str, float]:
        r"""The last training batch's parts of a hybrid loss, ``l_simple`` and ``l_vlb_bpd``
        (:math:`L_\text{vlb}` without :math:`L_T`, bits/dim), or of the ``"vlb"`` loss;
        nothing for :math:`L_\text{simple}` alone."""
        return dict(self._last)

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, steps={self.steps}, schedule={self.schedule!r}, "
            f"variance={self.variance!r}, objective={self.objective!r}, "
            f"decoder={self.decoder!r}, sampler={self.sampler!r}"
        )


__all__ = [
    "DDPM",
    "DECODERS",
    "OBJECTIVES",
    "SAMPLERS",
    "STEP_SAMPLING",
    "VARIANCES",
    "discretized_gaussian_log_prob",
]

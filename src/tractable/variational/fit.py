r"""Fitting a flow to an unnormalised density by minimising the reverse KL divergence.

Given :math:`\log\tilde p` with :math:`p = \tilde p / Z`, a flow :math:`q_\theta` is fitted by
stochastic gradient descent on

.. math::
    \mathrm{KL}(q_\theta \,\|\, p) = \mathbb{E}_{q_\theta}\big[\log q_\theta(x)
    - \log\tilde p(x)\big] + \log Z,

whose gradient needs no :math:`Z` and no samples of :math:`p`: with the reparameterisation
:math:`x = f_\theta^{-1}(u)`, :math:`u \sim p_U`, the loss
:math:`\frac1B \sum_b [\log q_\theta(x_b) - \log\tilde p(x_b)]` is differentiated through the
draws (Rezende and Mohamed 2015, "Variational Inference with Normalizing Flows";
Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and Inference",
section 2.3.3). The loss is minus an ELBO, so it stays above :math:`-\log Z`.

Reverse KL is *zero-forcing*: :math:`q` is punished wherever :math:`p` is small, so it prefers
to miss a mode than to cover the gap between two (Bishop 2006, section 10.1.2). Temperature
annealing, :math:`\log\tilde p` scaled by :math:`\beta_t` rising linearly from 0.01 to 1 over
the first ``anneal`` steps, lets :math:`q` start broad (Rezende and Mohamed 2015 used
:math:`\beta_t = \min(1, 0.01 + t/10^4)`).

After training, :func:`~tractable.variational.estimate_log_z` on fresh draws gives the ELBO and
the importance-sampled :math:`\log Z` with standard errors and the effective sample size.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..checks import NonFiniteError, check_positive_int
from ..train import LRSchedule, TrainConfig, clip_gradients, make_optimizer
from .importance import (
    LogDensity,
    LogZEstimate,
    check_flow,
    check_log_density,
    density_values,
    log_weights,
)

SCHEDULES = ("constant", "cosine")
BETA_START = 0.01  # the first annealing temperature, as in Rezende and Mohamed (2015)


@dataclass(frozen=True)
class ReverseKLResult:
    r"""The outcome of :func:`fit_reverse_kl`.

    Attributes:
        elbo: :math:`\mathbb{E}_q[\log\tilde p - \log q]` on ``eval_samples`` fresh draws
            (a lower bound on :math:`\log Z`; the gap is :math:`\mathrm{KL}(q\,\|\,p)`).
        elbo_se: its standard error.
        log_z: the importance-sampled :math:`\log Z`, :math:`\log\frac1n\sum_i \tilde p(x_i) /
            q(x_i)` on the same draws.
        log_z_se: its delta-method standard error.
        ess: Kish's effective sample size of the importance weights.
        ess_fraction: ``ess / eval_samples``, 1 when :math:`q = p`.
        history: the loss of every step, ``steps`` floats (``nan`` at skipped steps); under
            annealing, the loss with that step's :math:`\beta`.
        steps: the number of steps.
        skipped_steps: steps whose loss or gradient was not finite, skipped without an update.
        eval_samples: the draws behind the figures.
        seconds: the training time.
    """

    elbo: float
    elbo_se: float
    log_z: float
    log_z_se: float
    ess: float
    ess_fraction: float
    history: list[float] = field(repr=False)
    steps: int
    skipped_steps: int = 0
    eval_samples: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        r"""One readable line.

        Example:
            >>> r = ReverseKLResult(-1.25, 0.01, -1.2, 0.005, 9000.0, 0.9, [], 100, 0, 10000)
            >>> r.summary()
            'ELBO -1.2500 ± 0.0100, log Z -1.2000 ± 0.0050, ESS 9000 of 10000 (90.0%), 100 steps'
        """
        text = (
            f"ELBO {self.elbo:.4f} ± {self.elbo_se:.4f}, log Z {self.log_z:.4f} ± "
            f"{self.log_z_se:.4f}, ESS {self.ess:.0f} of {self.eval_samples} "
            f"({100 * self.ess_fraction:.1f}%), {self.steps} steps"
        )
        if self.skipped_steps:
            text += f" ({self.skipped_steps} skipped)"
        return text

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        r"""A JSON-ready dict (non-finite numbers as ``None``; ``history`` optional)."""

        def clean(v: float) -> float | None:
            return v if math.isfinite(v) else None

        out: dict[str, Any] = {
            "elbo": clean(self.elbo), "elbo_se": clean(self.elbo_se),
            "log_z": clean(self.log_z), "log_z_se": clean(self.log_z_se),
            "ess": self.ess, "ess_fraction": self.ess_fraction, "steps": self.steps,
            "skipped_steps": self.skipped_steps, "eval_samples": self.eval_samples,
            "seconds": self.seconds,
        }  # fmt: skip
        if history:
            out["history"] = [clean(v) for v in self.history]
        return out


def anneal_beta(step: int, anneal: int) -> float:
    r"""The inverse temperature of 0-based ``step``: :math:`0.01 + 0.99\, t / N` for
    :math:`t < N` = ``anneal``, then 1.

    Example:
        >>> [anneal_beta(t, 4) for t in (0, 2, 4, 9)]
        [0.01, 0.505, 1.0, 1.0]
    """
    if step >= anneal:
        return 1.0
    return BETA_START + (1.0 - BETA_START) * step / anneal


def _check_options(
    steps: int, batch_size: int, lr: float, schedule: str, grad_clip: float | None,
    anneal: int, eval_samples: int, seed: int | None, progress: bool | None,
) -> TrainConfig:  # fmt: skip
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    config = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, grad_clip=grad_clip
    )
    check_positive_int(anneal, "anneal", minimum=0)
    if anneal > steps:
        raise ValueError(
            f"anneal: expected at most steps ({steps}) annealing steps, got {anneal} (the fit "
            "would end before the target reaches temperature 1)"
        )
    check_positive_int(eval_samples, "eval_samples", minimum=2)
    if seed is not None:
        check_positive_int(seed, "seed", minimum=0)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress: expected a bool or None, got {type(progress).__name__}")
    return config


def _step_loss(flow: nn.Module, log_density: LogDensity, batch: int, beta: float) -> Tensor:
    x, log_q = flow.sample_and_log_prob(batch)
    log_p = density_values(log_density, x)
    return (log_q - beta * log_p).mean()


def fit_reverse_kl(
    flow: nn.Module,
    log_density: LogDensity,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    schedule: str = "cosine",
    grad_clip: float | None = None,
    anneal: int = 0,
    eval_samples: int = 10_000,
    seed: int | None = None,
    progress: bool | None = None,
) -> ReverseKLResult:
    r"""Fit ``flow`` to :math:`p \propto \exp(\text{log\_density})` by minimising
    :math:`\mathrm{KL}(q\,\|\,p)` with reparameterised draws (see the module notes), in place.

    Args:
        flow: an unconditional :class:`~tractable.flows.Flow` on :math:`\mathbb{R}^D`, e.g.
            ``tr.flows.RealNVP(2)``; its parameters are updated with Adam.
        log_density: :math:`\log\tilde p`, ``(N, D) -> (N,)``, differentiable in ``x`` (a
            :class:`~tractable.variational.Target` works as is).
        steps: gradient steps, each on ``batch_size`` fresh draws of the flow.
        lr: Adam's learning rate; ``schedule`` ``"cosine"`` decays it to 0 over the steps,
            ``"constant"`` keeps it.
        grad_clip: the largest global gradient norm, or ``None``.
        anneal: steps of linear temperature annealing (:func:`anneal_beta`); 0 for none.
        eval_samples: fresh draws for the figures of the result (at least 2).
        seed: seeds every draw of the fit and of the evaluation (the global generator is left
            as it was); ``None`` uses the global generator. The flow's initial weights are the
            caller's.
        progress: a tqdm bar on stderr; ``None`` shows it when stderr is a terminal.

    A step whose loss or gradient is not finite is skipped (no update, so no NaN reaches the
    flow), counted in ``skipped_steps`` and reported in one warning; if every step is skipped,
    a :class:`~tractable.checks.NonFiniteError` (a ``ValueError``) says so.

    Returns:
        a :class:`ReverseKLResult` (the flow itself holds the fit).

    Example:
        >>> import tractable as tr
        >>> from tractable.variational import target
        >>> t = target("gaussian", offset=2.5)
        >>> q = tr.flows.Gaussian(2)
        >>> result = tr.fit_reverse_kl(q, t, steps=300, lr=0.05, eval_samples=2000, seed=0)
        >>> abs(result.log_z - 2.5) < 0.05, result.elbo <= result.log_z
        (True, True)
    """
    check_flow(flow)
    check_log_density(log_density)
    config = _check_options(
        steps, batch_size, lr, schedule, grad_clip, anneal, eval_samples, seed, progress
    )
    params = [p for p in flow.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    rates = LRSchedule(config)
    show = sys.stderr.isatty() if progress is None else progress
    history: list[float] = []
    skipped: list[int] = []
    was_training = flow.training
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        bar = tqdm(total=steps, desc="reverse KL", disable=not show, file=sys.stderr)
        try:
            flow.train()
            for step in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = rates.rate(step)
                optimizer.zero_grad(set_to_none=True)
                loss = _step_loss(flow, log_density, batch_size, anneal_beta(step, anneal))
                value = float(loss.detach())
                ok = math.isfinite(value)
                if ok:
                    loss.backward()
                    ok = math.isfinite(clip_gradients(params, grad_clip))
                bar.update(1)
                if not ok:
                    skipped.append(step)
                    history.append(math.nan)
                    continue
                optimizer.step()
                history.append(value)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{value:.4f}")
            optimizer.zero_grad(set_to_none=True)
            if len(skipped) == steps:
                raise NonFiniteError(
                    f"log_density: the loss or its gradient was not finite at every one of the "
                    f"{steps} steps, so the flow was never updated (does log_density return "
                    "NaN or -inf where the flow puts its mass?)"
                )
            seconds = time.perf_counter() - start
            flow.eval()
            log_w = log_weights(flow, log_density, eval_samples, max(batch_size, 4096))
        finally:
            bar.close()
            flow.train(was_training)
    if skipped:
        warnings.warn(
            f"fit_reverse_kl: skipped {len(skipped)} of {steps} steps whose loss or gradient "
            f"was not finite (the first at step {skipped[0]}); the flow was not updated there",
            stacklevel=2,
        )
    est = LogZEstimate.from_log_weights(log_w)
    return ReverseKLResult(
        elbo=est.elbo, elbo_se=est.elbo_se, log_z=est.log_z, log_z_se=est.log_z_se,
        ess=est.ess, ess_fraction=est.ess_fraction, history=history, steps=steps,
        skipped_steps=len(skipped), eval_samples=eval_samples, seconds=seconds,
    )  # fmt: skip


__all__ = ["ReverseKLResult", "SCHEDULES", "anneal_beta", "fit_reverse_kl"]

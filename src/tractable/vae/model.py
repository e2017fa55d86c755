r"""The variational autoencoder (Kingma and Welling 2014; Rezende et al. 2014) and its
importance-weighted variant (Burda et al. 2016).

A :class:`VAE` is an encoder :math:`q(z \mid x)`, a decoder :math:`p(x \mid z)` and a prior
:math:`p(z)`. With log-weights :math:`\log w = \log p(x \mid z) + \log p(z) - \log q(z \mid x)`:

.. math::
    \mathrm{ELBO}(x) = \mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z\mid x) \,\|\, p(z))
    \le \mathcal{L}_k(x) = \mathbb{E}\Big[\log \frac{1}{k} \sum_{i=1}^k w_i\Big]
    \le \log p(x).

The KL term is analytic for a diagonal Gaussian encoder with a standard (or diagonal) normal
prior and a Monte Carlo estimate otherwise.

KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): with ``warmup=N`` the KL term (for the
IWAE, the :math:`\log p(z) - \log q` part of each log-weight) is scaled by
:math:`\beta = \min(1, t / N)` at training step :math:`t`. The model counts its own steps (each
``loss`` call in training mode with gradients enabled), so any trainer works; a trainer that
knows the global step can pin it with ``model.set_step(step)`` before ``loss(batch)``. The
count is a buffer, saved in the ``state_dict``, so a resumed run continues the schedule.
Without warm-up, ``model.beta`` can be set by hand (a :math:`\beta`-VAE). Any
:math:`\beta \ne 1` makes the training loss a different objective from the bound.

A VAE implements :class:`tractable.protocol.Model` with ``likelihood = "bound"``: it has no
exact density (so no ``log_prob``), and :meth:`VAE.estimate` offers the estimators ``"iwae"``
(the bound :math:`\mathcal{L}_k`, the default), ``"importance"`` (an importance-sampling
*estimate* of :math:`\log p(x)` with standard errors) and ``"elbo"`` (a bound).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..checks import check_event, check_positive_int
from ..distributions import DiagNormal, StandardNormal
from ..estimators import Estimate, importance_sampling, log_mean_exp
from ..estimators import elbo as elbo_estimate
from ..estimators import iwae as iwae_estimate
from ..protocol import check_method
from .diagnostics import latent_diagnostics
from .encoders import GaussianEncoder
from .gaussian import kl_normal_normal, kl_normal_standard
from .priors import check_temperature

OBJECTIVES = ("elbo", "iwae")
DEFAULT_K = 100  # samples per example of VAE.estimate


def check_beta(value: object) -> float:
    r"""The KL weight :math:`\beta` as a float, after checking it is a finite number >= 0.

    Example:
        >>> check_beta(0.5)
        0.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"beta: expected a float >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"beta: expected a finite float >= 0, got {value!r}")
    return float(value)


class VAE(nn.Module):
    r"""A VAE: ``encoder`` :math:`q(z\mid x)`, ``decoder`` :math:`p(x\mid z)`, ``prior``
    :math:`p(z)` (a standard normal by default).

    Args:
        encoder: a :class:`GaussianEncoder` or :class:`FlowEncoder` (or any module with the
            same methods).
        decoder: one of the decoders of :mod:`tractable.vae`.
        prior: any module with ``log_prob(z)``, ``sample(n)`` and ``event_shape == (L,)``.
        objective: ``"elbo"`` or ``"iwae"``, the training loss.
        k: samples per example in the training objective.
        warmup: KL warm-up steps (0: none).
        analytic_kl: use the closed-form KL in the ELBO; ``None`` chooses it when it exists.

    The model protocol (:mod:`tractable.protocol`): ``loss(batch)``, ``estimate(x, method=,
    k=)`` (an :class:`~tractable.estimators.Estimate` tagged ``"bound"`` or ``"estimate"``),
    ``sample(n, temperature=)``, ``extra_log()``. For training with other objectives:
    ``elbo(x, k)`` and ``iwae(x, k)``, differentiable per-example bounds.

    Example:
        >>> import torch
        >>> from tractable import vae
        >>> model = vae.build_vae(6, latent=2, hidden=(8,))
        >>> x = torch.bernoulli(torch.full((4, 6), 0.5))
        >>> model.loss(x).shape, model.sample(3, temperature=0.8).shape
        (torch.Size([]), torch.Size([3, 6]))
        >>> est = model.estimate(x, method="iwae", k=10)
        >>> est.kind, est.values.shape, sorted(model.extra_log())
        ('bound', torch.Size([4]), ['beta', 'kl', 'reconstruction'])
    """

    likelihood: ClassVar[str] = "bound"
    estimators: ClassVar[tuple[str, ...]] = ("iwae", "importance", "elbo")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: nn.Module | None = None,
        objective: str = "elbo",
        k: int = 1,
        warmup: int = 0,
        analytic_kl: bool | None = None,
    ) -> None:
        super().__init__()
        for name, module, attrs in (
            ("encoder", encoder, ("rsample_and_log_prob", "gaussian", "latent", "event_shape")),
            ("decoder", decoder, ("log_prob", "sample", "mean", "check", "latent")),
        ):
            if not isinstance(module, nn.Module) or not all(hasattr(module, a) for a in attrs):
                raise TypeError(
                    f"{name}: expected a tractable VAE {name} (with {', '.join(attrs)}),"
                    f" got {type(module).__name__}"
                )
        if encoder.latent != decoder.latent:
            raise ValueError(
                f"decoder: expected latent={encoder.latent} to match the encoder, got "
                f"{decoder.latent}"
            )
        if tuple(encoder.event_shape) != tuple(decoder.event_shape):
            raise ValueError(
                f"decoder: expected event_shape {tuple(encoder.event_shape)} to match "
                f"the encoder, got {tuple(decoder.event_shape)}"
            )
        if prior is None:
            prior = StandardNormal(encoder.latent)
        if not isinstance(prior, nn.Module) or not (
            hasattr(prior, "log_prob") and hasattr(prior, "sample")
        ):
            raise TypeError(
                f"prior: expected a module with log_prob and sample, got {type(prior).__name__}"
            )
        if tuple(getattr(prior, "event_shape", ())) != (encoder.latent,):
            raise ValueError(
                f"prior: expected event_shape ({encoder.latent},), got "
                f"{getattr(prior, 'event_shape', None)}"
            )
        if getattr(prior, "context_features", 0):
            raise ValueError("prior: expected an unconditional distribution (context = 0)")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        check_positive_int(k, "k")
        check_positive_int(warmup, "warmup", minimum=0)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.objective = objective
        self.k = k
        self.warmup = warmup
        possible = isinstance(encoder, GaussianEncoder) and isinstance(
            prior, (StandardNormal, DiagNormal)
        )
        if analytic_kl and not possible:
            raise ValueError(
                "analytic_kl: a closed-form KL needs a GaussianEncoder and a StandardNormal or "
                f"DiagNormal prior, got {type(encoder).__name__} and {type(prior).__name__}"
            )
        self.analytic_kl = possible if analytic_kl is None else bool(analytic_kl)
        self._beta = 1.0
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # the last loss call's batch means, kept as tensors so that loss never syncs a device
        self._terms: dict[str, float | Tensor] = {}
        self.config: dict[str, object] | None = None  # set by build_vae, for rebuilding

    # -- shapes and schedule ----------------------------------------------------------------
    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.decoder.event_shape)

    @property
    def latent(self) -> int:
        return self.encoder.latent

    @property
    def beta(self) -> float:
        r"""The KL weight, :math:`\min(1, t/N)` under warm-up, else the value set by hand (1)."""
        if self.warmup > 0:
            return min(1.0, int(self.step) / self.warmup)
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        if self.warmup > 0:
            raise ValueError(
                f"beta: this model's beta follows the warm-up schedule (warmup={self.warmup}); "
                "call set_step(step), or build it with warmup=0 to set beta by hand"
            )
        self._beta = check_beta(value)

    def set_step(self, step: int) -> None:
        r"""Set the training step that drives the KL warm-up."""
        check_positive_int(step, "step", minimum=0)
        self.step.fill_(step)

    # -- the terms --------------------------------------------------------------------------
    def _check(self, x: Tensor, allow_empty: bool = False) -> Tensor:
        if allow_empty and isinstance(x, Tensor) and x.dim() > 0 and x.shape[0] == 0:
            # an empty batch: only its shape to check (torch's convention, an empty result)
            like = next(self.parameters(), None)
            return check_event(x, "x", self.event_shape, like=like, allow_empty=True)
        return self.decoder.check(x)

    def _log_joint(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`\log p(x\mid z)` and :math:`\log p(z)` for flat rows (x already checked)."""
        return self.decoder.log_prob(x, z, check=False), self.prior.log_prob(z)

    def _weights(
        self, x: Tensor, k: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        r"""``log p(x|z)``, ``log p(z)``, ``log q`` ``(k, N)`` and, for a Gaussian encoder, its
        ``loc`` and ``log_scale`` ``(N, L)``."""
        loc = log_scale = None
        if isinstance(self.encoder, GaussianEncoder):
            loc, log_scale, _ = self.encoder.gaussian(x, check=False)  # x is checked
            z, log_q = GaussianEncoder.draw(loc, log_scale, k)
        else:
            z, log_q = self.encoder.rsample_and_log_prob(x, k)
        log_px, log_pz = self._log_joint(self._repeat(x, k), z.reshape(k * x.shape[0], -1))
        n = x.shape[0]
        return log_px.reshape(k, n), log_pz.reshape(k, n), log_q, loc, log_scale

    @staticmethod
    def _repeat(x: Tensor, k: int) -> Tensor:
        r"""``(N, *event) -> (k N, *event)``, the batch repeated ``k`` times (a view for k = 1)."""
        return x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])

    def _kl(self, loc: Tensor, log_scale: Tensor) -> Tensor:
        if isinstance(self.prior, StandardNormal):
            return kl_normal_standard(loc, log_scale)
        return kl_normal_normal(loc, log_scale, self.prior.loc, self.prior.log_scale)

    def _elbo_parts(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if self.analytic_kl:
            # the closed-form KL needs neither log q(z|x) nor log p(z) of the draws
            loc, log_scale, _ = self.encoder.gaussian(x, check=False)  # x is checked
            z = GaussianEncoder.reparameterize(loc, log_scale, k)
            xr, zr = self._repeat(x, k), z.reshape(k * x.shape[0], -1)
            log_px = self.decoder.log_prob(xr, zr, check=False).reshape(k, x.shape[0])
            return log_px.mean(0), self._kl(loc, log_scale)
        log_px, log_pz, log_q, _, _ = self._weights(x, k)
        return log_px.mean(0), (log_q - log_pz).mean(0)

    def elbo(self, x: Tensor, k: int = 1, beta: float = 1.0) -> Tensor:
        r"""The ELBO per example (differentiable), a *lower bound* on :math:`\log p(x)`:

        .. math:: \frac{1}{k}\sum_{i=1}^k \log p(x \mid z_i) - \beta\,\mathrm{KL}(q \,\|\, p)

        with the KL analytic when possible (else averaged over the same ``k`` draws).
        ``(N, *event_shape) -> (N,)``; ``beta = 1`` is the bound itself.
        """
        check_positive_int(k, "k")
        beta = check_beta(beta)
        x = self._check(x, allow_empty=True)
        if x.shape[0] == 0:
            return x.new_zeros(0)
        rec, kl = self._elbo_parts(x, k)
        return rec - beta * kl

    def iwae(self, x: Tensor, k: int = 5, beta: float = 1.0) -> Tensor:
        r"""The k-sample importance-weighted bound per example (differentiable; Burda et al.
        2016), an unbiased estimate of :math:`\mathcal{L}_k \le \log p(x)`:

        .. math:: \log \frac{1}{k} \sum_{i=1}^k \exp\big(\log p(x\mid z_i)
                  + \beta(\log p(z_i) - \log q(z_i\mid x))\big)

        ``beta = 1`` is the bound itself. ``(N, *event_shape) -> (N,)``.
        """
        check_positive_int(k, "k")
        beta = check_beta(beta)
        x = self._check(x, allow_empty=True)
        if x.shape[0] == 0:
            return x.new_zeros(0)
        log_px, log_pz, log_q, _, _ = self._weights(x, k)
        return log_mean_exp(log_px + beta * (log_pz - log_q), dim=0)

    # -- the protocol -----------------------------------------------------------------------
    def loss(self, batch: Tensor | Sequence[Tensor]) -> Tensor:
        r"""The training loss: minus the mean ``objective`` (nats per example) with the
        current :attr:`beta` and ``k``. A batch is ``x`` or ``(x, ...)`` (labels ignored).

        Counts a training step (for the warm-up) when in training mode with gradients on, and
        keeps the batch means of the reconstruction term and the KL for :meth:`extra_log`.
        """
        x = batch if isinstance(batch, Tensor) else batch[0]
        x = self._check(x)
        beta = self.beta
        if self.objective == "elbo":
            rec, kl = self._elbo_parts(x, self.k)
            obj = rec - beta * kl
        else:
            log_px, log_pz, log_q, _, _ = self._weights(x, self.k)
            obj = log_mean_exp(log_px + beta * (log_pz - log_q), dim=0)
            rec, kl = log_px.mean(0), (log_q - log_pz).mean(0)
        if self.training and torch.is_grad_enabled():
            # a training step: its terms are what the trainer logs (validation batches, which
            # run in eval mode without gradients, do not overwrite them)
            self._terms = {
                "reconstruction": rec.detach().mean(),
                "kl": kl.detach().mean(),
                "beta": beta,
            }
            self.step += 1
        return -obj.mean()

    def extra_log(self) -> dict[str, float]:
        r"""The last training :meth:`loss` call's batch means of the reconstruction term
        :math:`\mathbb{E}_q[\log p(x \mid z)]` and of the KL term (for the IWAE objective its
        Monte Carlo estimate :math:`\mathbb{E}_q[\log q - \log p(z)]`), and :math:`\beta`, as
        floats; empty before the first call."""
        return {name: float(value) for name, value in self._terms.items()}

    def diagnostics(self, x: Tensor) -> dict[str, object]:
        r"""Posterior-collapse figures on data ``x`` ``(N, *event_shape)``: the latent size,
        the active units (Burda et al. 2016) and, where it is defined, the KL term per latent
        dimension (:func:`tractable.vae.latent_diagnostics`); ``tractable eval`` prints them."""
        return latent_diagnostics(self, x)

    def _proposal(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return self.encoder.rsample_and_log_prob(x, k)

    def _joint(self, x: Tensor, z: Tensor) -> Tensor:
        log_px, log_pz = self._log_joint(x, z)
        return log_px + log_pz

    def estimate(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
        repeats: int = 1,
        max_rows: int | None = None,
    ) -> Estimate:
        r"""A per-example log-likelihood :class:`~tractable.estimators.Estimate`, ``(N,)``
        values with standard errors, without gradients and in bounded memory.

        With log-weights :math:`\log w_i = \log p(x, z_i) - \log q(z_i \mid x)`,
        :math:`z_i \sim q(z \mid x)`, :math:`i = 1..k`:

        * ``"iwae"`` (default): :math:`\log \frac{1}{k}\sum_i w_i` read as the IWAE *bound*
          :math:`\mathcal{L}_k \le \log p(x)` (Burda et al. 2016), averaged over ``repeats``
          independent draws (kind ``"bound"``);
        * ``"importance"``: the same number read as an importance-sampling *estimate* of
          :math:`\log p(x)`, consistent as :math:`k \to \infty`, with delta-method standard
          errors and the effective sample size (kind ``"estimate"``; Burda et al. used
          :math:`k = 5000`);
        * ``"elbo"``: :math:`\frac{1}{k}\sum_i \log w_i`, a Monte Carlo ELBO (kind ``"bound"``).

        Args:
            x: ``(N, *event_shape)`` data.
            context: must be ``None`` (a VAE is unconditional).
            method: ``"iwae"``, ``"importance"`` or ``"elbo"`` (see
                :data:`tractable.protocol.ESTIMATORS`).
            k: samples per example (default 100).
            repeats: independent draws averaged by ``"iwae"`` (1 for the other methods).
            max_rows: the most rows passed to the networks at once (default: ``2**24`` data
                values); see :mod:`tractable.estimators`.

        Example:
            >>> import torch
            >>> from tractable.vae import build_vae
            >>> model = build_vae(6, latent=2, hidden=(8,))
            >>> x = torch.bernoulli(torch.full((3, 6), 0.5))
            >>> [model.estimate(x, method=m, k=5).kind for m in model.estimators]
            ['bound', 'estimate', 'bound']
        """
        method = check_method(self, method)
        if context is not None:
            raise ValueError("context: a VAE is unconditional, got a context tensor")
        k = DEFAULT_K if k is None else check_positive_int(k, "k")
        check_positive_int(repeats, "repeats")
        if repeats != 1 and method != "iwae":
            raise ValueError(
                f"repeats: only method 'iwae' averages repeated draws, got repeats={repeats} "
                f"with method {method!r}"
            )
        x = self._check(x, allow_empty=True)
        common = {"sample_and_log_q": self._proposal, "k": k, "max_rows": max_rows}
        was_training = self.training
        self.eval()
        try:
            if method == "iwae":
                return iwae_estimate(self._joint, x, repeats=repeats, **common)
            if method == "importance":
                return importance_sampling(self._joint, x, **common)
            return elbo_estimate(self._joint, x, **common)
        finally:
            self.train(was_training)

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""``n`` draws ``(n, *event_shape)``: :math:`z \sim p_T(z)`, then
        :math:`x \sim p(x \mid z)`; ``n = 0`` gives an empty ``(0, *event_shape)``.

        ``temperature`` :math:`T` scales the spread of the prior draws (Kingma and Dhariwal
        2018), :math:`z = T\epsilon` for a standard normal prior; priors that support it
        (the distributions of :mod:`tractable.distributions`, flow priors, the
        :class:`~tractable.vae.VampPrior`) say what it means for them; other priors take
        :math:`T = 1` only. The decoder's own noise is not tempered: for its mean (e.g. pixel
        probabilities) use ``model.decoder.mean(z)``.
        """
        if context is not None:
            raise ValueError("context: a VAE is unconditional, got a context tensor")
        check_positive_int(n, "n", minimum=0)
        t = check_temperature(temperature)
        with torch.no_grad():
            if n == 0:
                # one draw sliced to none: the dtype and event shape of an empty sample
                return self.decoder.sample(self._prior_draw(1, t))[:0]
            return self.decoder.sample(self._prior_draw(n, t))

    def _prior_draw(self, n: int, temperature: float) -> Tensor:
        if temperature == 1.0:
            return self.prior.sample(n)
        z = self._tempered_draw(n, temperature)
        if not bool(torch.isfinite(z).all()):
            raise ValueError(
                f"temperature: the prior draws at temperature {temperature:g} are not finite; "
                "use a temperature nearer 1"
            )
        return z

    def _tempered_draw(self, n: int, temperature: float) -> Tensor:
        if "temperature" not in inspect.signature(self.prior.sample).parameters:
            raise ValueError(
                f"temperature: the prior {type(self.prior).__name__} cannot sample at a "
                f"temperature, so only 1.0 works; got {temperature}"
            )
        return self.prior.sample(n, temperature=temperature)

    def encode(self, x: Tensor) -> Tensor:
        r"""The mean of the encoder's Gaussian stage, ``(N, L)``."""
        return self.encoder.gaussian(self._check(x))[0]

    def reconstruct(self, x: Tensor, mean: bool = True) -> Tensor:
        r"""Decode the encoder's mean: the decoder mean (or a draw), ``(N, *event_shape)``."""
        with torch.no_grad():
            z = self.encode(x)
            return self.decoder.mean(z) if mean else self.decoder.sample(z)

    def extra_repr(self) -> str:
        return (
            f"objective={self.objective!r}, k={self.k}, warmup={self.warmup}, "
            f"analytic_kl={self.analytic_kl}"
        )


__all__ = ["VAE"]

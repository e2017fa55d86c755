r"""The generative adversarial network (Goodfellow et al. 2014) behind the model protocol.

A generator :math:`G(z)`, :math:`z \sim \mathcal{N}(0, I)`, and a discriminator (critic)
:math:`D(x)` play the game of :mod:`tractable.gan.losses`. The model has no likelihood
(``likelihood = "none"``): it is compared by its samples (FID, precision/recall, mode
coverage, the birthday test). It is trained by two optimisers through the protocol of
:mod:`tractable.train.updates`: ``parts()`` names them with their learning rates (two
time-scale updates, Heusel et al. 2017) and Adam betas, ``updates(step)`` plans ``n_critic``
discriminator steps per generator step (alternating) or both at once (simultaneous), and
``loss(batch, part)`` is each part's loss.

Stabilisers: spectral normalisation of the discriminator's layers (Miyato et al. 2018, through
``torch.nn.utils.parametrizations.spectral_norm``), weight clipping (WGAN), the gradient and R1
penalties, and an exponential moving average of the generator's weights (Yazici et al. 2019),
which is what :meth:`GAN.sample` draws from.

Example:
    >>> import torch
    >>> from tractable.gan import build_gan
    >>> gan = build_gan((2,), noise=2, hidden=(16,))
    >>> gan.loss(torch.randn(8, 2), "discriminator").shape, gan.sample(5).shape
    (torch.Size([]), torch.Size([5, 2]))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_context, check_event, check_positive_int, split_batch
from ..estimators import Estimate
from ..protocol import check_method
from .losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty, r1_penalty

PARTS = ("discriminator", "generator")


class GAN(nn.Module):
    r"""A GAN: ``generator`` ``(z, c) -> x``, ``discriminator`` ``(x, c) -> (N,)`` scores.

    Args:
        generator, discriminator: the networks (see :mod:`tractable.nn.adversarial`).
        event_shape: the shape of one example.
        noise: the dimension of :math:`z`.
        context: the width of a one-hot class context (0: unconditional).
        loss: one of :data:`~tractable.gan.losses.LOSSES`.
        n_critic: discriminator steps per generator step.
        simultaneous: update both at once (every gradient at the same parameters) instead.
        gp: the gradient-penalty weight :math:`\lambda` (``"wgan-gp"``).
        r1: the R1 weight :math:`\gamma` (0: none).
        clip: the weight-clipping bound :math:`c` (``"wgan"``).
        lr_d, lr_g, betas: the two optimisers' learning rates and Adam betas.
        ema: the decay of the generator's moving average (0: sample from the generator).
        curriculum: progressive growing (Karras et al. 2018) for networks with ``stages``
            (:class:`~tractable.nn.growing.GrowingGenerator`): the training steps at
            which each larger resolution starts to fade in; ``None``: full resolution from
            the start.
        fade: the steps over which a new resolution fades in.
    """

    likelihood = "none"
    estimators: tuple[str, ...] = ()

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        event_shape: Sequence[int],
        noise: int,
        *,
        context: int = 0,
        loss: str = "nonsaturating",
        n_critic: int = 1,
        simultaneous: bool = False,
        gp: float = 10.0,
        r1: float = 0.0,
        clip: float = 0.01,
        lr_d: float = 2e-4,
        lr_g: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        ema: float = 0.999,
        curriculum: Sequence[int] | None = None,
        fade: int = 500,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
        check_positive_int(n_critic, "n_critic")
        for name, value in (("gp", gp), ("r1", r1), ("clip", clip), ("lr_d", lr_d)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}")
        if not 0.0 <= float(ema) < 1.0:
            raise ValueError(f"ema: expected a decay in [0, 1), got {ema!r}")
        self.generator, self.discriminator = generator, discriminator
        self.event_shape = tuple(int(s) for s in event_shape)
        self.noise = check_positive_int(noise, "noise")
        self.context_features = check_positive_int(context, "context", 0)
        self.kind, self.n_critic, self.simultaneous = loss, n_critic, bool(simultaneous)
        self.gp, self.r1, self.clip = float(gp), float(r1), float(clip)
        self.lr_d, self.lr_g, self.betas = float(lr_d), float(lr_g), tuple(betas)
        self.decay = float(ema)
        self.ema = copy.deepcopy(generator).requires_grad_(False) if self.decay > 0 else None
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        self._terms: dict[str, Tensor] = {}
        self.curriculum = None if curriculum is None else [int(b) for b in curriculum]
        self.fade = check_positive_int(fade, "fade")
        if self.curriculum is not None:
            stages = getattr(generator, "stages", None)
            if stages is None or getattr(discriminator, "stages", None) != stages:
                raise ValueError(
                    "curriculum: progressive growing needs growing networks (image GANs: "
                    "GrowingGenerator and GrowingDiscriminator)"
                )
            if len(self.curriculum) != stages or sorted(self.curriculum) != self.curriculum:
                raise ValueError(
                    f"curriculum: expected {stages} increasing steps (when each of the "
                    f"{stages} larger resolutions starts), got {list(curriculum)}"
                )
            self._grow(0)

    # -- the protocol ---------------------------------------------------------------------------
    def parts(self) -> dict[str, dict[str, Any]]:
        r"""The two optimisers' parameters, learning rates and Adam betas."""
        return {
            "discriminator": {
                "params": list(self.discriminator.parameters()),
                "lr": self.lr_d,
                "betas": self.betas,
            },
            "generator": {
                "params": list(self.generator.parameters()),
                "lr": self.lr_g,
                "betas": self.betas,
            },
        }

    def _grow(self, step: int) -> None:
        r"""Set the resolution stage and fade-in of the growing networks for ``step``."""
        stage = sum(step >= b for b in self.curriculum)
        alpha = 1.0 if stage == 0 else min(1.0, (step - self.curriculum[stage - 1]) / self.fade)
        for net in (self.generator, self.discriminator, self.ema):
            if net is not None:
                net.stage.fill_(stage)
                net.alpha.fill_(alpha)

    def _at_resolution(self, x: Tensor) -> Tensor:
        r"""Real images at the current stage's resolution, blended like the generator's output
        while a resolution fades in (Karras et al. 2018)."""
        g = self.generator
        factor = 2 ** (g.stages - int(g.stage))
        if factor > 1:
            x = nn.functional.avg_pool2d(x, factor)
        alpha = float(g.alpha)
        if int(g.stage) > 0 and alpha < 1.0:
            low = nn.functional.interpolate(nn.functional.avg_pool2d(x, 2), scale_factor=2)
            x = alpha * x + (1.0 - alpha) * low
        return x

    def updates(self, step: int) -> list[list[str]]:
        r"""``n_critic`` discriminator steps, then one generator step (or both at once); with
        a curriculum, also the resolution of this step."""
        if self.curriculum is not None:
            self._grow(step)
        if self.simultaneous:
            return [["discriminator", "generator"]]
        return (
            [["discriminator"]] if step % (self.n_critic + 1) < self.n_critic else [["generator"]]
        )

    def _unpack(self, batch: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        x, c = split_batch(batch, self.context_features)
        # cast to the networks' dtype and device (float32 data for a float64 model, integers)
        like = next(self.generator.parameters(), None)
        x = check_event(x, "x", self.event_shape, like=like)
        if not self.context_features:
            return x, None
        return x, check_context(c, self.context_features, x.shape[0], like=like)

    def _fake(self, n: int, c: Tensor | None, like: Tensor) -> Tensor:
        z = torch.randn(n, self.noise, dtype=like.dtype, device=like.device)
        return self.generator(z, c)

    def loss(self, batch: Tensor | Sequence[Tensor], part: str | None = None) -> Tensor:
        r"""The loss of ``part``: ``"discriminator"`` (generated samples detached, plus the
        penalties), ``"generator"``, or ``None``: the discriminator's loss without detaching
        (what validation reports: how well the discriminator still tells data from samples)."""
        if part not in (None, *PARTS):
            raise ValueError(f"part: expected one of {PARTS} or None, got {part!r}")
        x, c = self._unpack(batch)
        if self.curriculum is not None:
            x = self._at_resolution(x)
        if self.kind == "wgan":
            with torch.no_grad():  # the critic stays in the clipped box it is defined on
                for p in self.discriminator.parameters():
                    p.clamp_(-self.clip, self.clip)
        critic = (lambda t: self.discriminator(t, c)) if c is not None else self.discriminator
        if part == "generator":
            self._update_ema()
            fake_scores = critic(self._fake(x.shape[0], c, x))
            loss = generator_loss(self.kind, fake_scores)
            self._terms["g_loss"] = loss.detach()
            return loss
        fake = self._fake(x.shape[0], c, x)
        if part == "discriminator":
            fake = fake.detach()
        real_scores, fake_scores = critic(x), critic(fake)
        loss = discriminator_loss(self.kind, real_scores, fake_scores)
        terms = {"d_loss": loss.detach()}
        if self.kind == "wgan-gp" and part == "discriminator":
            penalty = gradient_penalty(critic, x, fake)
            loss = loss + self.gp * penalty
            terms["gradient_penalty"] = penalty.detach()
        if self.r1 > 0 and part == "discriminator":
            penalty = r1_penalty(critic, x)
            loss = loss + 0.5 * self.r1 * penalty
            terms["r1_penalty"] = penalty.detach()
        if self.kind in ("minimax", "nonsaturating"):  # D(x) as a probability
            terms["d_real"] = torch.sigmoid(real_scores.detach()).mean()
            terms["d_fake"] = torch.sigmoid(fake_scores.detach()).mean()
        else:
            terms["d_real"] = real_scores.detach().mean()
            terms["d_fake"] = fake_scores.detach().mean()
        if part == "discriminator":
            self._terms.update(terms)
        return loss

    def _update_ema(self) -> None:
        r"""Move the average towards the generator's weights as they are now (after its last
        step); called once per generator step."""
        if self.ema is None or not (self.training and torch.is_grad_enabled()):
            return
        with torch.no_grad():
            # a bias-corrected start: the average is the plain mean over the first steps
            decay = min(self.decay, (1.0 + float(self.ema_steps)) / (10.0 + float(self.ema_steps)))
            for e, p in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
                e.lerp_(p, 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
                e.copy_(b)
            self.ema_steps += 1

    def estimate(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
    ) -> Estimate:
        r"""A GAN has no likelihood: always a ``ValueError`` that says so."""
        check_method(self, method)
        raise ValueError("method: a GAN has no likelihood")  # pragma: no cover (unreachable)

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        r"""``n`` samples ``(n, *event_shape)`` (``(M, n, ...)`` for ``M`` context rows) from
        the moving average of the generator (the generator itself with ``ema=0``), with
        :math:`z \sim \mathcal{N}(0, T^2 I)`: a lower ``temperature`` trades diversity for
        typical samples, as the truncation trick does (Brock et al. 2019)."""
        check_positive_int(n, "n", 0)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not (math.isfinite(temperature) and temperature > 0)
        ):
            raise ValueError(f"temperature: expected a finite float > 0, got {temperature!r}")
        net = self.ema if self.ema is not None else self.generator
        anchor = next(self.generator.parameters())
        if self.context_features == 0:
            if context is not None:
                raise ValueError("context: this GAN is unconditional but a context was given")
            c, lead = None, (n,)
        else:
            c = check_context(context, self.context_features, None)
            lead = (c.shape[0], n)
            c = c.repeat_interleave(n, dim=0)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                z = temperature * torch.randn(
                    math.prod(lead), self.noise, dtype=anchor.dtype, device=anchor.device
                )
                x = net(z, c) if z.shape[0] else torch.empty(0, *self.event_shape).to(anchor)
                if hasattr(net, "full") and z.shape[0]:
                    x = net.full(x)  # a growing generator: up to the full image size
        finally:
            net.train(was_training)
        if temperature != 1.0 and not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"temperature: the samples drawn at temperature {temperature:g} are not finite "
                "(the scaled noise overflows the generator); use a temperature nearer 1"
            )
        return x.reshape(*lead, *self.event_shape)

    def extra_log(self) -> dict[str, float]:
        r"""The last discriminator step's loss, mean :math:`D(x)` and :math:`D(G(z))`
        (probabilities for the minimax losses, scores otherwise) and penalties, and the last
        generator step's loss."""
        return {name: float(value) for name, value in self._terms.items()}

    def extra_repr(self) -> str:
        return (
            f"loss={self.kind!r}, n_critic={self.n_critic}, simultaneous={self.simultaneous}, "
            f"noise={self.noise}, context={self.context_features}, ema={self.decay}"
        )


__all__ = ["GAN", "PARTS"]

r"""The multiscale image flow model (Dinh et al. 2017, RealNVP; Kingma and Dhariwal 2018,
Glow); its builders are in :mod:`tractable.flows.image`.

A :class:`MultiscaleFlow` runs a list of *stages* on an image ``(N, C, H, W)``; after every
stage but the last, half of the channels leave the flow ("factor-out") and the rest go on to
the next stage. Each factored half :math:`z_l` gets a learned conditional prior as in Glow, a
diagonal Gaussian whose mean and log-scale come from a zero-initialised convolution of the
remaining half :math:`h_l` (and of the context): :math:`z_l \sim \mathcal{N}(\mu_l(h_l, c),
\sigma_l(h_l, c)^2)`. The last stage's output has a Gaussian prior with learned per-channel
parameters (and a zero-initialised linear function of the context).

Standardising every :math:`z_l` by its prior is itself a bijection (triangular: :math:`h_l` is
known when :math:`z_l` is standardised), so the whole model is one invertible map from the
image to a standard-normal latent :math:`\epsilon \in \mathbb{R}^{CHW}`,

.. math:: \log p(x \mid c) = \log \mathcal{N}(\epsilon; 0, I)
          + \sum_{\text{stages}} \log|\det J| - \sum_l \sum_i \log \sigma_{l, i},

This map is the transform :class:`Multiscale`, and :class:`MultiscaleFlow` is the
:class:`~tractable.flows.Flow` of it on a standard normal, so ``transform``, ``inverse``,
``sample`` (with temperature: :math:`z_l = \mu_l + T \sigma_l \epsilon_l`, as in Glow),
``sample_and_log_prob``, ``loss`` and ``estimate`` are those of every flow. The latent
:math:`\epsilon` is laid out as the flattened factored halves in stage order, then the flattened
top: ``latent_shapes`` lists their ``(C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..distributions import StandardNormal
from ..transforms import Transform, soft_clamp
from ..transforms.base import sum_except_batch
from ..transforms.image import Squeeze, squeezed_shape
from .base import Flow, context_width


def check_image_shape(shape: object) -> tuple[int, int, int]:
    r"""An image shape ``(C, H, W)`` of positive ints as a tuple; a ``ValueError`` naming
    ``shape`` otherwise.

    Example:
        >>> check_image_shape([1, 28, 28])
        (1, 28, 28)
    """
    if (
        not isinstance(shape, Sequence)
        or len(shape) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ValueError(f"shape: expected (C, H, W) with positive ints, got {shape!r}")
    return (shape[0], shape[1], shape[2])


class GaussianPrior(nn.Module):
    r"""A diagonal Gaussian over ``(C, H, W)`` latents whose parameters are learned: a
    per-channel bias, plus a zero-initialised :math:`3 \times 3` convolution of a conditioning
    image ``(N, in_channels, H, W)`` and a zero-initialised linear map of a context ``(N, K)``.
    Returns ``(loc, log_scale)``, each ``(N, C, H, W)``; the log-scale is softly bounded to
    :math:`(-B, B)`. Starts as :math:`\mathcal{N}(0, I)`.
    """

    def __init__(
        self,
        channels: int,
        size: tuple[int, int],
        in_channels: int = 0,
        context: int = 0,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__()
        self.channels, self.size, self.scale_bound = channels, tuple(size), float(scale_bound)
        self.bias = nn.Parameter(torch.zeros(2 * channels))
        self.conv = (
            nn.Conv2d(in_channels, 2 * channels, 3, padding=1, bias=False) if in_channels else None
        )
        self.linear = nn.Linear(context, 2 * channels, bias=False) if context else None
        for layer in (self.conv, self.linear):
            if layer is not None:
                nn.init.zeros_(layer.weight)

    def forward(self, n: int, h: Tensor | None, context: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.bias.view(1, -1, 1, 1).expand(n, -1, *self.size)
        if self.conv is not None:
            out = out + self.conv(h)
        if self.linear is not None:
            out = out + self.linear(context)[:, :, None, None]
        loc, raw = out.chunk(2, dim=1)
        return loc, soft_clamp(raw, self.scale_bound)


def _stage_output_shape(
    stage: Transform, shape: tuple[int, int, int], i: int
) -> tuple[int, int, int]:
    for module in stage.modules():
        if isinstance(module, Squeeze):
            shape = squeezed_shape(shape, f"stages[{i}]")
    return shape


class Multiscale(Transform):
    r"""The multiscale map from an image to a standard-normal latent (see the module notes):
    ``forward`` takes ``(N, C, H, W)`` to :math:`\epsilon` ``(N, CHW)`` with its
    log-abs-det-Jacobian ``(N,)``, ``inverse`` goes back.

    Args:
        shape: the image shape ``(C, H, W)``.
        stages: image transforms run in turn; they may change the shape only through
            :class:`~tractable.transforms.image.Squeeze` layers. Half of the channels
            (the last :math:`\lceil C/2 \rceil`) leave after each stage but the last.
        context: the width of the context the stages and the priors see (0 for none).
        scale_bound: the soft bound :math:`B` of the priors' log-scales.
    """

    event_dims = 3

    def __init__(
        self,
        shape: Sequence[int],
        stages: Sequence[Transform],
        context: int = 0,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__()
        shape = check_image_shape(shape)
        stages = list(stages)
        if not stages:
            raise ValueError("stages: expected at least one stage, got none")
        for i, t in enumerate(stages):
            if not isinstance(t, Transform):
                raise TypeError(f"stages[{i}]: expected a Transform, got {type(t).__name__}")
        if not isinstance(scale_bound, (int, float)) or not scale_bound > 0:
            raise ValueError(f"scale_bound: expected a float > 0, got {scale_bound!r}")
        priors, latents, s = [], [], shape
        for i, stage in enumerate(stages):
            c, h, w = _stage_output_shape(stage, s, i)
            if i == len(stages) - 1:
                priors.append(GaussianPrior(c, (h, w), 0, context, scale_bound))
                latents.append((c, h, w))
            elif c < 2:
                raise ValueError(
                    f"stages[{i}]: factoring out half of the channels needs at least 2, got "
                    f"(C, H, W) = {(c, h, w)}"
                )
            else:
                keep = c // 2
                priors.append(GaussianPrior(c - keep, (h, w), keep, context, scale_bound))
                latents.append((c - keep, h, w))
                s = (keep, h, w)
        self.stages = nn.ModuleList(stages)
        self.priors = nn.ModuleList(priors)
        self.latent_shapes = tuple(latents)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, last = x.shape[0], len(self.stages) - 1
        ladj, parts, h = x.new_zeros(n), [], x
        for i, (stage, prior) in enumerate(zip(self.stages, self.priors, strict=True)):
            h, ladj_stage = stage(h, context)
            ladj = ladj + ladj_stage
            if i < last:
                k = h.shape[1] // 2
                h, out = h[:, :k], h[:, k:]
                loc, log_scale = prior(n, h, context)
            else:
                out = h
                loc, log_scale = prior(n, None, context)
            parts.append(((out - loc) * torch.exp(-log_scale)).reshape(n, -1))
            ladj = ladj - sum_except_batch(log_scale)
        return torch.cat(parts, dim=1), ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, last = z.shape[0], len(self.stages) - 1
        sizes = [math.prod(s) for s in self.latent_shapes]
        pieces = [
            p.reshape(n, *s) for p, s in zip(z.split(sizes, 1), self.latent_shapes, strict=True)
        ]
        loc, log_scale = self.priors[last](n, None, context)
        h = loc + torch.exp(log_scale) * pieces[last]
        ladj = sum_except_batch(log_scale)
        for i in reversed(range(len(self.stages))):
            if i < last:
                loc, log_scale = self.priors[i](n, h, context)
                h = torch.cat([h, loc + torch.exp(log_scale) * pieces[i]], dim=1)
                ladj = ladj + sum_except_batch(log_scale)
            h, ladj_stage = self.stages[i].inverse(h, context)
            ladj = ladj + ladj_stage
        return h, ladj


def _rename_old_keys(
    module: nn.Module, state_dict: Mapping[str, Any], prefix: str, *args: object
) -> None:
    # checkpoints written before MultiscaleFlow became a Flow keep "stages." and "priors." at
    # its top level; they now live in its transform
    old = (prefix + "stages.", prefix + "priors.")
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "layers." + key[len(prefix) :]] = state_dict.pop(key)


class MultiscaleFlow(Flow):
    r"""A multiscale flow with factor-out and learned conditional priors (see the module notes):
    the :class:`~tractable.flows.Flow` of a :class:`Multiscale` transform on
    :math:`\mathcal{N}(0, I_{CHW})`, whose ``event_shape`` is the image's ``(C, H, W)``.

    Args:
        shape: the image shape ``(C, H, W)``.
        stages: image transforms run in turn; they may change the shape only through
            :class:`~tractable.transforms.image.Squeeze` layers. Half of the channels
            (the last :math:`\lceil C/2 \rceil`) leave after each stage but the last.
        context: the number of context features (0 for an unconditional flow); the stages and
            the priors see the (embedded) context. Integer class labels ``(N,)`` in a training
            batch are one-hot encoded.
        embedding: an optional network applied to the raw context first.
        scale_bound: the soft bound :math:`B` of the priors' log-scales.

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.flows.image import Glow
        >>> flow = Glow((1, 4, 4), levels=2, depth=1, hidden=8)
        >>> flow.log_prob(torch.rand(3, 1, 4, 4)).shape, flow.sample(2).shape
        (torch.Size([3]), torch.Size([2, 1, 4, 4]))
        >>> flow.latent_shapes
        ((2, 2, 2), (8, 1, 1))
    """

    def __init__(
        self,
        shape: Sequence[int],
        stages: Sequence[Transform],
        context: int = 0,
        embedding: nn.Module | None = None,
        scale_bound: float = 5.0,
    ) -> None:
        shape = check_image_shape(shape)
        layers = Multiscale(shape, stages, context_width(context, embedding), scale_bound)
        base = StandardNormal(math.prod(shape))
        super().__init__(layers, base, context=context, embedding=embedding)
        self.event_shape = shape
        self.register_load_state_dict_pre_hook(_rename_old_keys)

    @property
    def stages(self) -> nn.ModuleList:
        r"""The stages of the :class:`Multiscale` transform."""
        return self.layers.stages

    @property
    def priors(self) -> nn.ModuleList:
        r"""The learned priors of the factored halves, then of the last stage's output."""
        return self.layers.priors

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        r"""The ``(C, H, W)`` of each part of the latent, in the order of :meth:`transform`."""
        return self.layers.latent_shapes

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, latent_shapes={self.latent_shapes}, "
            f"context={self.context_features}"
        )


__all__ = ["GaussianPrior", "Multiscale", "MultiscaleFlow", "check_image_shape"]

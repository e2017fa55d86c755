r"""A small U-Net for images (28x28, 8x8, ...) that sees a time and optional class labels, for
diffusion and flow matching, with classifier-free guidance.

The architecture follows DDPM's (Ho et al. 2020; Ronneberger et al. 2015): residual blocks
with group normalisation and SiLU, the time's sinusoidal embedding (and a class embedding)
added inside every block, one downsampling by 2 per level (strided convolution) and nearest
upsampling with skip connections back up. Sizes must be divisible by :math:`2^{L-1}` for
:math:`L` levels: with the default three, 28 -> 14 -> 7 and 8 -> 4 -> 2.

Classifier-free guidance (Ho and Salimans 2021): in training, each example's class is dropped
(its one-hot context replaced by zeros, "no class") with probability ``drop``; in evaluation,
with ``guidance`` :math:`w \ne 0`, the output is :math:`(1 + w) f(x, t, c) - w f(x, t,
\varnothing)`. A guided field is no longer the model's own density's: keep :math:`w = 0` for
likelihoods.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from .time import SinusoidalEmbedding, time_mlp

NETWORKS = ("auto", "mlp", "unet")


def _norm(channels: int) -> nn.GroupNorm:
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    r"""A residual block ``(N, C_in, H, W) -> (N, C_out, H, W)`` with an embedding ``(N, E)``
    added between its two convolutions."""

    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    r"""``(x, t, c) -> (N, C, H, W)``: a field on images.

    Args:
        shape: ``(C, H, W)``.
        context: the width of a one-hot class context (0: unconditional).
        width: the channels of the first level.
        mults: the channel multiplier of each level.
        embedding: the width of the time (and class) embedding.
        scale: the time embedding's scale (see :class:`~tractable.nn.time.SinusoidalEmbedding`).
        drop: the probability of dropping the class in training (classifier-free guidance).
        guidance: the guidance weight :math:`w` in evaluation mode.

    Example:
        >>> import torch
        >>> net = UNet((1, 8, 8), context=3, width=8)
        >>> c = torch.eye(3)[[0, 2]]
        >>> net(torch.randn(2, 1, 8, 8), torch.rand(2), c).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        shape: Sequence[int],
        context: int = 0,
        width: int = 32,
        mults: Sequence[int] = (1, 2, 2),
        embedding: int = 64,
        scale: float = 1000.0,
        drop: float = 0.0,
        guidance: float = 0.0,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"shape: expected (C, H, W), got {shape}")
        factor = 2 ** (len(mults) - 1)
        if shape[1] % factor or shape[2] % factor:
            raise ValueError(
                f"shape: height and width must be divisible by {factor} for {len(mults)} "
                f"levels, got {shape}"
            )
        if not 0.0 <= float(drop) < 1.0:
            raise ValueError(f"drop: expected a probability in [0, 1), got {drop!r}")
        self.shape, self.context = shape, check_positive_int(context, "context", 0)
        self.drop, self.guidance = float(drop), float(guidance)
        width = check_positive_int(width, "width")
        self.time = nn.Sequential(
            SinusoidalEmbedding(embedding, scale),
            nn.Linear(embedding, embedding),
            nn.SiLU(),
            nn.Linear(embedding, embedding),
        )
        self.label = nn.Linear(context, embedding, bias=False) if context else None
        chans = [width * int(m) for m in mults]
        self.inp = nn.Conv2d(shape[0], chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        prev = chans[0]
        for i, c in enumerate(chans):
            self.down.append(ResBlock(prev, c, embedding))
            prev = c
            last = i == len(chans) - 1
            self.pool.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, embedding)
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            self.up.append(ResBlock(prev + c, c, embedding))
            prev = c
            self.unpool.append(
                nn.Identity()
                if i == 0
                else nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 3, padding=1))
            )
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), nn.Conv2d(prev, shape[0], 3, padding=1))

    def _field(self, x: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        e = self.time(t.to(x).expand(x.shape[0]) if t.dim() == 0 else t.to(x))
        if self.label is not None and c is not None:
            e = e + self.label(c.to(x))
        h = self.inp(x)
        skips = []
        for block, pool in zip(self.down, self.pool, strict=True):
            h = block(h, e)
            skips.append(h)
            h = pool(h)
        h = self.mid(h, e)
        for block, unpool in zip(self.up, self.unpool, strict=True):
            h = block(torch.cat([h, skips.pop()], dim=1), e)
            h = unpool(h)
        return self.out(h)

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        if context is None or self.label is None:
            return self._field(x, t, None)
        if self.training and self.drop > 0:
            keep = torch.rand(x.shape[0], 1, device=x.device) >= self.drop
            return self._field(x, t, context * keep.to(context.dtype))
        if not self.training and self.guidance != 0:
            w = self.guidance
            return (1 + w) * self._field(x, t, context) - w * self._field(x, t, None)
        return self._field(x, t, context)


def field_network(
    event: Sequence[int],
    context: int,
    network: str,
    hidden: Sequence[int],
    embedding: int,
    activation: str,
    time_scale: float,
    width: int,
    drop: float = 0.0,
    guidance: float = 0.0,
) -> nn.Module:
    r"""A field ``(x, t, c) -> (N, *event)`` by name: ``"mlp"`` (:func:`~tractable.nn.time.
    time_mlp` of ``hidden``), ``"unet"`` for ``(C, H, W)`` (:class:`UNet` of ``width``
    channels, its embedding twice ``embedding`` wide), or ``"auto"``: the U-Net for images
    ``(C, H, W)``, the MLP for vectors (data seen as images, e.g. ``--data-option image=true``,
    get the network made for them without ``-o network=unet``).

    Example:
        >>> field_network((1, 8, 8), 0, "unet", (), 16, "silu", 10.0, 8).shape
        (1, 8, 8)
        >>> type(field_network((1, 8, 8), 0, "auto", (8,), 16, "silu", 10.0, 8)).__name__
        'UNet'
        >>> type(field_network((64,), 0, "auto", (8,), 16, "silu", 10.0, 8)).__name__
        'TimeMLP'
    """
    event = tuple(int(s) for s in event)
    if network not in NETWORKS:
        raise ValueError(f"network: expected one of {NETWORKS}, got {network!r}")
    if network == "auto":
        network = "unet" if len(event) == 3 else "mlp"
    if network == "mlp":
        return time_mlp(event, context, hidden, embedding, activation, time_scale)
    if len(event) != 3:
        raise ValueError(f"network: 'unet' needs images (C, H, W), got event shape {event}")
    return UNet(event, context, width, embedding=2 * embedding, scale=time_scale, drop=drop,
                guidance=guidance)  # fmt: skip


__all__ = ["NETWORKS", "ResBlock", "UNet", "field_network"]

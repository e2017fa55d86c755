r"""Generator and discriminator (critic) networks for GANs: MLPs for vectors ``(N, D)`` and
DCGAN-style convolutional networks for images ``(N, C, H, W)`` (Radford et al. 2016: strided
transposed convolutions with batch norm and ReLU in the generator, strided convolutions with
leaky ReLU in the discriminator, no pooling and no fully connected hidden layers but the first
and last).

Class-conditional versions take a one-hot context ``(N, K)``: the generator sees it beside the
noise, the discriminator beside its input (as extra constant channels for images; Mirza and
Osindero 2014).

Example:
    >>> import torch
    >>> g, d = generator((1, 28, 28), noise=16), discriminator((1, 28, 28))
    >>> x = g(torch.randn(3, 16))
    >>> x.shape, d(x).shape
    (torch.Size([3, 1, 28, 28]), torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from .autoencoder import check_hidden

OUTPUTS = ("linear", "sigmoid", "tanh")


def _upsamplings(side: int) -> int:
    r"""The number of 2x steps up to ``side`` from the smallest side of at least 2 that halving
    reaches, at most 4 (28: from 7, 2 steps; 8: from 2, 2 steps; 32: from 2, 4 steps)."""
    k = 0
    while side % 2 == 0 and side // 2 >= 2 and k < 4:
        side //= 2
        k += 1
    return k


def _output(kind: str) -> nn.Module:
    if kind not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {kind!r}")
    return {"linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[kind]()


class MLPGenerator(nn.Module):
    r"""``z (N, noise) [+ c (N, K)] -> x (N, D)`` through ReLU layers of ``hidden`` units."""

    def __init__(
        self,
        features: int,
        noise: int = 2,
        hidden: Sequence[int] = (128, 128),
        context: int = 0,
        output: str = "linear",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = check_positive_int(noise, "noise") + check_positive_int(context, "context", 0)
        for h in check_hidden(hidden):
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [nn.Linear(width, check_positive_int(features, "features")), _output(output)]
        self.net = nn.Sequential(*layers)
        self.noise, self.context = noise, context

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return self.net(z if c is None else torch.cat([z, c], 1))


class MLPDiscriminator(nn.Module):
    r"""``x (N, D) [+ c (N, K)] -> (N,)`` scores through leaky-ReLU layers."""

    def __init__(self, features: int, hidden: Sequence[int] = (128, 128), context: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = check_positive_int(features, "features") + check_positive_int(context, "context", 0)
        for h in check_hidden(hidden):
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.net(x if c is None else torch.cat([x, c], 1)).squeeze(1)


class ConvGenerator(nn.Module):
    r"""DCGAN generator: ``z`` to a ``width * 2^(k-1)``-channel map of side ``H / 2^k``, then
    ``k`` transposed convolutions (kernel 4, stride 2) halving the channels, batch norm and
    ReLU between them, to ``(C, H, W)``."""

    def __init__(
        self,
        shape: Sequence[int],
        noise: int = 64,
        width: int = 64,
        context: int = 0,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        k = _upsamplings(min(h, w))
        if k == 0 or h % 2**k or w % 2**k:
            raise ValueError(
                f"shape: the DCGAN networks need an even H = W side of at least 4, got "
                f"{tuple(shape)}"
            )
        check_positive_int(width, "width")
        self.start = (width * 2 ** (k - 1), h // 2**k, w // 2**k)
        width_in = check_positive_int(noise, "noise") + check_positive_int(context, "context", 0)
        self.dense = nn.Sequential(
            nn.Linear(width_in, math.prod(self.start)),
            nn.BatchNorm1d(math.prod(self.start)),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        ch = self.start[0]
        for i in range(k):
            last = i == k - 1
            out = c if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
            layers += [_output(output)] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.net = nn.Sequential(*layers)
        self.noise, self.context = noise, context

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.dense(z if c is None else torch.cat([z, c], 1))
        return self.net(h.reshape(-1, *self.start))


class ConvDiscriminator(nn.Module):
    r"""DCGAN discriminator: ``k`` strided convolutions (kernel 4, stride 2) doubling the
    channels from ``width``, leaky ReLU (0.2), then one linear score. No batch norm, so that
    gradient penalties and spectral normalisation apply as in their papers."""

    def __init__(self, shape: Sequence[int], width: int = 64, context: int = 0) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        k = _upsamplings(min(h, w))
        if k == 0:
            raise ValueError(
                f"shape: the DCGAN networks need an even side of at least 4, got {tuple(shape)}"
            )
        ch = c + check_positive_int(context, "context", 0)
        layers: list[nn.Module] = []
        out = check_positive_int(width, "width")
        for _ in range(k):
            layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch, out = out, out * 2
            h, w = h // 2, w // 2
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(ch * h * w, 1)
        self.context = context

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if c is not None:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.head(self.net(x).flatten(1)).squeeze(1)


def generator(
    shape: Sequence[int],
    noise: int = 64,
    hidden: Sequence[int] = (128, 128),
    width: int = 64,
    context: int = 0,
    output: str = "linear",
) -> nn.Module:
    r"""An MLP generator for ``(D,)`` events, a DCGAN generator for ``(C, H, W)``."""
    shape = tuple(shape)
    if len(shape) == 1:
        return MLPGenerator(shape[0], noise, hidden, context, output)
    if len(shape) == 3:
        return ConvGenerator(shape, noise, width, context, output)
    raise ValueError(f"shape: expected (D,) or (C, H, W), got {shape}")


def discriminator(
    shape: Sequence[int], hidden: Sequence[int] = (128, 128), width: int = 64, context: int = 0
) -> nn.Module:
    r"""An MLP discriminator for ``(D,)`` events, a DCGAN discriminator for ``(C, H, W)``."""
    shape = tuple(shape)
    if len(shape) == 1:
        return MLPDiscriminator(shape[0], hidden, context)
    if len(shape) == 3:
        return ConvDiscriminator(shape, width, context)
    raise ValueError(f"shape: expected (D,) or (C, H, W), got {shape}")


class ProgressiveGenerator(nn.Module):
    r"""A DCGAN generator that grows (Karras et al. 2018): at ``stage`` :math:`s` it stops
    after :math:`s` of its up-sampling blocks and maps that resolution to pixels with its own
    1x1 convolution; while ``alpha`` :math:`< 1` the new resolution fades in,
    :math:`\alpha\, \mathrm{new} + (1 - \alpha)\, \mathrm{upsample}(\mathrm{previous})`. Outputs
    are at the current resolution; :meth:`full` upsamples them to the image size. ``stage`` and
    ``alpha`` are buffers that the GAN sets from the training step."""

    def __init__(
        self,
        shape: Sequence[int],
        noise: int = 64,
        width: int = 64,
        context: int = 0,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        base = ConvGenerator(shape, noise, width, context, output)
        self.dense, self.start = base.dense, base.start
        self.shape = tuple(int(s) for s in shape)
        layers = list(base.net)
        # the blocks: (transposed conv, batch norm, ReLU) x (k - 1), then the last transposed conv
        self.blocks = nn.ModuleList()
        channels = [self.start[0]]
        for i in range(0, len(layers) - 2, 3):
            self.blocks.append(nn.Sequential(*layers[i : i + 3]))
            channels.append(layers[i].out_channels)
        last = layers[-2]  # the full-resolution block: up-sample without the pixel projection
        mid = max(channels[-1] // 2, 1)
        # Nearest up-sampling and a 3x3 convolution, as Karras et al. (2018) grow their
        # networks: a stride-2 transposed convolution followed only by the 1x1 pixel
        # projection cannot smooth its uneven overlap, and the grown runs showed its
        # checkerboard (Odena et al. 2016) as a dot grid on every sample.
        self.blocks.append(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(last.in_channels, mid, 3, padding=1),
                nn.BatchNorm2d(mid),
                nn.ReLU(),
            )
        )
        channels.append(mid)
        c = self.shape[0]
        self.to_image = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in channels)
        self.out = _output(output)
        self.stages = len(self.blocks)
        self.noise, self.context = noise, context
        self.register_buffer("stage", torch.tensor(self.stages, dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        h = self.dense(z if c is None else torch.cat([z, c], 1)).reshape(-1, *self.start)
        previous = h
        for block in self.blocks[:stage]:
            previous, h = h, block(h)
        x = self.to_image[stage](h)
        if stage > 0 and alpha < 1.0:
            old = nn.functional.interpolate(self.to_image[stage - 1](previous), scale_factor=2)
            x = alpha * x + (1.0 - alpha) * old
        return self.out(x)

    def full(self, x: Tensor) -> Tensor:
        r"""Images at the current resolution, up-sampled (nearest) to the full size."""
        return (
            nn.functional.interpolate(x, size=self.shape[1:])
            if x.shape[-1] != self.shape[-1]
            else x
        )


class ProgressiveDiscriminator(nn.Module):
    r"""The discriminator that grows with :class:`ProgressiveGenerator`: at ``stage``
    :math:`s` (0: the smallest resolution) a 1x1 convolution reads images of that resolution,
    then its last :math:`s` down-sampling blocks and the linear score; while ``alpha``
    :math:`< 1` the new input path fades in against the previous stage's input layer reading
    the average-pooled image."""

    def __init__(self, shape: Sequence[int], width: int = 64, context: int = 0) -> None:
        super().__init__()
        base = ConvDiscriminator(shape, width, context)
        c = int(shape[0]) + check_positive_int(context, "context", 0)
        convs = [m for m in base.net if isinstance(m, nn.Conv2d)]
        first = max(convs[0].out_channels // 2, 1)
        ins = [first] + [conv.out_channels for conv in convs[:-1]]
        # blocks[i] halves the side, highest resolution first
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, conv.out_channels, 4, 2, 1), nn.LeakyReLU(0.2))
            for a, conv in zip(ins, convs, strict=True)
        )
        k = len(self.blocks)
        # from_image[s] reads resolution s into what blocks[k - s] (or the head, s = 0) takes
        widths = [convs[-1].out_channels] + [ins[k - s] for s in range(1, k + 1)]
        self.from_image = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, ch, 1), nn.LeakyReLU(0.2)) for ch in widths
        )
        self.head = base.head
        self.stages = k
        self.context = context
        self.register_buffer("stage", torch.tensor(k, dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        if c is not None:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        k = self.stages
        h = self.from_image[stage](x)
        rest = list(self.blocks)[k - stage :]
        if stage > 0:
            h = rest[0](h)
            if alpha < 1.0:
                old = self.from_image[stage - 1](nn.functional.avg_pool2d(x, 2))
                h = alpha * h + (1.0 - alpha) * old
            rest = rest[1:]
        for block in rest:
            h = block(h)
        return self.head(h.flatten(1)).squeeze(1)


__all__ = [
    "OUTPUTS",
    "ConvDiscriminator",
    "ConvGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ProgressiveDiscriminator",
    "ProgressiveGenerator",
    "discriminator",
    "generator",
]

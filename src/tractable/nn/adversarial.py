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


__all__ = [
    "OUTPUTS",
    "ConvDiscriminator",
    "ConvGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "discriminator",
    "generator",
]

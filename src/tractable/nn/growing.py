r"""Progressive growing (Karras et al. 2018, "Progressive growing of GANs for improved quality,
stability, and variation") of the DCGAN networks of :mod:`tractable.nn.adversarial`.

A growing network *is* the plain DCGAN network, plus one small 1x1 convolution for each lower
resolution: :class:`GrowingGenerator` maps its feature map at each lower resolution to pixels,
:class:`GrowingDiscriminator` reads pixels of each lower resolution into the feature map the
plain network has there. At full resolution the layers that run are exactly the plain
network's, so a curriculum costs no parameters on that path and no FLOPs: a comparison at equal
wall time compares the schedule, not two network sizes. The lower-resolution heads hold
:math:`(C_{\text{feature}} + 1)\,C` weights each and run only before the last stage.

At ``stage`` :math:`s` (0: the smallest resolution, ``stages``: the full image) while
``alpha`` :math:`< 1` the new resolution fades in against the previous one,
:math:`\alpha\,\mathrm{new} + (1 - \alpha)\,\mathrm{upsample}(\mathrm{previous})` in the
generator and :math:`\alpha\,\mathrm{new}(x) + (1 - \alpha)\,\mathrm{previous}(\mathrm{avgpool}(x))`
in the discriminator. ``stage`` and ``alpha`` are buffers that :class:`~tractable.gan.GAN` sets
from the training step.

Example:
    >>> import torch
    >>> g, d = GrowingGenerator((1, 28, 28), noise=8, width=8), GrowingDiscriminator((1, 28, 28), 8)
    >>> g.stages, g(torch.randn(2, 8)).shape, d(torch.rand(2, 1, 28, 28)).shape
    (2, torch.Size([2, 1, 28, 28]), torch.Size([2]))
    >>> _ = g.stage.fill_(0), d.stage.fill_(0)
    >>> g(torch.randn(2, 8)).shape, d(torch.rand(2, 1, 7, 7)).shape
    (torch.Size([2, 1, 7, 7]), torch.Size([2]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .adversarial import ConvDiscriminator, ConvGenerator


class GrowingGenerator(nn.Module):
    r"""The DCGAN generator (:class:`~tractable.nn.adversarial.ConvGenerator`) that grows:
    at ``stage`` :math:`s < k` it stops after :math:`s` of its up-sampling blocks and maps
    that feature map to pixels with a 1x1 convolution ``to_image[s]``; at ``stage`` :math:`k`
    (``stages``) ``to_image[k]`` is the plain network's last transposed convolution. Outputs
    ``(N, C, H / 2^(k - s), W / 2^(k - s))``; :meth:`full` up-samples them to the image size.

    Args:
        shape: ``(C, H, W)`` of the full images.
        noise, width, context, output: as for the plain generator.
    """

    def __init__(
        self,
        shape: Sequence[int],
        noise: int = 64,
        width: int = 64,
        context: int = 0,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        plain = ConvGenerator(shape, noise, width, context, output)
        self.shape = tuple(int(s) for s in shape)
        self.dense, self.start = plain.dense, plain.start
        layers = list(plain.net)  # (transposed conv, batch norm, ReLU) x (k - 1), conv, output
        self.blocks = nn.ModuleList(
            nn.Sequential(*layers[i : i + 3]) for i in range(0, len(layers) - 2, 3)
        )
        channels = [self.start[0]] + [block[0].out_channels for block in self.blocks]
        heads: list[nn.Module] = [nn.Conv2d(ch, self.shape[0], 1) for ch in channels]
        self.to_image = nn.ModuleList([*heads, layers[-2]])
        self.out = layers[-1]
        self.stages = len(self.blocks) + 1
        self.noise, self.context = noise, context
        self.register_buffer("stage", torch.tensor(self.stages, dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        h = self.dense(z if c is None else torch.cat([z, c], 1)).reshape(-1, *self.start)
        # features[s]: the map that to_image[s] reads (the last one also feeds to_image[k])
        features = [h]
        for block in self.blocks[: min(stage, self.stages - 1)]:
            features.append(block(features[-1]))
        x = self.to_image[stage](features[min(stage, self.stages - 1)])
        if stage > 0 and alpha < 1.0:
            old = nn.functional.interpolate(
                self.to_image[stage - 1](features[stage - 1]), scale_factor=2
            )
            x = alpha * x + (1.0 - alpha) * old
        return self.out(x)

    def full(self, x: Tensor) -> Tensor:
        r"""Images at the current resolution, up-sampled (nearest) to the full size."""
        return (
            nn.functional.interpolate(x, size=self.shape[1:])
            if x.shape[-1] != self.shape[-1]
            else x
        )


class GrowingDiscriminator(nn.Module):
    r"""The DCGAN discriminator (:class:`~tractable.nn.adversarial.ConvDiscriminator`) that
    grows with :class:`GrowingGenerator`: at ``stage`` :math:`s < k` a 1x1 convolution and
    leaky ReLU ``from_image[s]`` read images of that resolution into the feature map the plain
    network has there, then the plain network's remaining strided convolutions and its linear
    score; at ``stage`` :math:`k` ``from_image[k]`` is the plain network's first convolution.

    Args:
        shape: ``(C, H, W)`` of the full images.
        width, context: as for the plain discriminator.
    """

    def __init__(self, shape: Sequence[int], width: int = 64, context: int = 0) -> None:
        super().__init__()
        plain = ConvDiscriminator(shape, width, context)
        c = int(shape[0]) + int(context)
        layers = list(plain.net)  # (strided conv, leaky ReLU) x k, highest resolution first
        convs = [nn.Sequential(*layers[i : i + 2]) for i in range(0, len(layers), 2)]
        k = len(convs)
        # blocks[j] is the plain network's convolution j + 1 (0-based), the first one being
        # the full-resolution input layer from_image[k]
        self.blocks = nn.ModuleList(convs[1:])
        # from_image[s], s < k, feeds what the plain network has after convolution k - s
        heads: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(c, convs[k - s - 1][0].out_channels, 1), nn.LeakyReLU(0.2))
            for s in range(k)
        ]
        self.from_image = nn.ModuleList([*heads, convs[0]])
        self.head = plain.head
        self.stages = k
        self.context = context
        self.register_buffer("stage", torch.tensor(k, dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))

    def _done(self, stage: int) -> int:
        r"""How many of the plain network's convolutions the input path of ``stage`` stands
        for (the full-resolution input is the first convolution itself)."""
        return 1 if stage == self.stages else self.stages - stage

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        if c is not None:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        h = self.from_image[stage](x)
        rest = list(self.blocks)[self._done(stage) - 1 :]
        if 0 < stage < self.stages:  # the new block at this resolution, then the old input
            h, rest = rest[0](h), rest[1:]
        if stage > 0 and alpha < 1.0:
            old = self.from_image[stage - 1](nn.functional.avg_pool2d(x, 2))
            h = alpha * h + (1.0 - alpha) * old
        for block in rest:
            h = block(h)
        return self.head(h.flatten(1)).squeeze(1)


__all__ = ["GrowingDiscriminator", "GrowingGenerator"]

r"""A small convolutional classifier of images: the feature extractor behind the project's
image metrics (:mod:`tractable.evaluation.features`)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeatureNet(nn.Module):
    r"""A small CNN classifier of images ``(N, C, H, W)`` with intensities in :math:`[0, 1]`.

    Two blocks of 3x3 convolution, ReLU and 2x2 max-pooling (one pool per block only while the
    side is at least 8), a fully connected layer of ``features`` ReLU units (the embedding) and
    a linear layer to ``classes`` logits. ``loss((x, labels))`` is the cross-entropy.

    Example:
        >>> net = FeatureNet((1, 8, 8), classes=10, features=16)
        >>> x = torch.rand(3, 1, 8, 8)
        >>> net.embed(x).shape, net(x).shape
        (torch.Size([3, 16]), torch.Size([3, 10]))
    """

    def __init__(
        self,
        shape: tuple[int, int, int] | list[int],
        classes: int = 10,
        width: int = 32,
        features: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if len(shape) != 3 or any(int(s) < 1 for s in shape):
            raise ValueError(f"shape: expected (C, H, W), got {shape!r}")
        c, h, w = (int(s) for s in shape)
        self.shape = (c, h, w)
        layers: list[nn.Module] = []
        for out in (width, 2 * width):
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c * h * w, features)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(features, classes)

    def embed(self, x: Tensor) -> Tensor:
        r"""The penultimate-layer features ``(N, features)``."""
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        r"""Class logits ``(N, classes)``."""
        return self.head(self.drop(self.embed(x)))

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, labels = batch
        return F.cross_entropy(self(x), labels)


__all__ = ["FeatureNet"]

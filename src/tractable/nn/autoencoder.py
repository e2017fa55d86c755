r"""Encoder and decoder networks for autoencoders (the VAEs of :mod:`tractable.vae`): MLPs for
vectors ``(N, D)``, small conv nets for images ``(N, C, H, W)``.

Encoder networks map data to a feature vector ``(N, F)``; decoder networks map a latent code
``(N, L)`` to a parameter tensor ``(N, P, *spatial)``, with ``spatial = (D,)`` for vectors and
``(H, W)`` for images and ``P`` parameters per site (the decoder says how many).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..checks import check_positive_int
from .layers import activation


def check_hidden(hidden: Sequence[int], name: str = "hidden") -> tuple[int, ...]:
    r"""Validate a sequence of layer widths (possibly empty)."""
    if isinstance(hidden, int) or not isinstance(hidden, Sequence):
        raise TypeError(f"{name}: expected a sequence of ints, got {hidden!r}")
    for h in hidden:
        check_positive_int(h, name)
    return tuple(hidden)


def event_layout(event_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    r"""``(channels, spatial)`` of an event: ``(D,) -> (1, (D,))``, ``(C, H, W) -> (C, (H, W))``."""
    shape = tuple(event_shape)
    if len(shape) == 1:
        return 1, shape
    if len(shape) == 3:
        return shape[0], shape[1:]
    raise ValueError(f"event_shape: expected (D,) for vectors or (C, H, W) for images, got {shape}")


def mlp(
    in_features: int, hidden: Sequence[int], out_features: int | None, act: str
) -> nn.Sequential:
    r"""Linear layers with an activation after each hidden one; no final activation.

    With ``out_features=None`` the last hidden layer (and its activation) is the output.

    Example:
        >>> import torch
        >>> from tractable.nn.autoencoder import mlp
        >>> mlp(784, (200, 200), 50, "tanh")(torch.zeros(2, 784)).shape
        torch.Size([2, 50])
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in check_hidden(hidden):
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ConvEncoderNet(nn.Module):
    r"""Stride-2 3x3 convolutions (each halves H and W, rounding up), then dense layers:
    ``(N, C, H, W) -> (N, F)``.

    ``F`` is ``hidden[-1]`` (or the flattened conv output when ``hidden`` is empty).
    """

    def __init__(
        self,
        shape: Sequence[int],
        hidden: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 64),
        act: str = "relu",
    ) -> None:
        super().__init__()
        C, H, W = shape
        convs: list[nn.Module] = []
        width = C
        for ch in check_hidden(channels, "channels"):
            convs += [nn.Conv2d(width, ch, 3, stride=2, padding=1), activation(act)]
            width = ch
            H, W = (H + 1) // 2, (W + 1) // 2
        self.convs = nn.Sequential(*convs)
        flat = width * H * W
        self.dense = mlp(flat, hidden, None, act)
        self.features = hidden[-1] if hidden else flat

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(self.convs(x).flatten(1))


class ConvDecoderNet(nn.Module):
    r"""Dense layers, then stride-2 transposed convolutions: ``(N, L) -> (N, P, H, W)``.

    The feature map starts at :math:`\lceil H / 2^n \rceil \times \lceil W / 2^n\rceil` for
    ``n = len(channels)`` upsampling steps and is cropped to ``(H, W)`` at the end, so any
    image size works.
    """

    def __init__(
        self,
        latent: int,
        params: int,
        spatial: Sequence[int],
        hidden: Sequence[int] = (256,),
        channels: Sequence[int] = (64, 32),
        act: str = "relu",
    ) -> None:
        super().__init__()
        H, W = spatial
        channels = check_hidden(channels, "channels")
        steps = len(channels)
        self.start = (
            channels[0] if channels else params,
            math.ceil(H / 2**steps),
            math.ceil(W / 2**steps),
        )
        self.out_hw = (H, W)
        hidden = check_hidden(hidden)
        self.dense = nn.Sequential(
            mlp(latent, hidden, math.prod(self.start), act),
            activation(act) if steps else nn.Identity(),
        )
        ups: list[nn.Module] = []
        widths = list(channels) + [params]
        for i in range(steps):
            ups.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride=2, padding=1))
            if i < steps - 1:
                ups.append(activation(act))
        self.ups = nn.Sequential(*ups)

    def forward(self, z: Tensor) -> Tensor:
        h = self.dense(z).reshape(z.shape[0], *self.start)
        H, W = self.out_hw
        return self.ups(h)[:, :, :H, :W]


def encoder_net(
    event_shape: Sequence[int],
    hidden: Sequence[int],
    act: str,
    channels: Sequence[int] = (32, 64),
) -> tuple[nn.Module, int]:
    r"""An MLP (vectors) or a :class:`ConvEncoderNet` (images) and its output width ``F``."""
    c, spatial = event_layout(event_shape)
    hidden = check_hidden(hidden)
    if len(spatial) == 1:
        return mlp(spatial[0], hidden, None, act), (hidden[-1] if hidden else spatial[0])
    net = ConvEncoderNet((c, *spatial), hidden, channels, act)
    return net, net.features


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], *self.shape)


def decoder_net(
    latent: int,
    params: int,
    event_shape: Sequence[int],
    hidden: Sequence[int],
    act: str,
    channels: Sequence[int] = (64, 32),
) -> nn.Module:
    r"""An MLP (vectors) or a :class:`ConvDecoderNet` (images) producing ``(N, P, *spatial)``."""
    _, spatial = event_layout(event_shape)
    if len(spatial) == 1:
        return nn.Sequential(
            mlp(latent, hidden, params * spatial[0], act), _Reshape((params, *spatial))
        )
    return ConvDecoderNet(latent, params, spatial, hidden, channels, act)


__all__ = [
    "activation",
    "mlp",
    "ConvEncoderNet",
    "ConvDecoderNet",
    "encoder_net",
    "decoder_net",
    "event_layout",
]

r"""Convolutional networks for image flows: :class:`ConvResNet`, the conditioner of image
coupling layers (Dinh et al. 2017, RealNVP; Kingma and Dhariwal 2018, Glow)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor, nn

from ..checks import check_positive_int
from .layers import activation as activation_module


def _conv(a: int, b: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(a, b, kernel, padding=kernel // 2)


class _Residual(nn.Module):
    def __init__(self, width: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.body = nn.Sequential(act(), _conv(width, width, 3), act(), _conv(width, width, 1))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class ConvResNet(nn.Sequential):
    r"""A small convolutional ResNet, the conditioner of image coupling layers: a
    :math:`3 \times 3` convolution to ``hidden`` channels, ``blocks`` residual blocks
    (activation, :math:`3 \times 3`, activation, :math:`1 \times 1`), an activation and a
    :math:`3 \times 3` output convolution. The output layer is zero-initialised when
    ``zero_init`` is true, so a coupling layer starts as the identity (Kingma and Dhariwal 2018).
    Spatial size is preserved: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.

    ``activation`` is a name (``"relu"``, ``"elu"``, ``"gelu"``, ``"silu"``, ``"tanh"``, ...)
    or a factory of activation modules.

    Example:
        >>> import torch
        >>> from tractable.nn import ConvResNet
        >>> ConvResNet(3, 8, hidden=16)(torch.randn(2, 3, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        blocks: int = 1,
        activation: str | Callable[[], nn.Module] = "relu",
        zero_init: bool = True,
    ) -> None:
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_positive_int(hidden, "hidden")
        check_positive_int(blocks, "blocks", minimum=0)
        if isinstance(activation, str):
            activation_module(activation)  # a clear error for an unknown name, now
            act: Callable[[], nn.Module] = functools.partial(activation_module, activation)
        elif callable(activation):
            act = activation
        else:
            raise TypeError(f"activation: expected a name or a module factory, got {activation!r}")
        last = _conv(hidden, out_channels, 3)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers = [_conv(in_channels, hidden, 3)]
        layers += [_Residual(hidden, act) for _ in range(blocks)]
        super().__init__(*layers, act(), last)


__all__ = ["ConvResNet"]

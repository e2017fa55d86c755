r"""Transforms of images ``(N, C, H, W)``: squeezing, invertible 1x1 convolutions and coupling
layers with checkerboard or channel masks (Dinh et al. 2017, RealNVP; Kingma and Dhariwal 2018,
Glow).

All of them have ``event_dims = 3``: one example is a ``(C, H, W)`` image and the returned
log-determinant sums over all of its ``C H W`` entries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_positive_int
from ..nn.conv import ConvResNet
from .base import Transform, identity_ladj, sum_except_batch
from .linear import LULinear
from .maps import ElementwiseMap

MASKS = ("checkerboard", "checkerboard-flip", "channel", "channel-flip")


def _check_image(x: Tensor, name: str = "x") -> tuple[int, int, int, int]:
    if x.dim() != 4:
        raise ValueError(
            f"{name}: expected an image batch of shape (N, C, H, W), got {tuple(x.shape)}"
        )
    n, c, h, w = x.shape
    return n, c, h, w


def squeezed_shape(shape: tuple[int, int, int], name: str = "shape") -> tuple[int, int, int]:
    r"""The shape ``(4C, H/2, W/2)`` of a squeezed ``(C, H, W)`` image; a ``ValueError`` when
    ``H`` or ``W`` is odd."""
    c, h, w = shape
    if h % 2 or w % 2:
        raise ValueError(
            f"{name}: squeezing needs an even height and width, got (C, H, W) = {tuple(shape)}"
        )
    return 4 * c, h // 2, w // 2


class Squeeze(Transform):
    r"""Space-to-depth: every :math:`2 \times 2` block of pixels becomes 4 channels
    (Dinh et al. 2017), ``(N, C, H, W) -> (N, 4C, H/2, W/2)``; a permutation, so
    :math:`\log|\det J| = 0`.

    Output channel :math:`4c + 2i + j` holds pixel :math:`(i, j)` of each block of channel
    :math:`c`.

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.transforms.image import Squeeze
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> z, _ = Squeeze()(x)
        >>> z.shape, z[0, :, 0, 0].tolist()
        (torch.Size([1, 4, 2, 2]), [0.0, 1.0, 4.0, 5.0])
    """

    event_dims = 3

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        r"""The event shape after this layer."""
        return squeezed_shape(shape)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(x)
        squeezed_shape((c, h, w), "x")
        z = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return z.reshape(n, 4 * c, h // 2, w // 2), identity_ladj(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(z, "z")
        if c % 4:
            raise ValueError(f"z: un-squeezing needs channels divisible by 4, got {c}")
        x = z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c // 4, 2 * h, 2 * w), identity_ladj(z)


class InvConv1x1(Transform):
    r"""Invertible :math:`1 \times 1` convolution (Kingma and Dhariwal 2018): the same
    learned :math:`C \times C` matrix :math:`W` mixes the channels of every pixel,
    :math:`z_{:, h, w} = W x_{:, h, w}`.

    .. math:: \log|\det J| = H W \log|\det W|

    The determinant costs :math:`O(C^3)` per call (computed in float64, as in Glow); see
    :func:`InvConv1x1LU` for the :math:`O(C)` LU parameterisation. Initialised at a random
    rotation.

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.transforms.image import InvConv1x1
        >>> t = InvConv1x1(4)
        >>> x = torch.randn(2, 4, 3, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """

    event_dims = 3

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        w, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(w)

    def _log_det(self, x: Tensor) -> Tensor:
        return torch.linalg.slogdet(self.weight.double()).logabsdet.to(x.dtype)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(x)
        z = F.conv2d(x, self.weight.view(c, c, 1, 1))
        return z, (self._log_det(x) * (h * w)).expand(n)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(z, "z")
        w_inv = torch.linalg.inv(self.weight)
        x = F.conv2d(z, w_inv.view(c, c, 1, 1))
        return x, (-self._log_det(z) * (h * w)).expand(n)


class Pixelwise(Transform):
    r"""Apply a vector transform ``(M, C) -> (M, C)`` to the channels of every pixel of an
    image, with the same parameters at every position.

    .. math:: \log|\det J(x)| = \sum_{h, w} \log|\det J_t(x_{:, h, w})|

    A vector context ``(N, K)`` is shared by all the pixels of its example.

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.transforms.image import Pixelwise
        >>> t = Pixelwise(tr.transforms.Reverse())
        >>> t(torch.arange(4.0).view(1, 2, 1, 2))[0].tolist()
        [[[[2.0, 3.0]], [[0.0, 1.0]]]]
    """

    event_dims = 3

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"transform: expected a Transform, got {type(transform).__name__}")
        if transform.event_dims != 1:
            raise ValueError(
                f"transform: expected a vector transform (event_dims 1), got event_dims "
                f"{transform.event_dims}"
            )
        self.pixel_transform = transform

    def _run(
        self, x: Tensor, context: Tensor | None, fn: Callable[..., tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(x)
        flat = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        if context is not None:
            context = context.repeat_interleave(h * w, dim=0)
        z, ladj = fn(flat, context)
        z = z.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return z, ladj.reshape(n, h * w).sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, self.pixel_transform.forward)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(z, context, self.pixel_transform.inverse)


def InvConv1x1LU(channels: int) -> Pixelwise:  # noqa: N802 - reads as a layer name
    r"""The LU-parameterised invertible :math:`1 \times 1` convolution of Glow (Kingma and
    Dhariwal 2018): :math:`W = P L (U + \operatorname{diag}(\sigma e^{s}))` applied to every
    pixel (a :class:`Pixelwise` :class:`~tractable.transforms.LULinear`, which adds a
    per-channel bias), so :math:`\log|\det J| = H W \sum_c s_c` costs :math:`O(C)`.

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.transforms.image import InvConv1x1LU
        >>> z, ladj = InvConv1x1LU(4)(torch.randn(2, 4, 3, 3))
        >>> z.shape, ladj.shape
        (torch.Size([2, 4, 3, 3]), torch.Size([2]))
    """
    return Pixelwise(LULinear(channels))


def checkerboard(h: int, w: int, flip: bool = False, device: torch.device | None = None) -> Tensor:
    r"""A ``(H, W)`` boolean checkerboard, true where :math:`(i + j)` is even (odd if ``flip``).

    Example:
        >>> checkerboard(2, 3).int().tolist()
        [[1, 0, 1], [0, 1, 0]]
    """
    idx = torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)
    return (idx % 2 == 1) if flip else (idx % 2 == 0)


def _context_maps(context: Tensor, n: int, h: int, w: int, features: int) -> Tensor:
    r"""A vector context ``(N, K)`` broadcast to ``(N, K, H, W)``, or a spatial one checked."""
    if context.dim() == 2 and context.shape == (n, features):
        return context[:, :, None, None].expand(n, features, h, w)
    if context.dim() == 4 and context.shape == (n, features, h, w):
        return context
    raise ValueError(
        f"context: expected shape ({n}, {features}) or ({n}, {features}, {h}, {w}), "
        f"got {tuple(context.shape)}"
    )


class ImageCoupling(Transform):
    r"""A coupling layer on images (Dinh et al. 2017): the pixels or channels selected by a mask
    pass unchanged and a :class:`~tractable.nn.ConvResNet` of them (and of the context) gives
    the parameters of an elementwise map (:class:`~tractable.transforms.maps.Affine`,
    :class:`~tractable.transforms.maps.Shift`, ...) of the others,

    .. math:: z = m \odot x + (1 - m) \odot g\big(x; \theta(m \odot x, c)\big), \qquad
              \log|\det J| = \sum_{i : m_i = 0} \log g'(x_i; \theta_i).

    Masks: ``"checkerboard"`` / ``"checkerboard-flip"`` keep the pixels with :math:`i + j` even
    / odd in every channel (the conditioner also sees the mask as an extra channel);
    ``"channel"`` / ``"channel-flip"`` keep the first :math:`\lfloor C/2 \rfloor` / the last
    :math:`\lceil C/2 \rceil` channels.

    The context is a vector ``(N, K)``, broadcast over the image as ``K`` extra input channels
    of the conditioner (class-conditional flows take one-hot labels), or a feature map
    ``(N, K, H, W)`` (e.g. the image a dequantizer is conditioned on).

    Example:
        >>> import torch, tractable as tr
        >>> from tractable.transforms.image import ImageCoupling
        >>> t = ImageCoupling(4, tr.transforms.Affine(), mask="channel", context=3, hidden=8)
        >>> z, ladj = t(torch.randn(2, 4, 5, 5), torch.randn(2, 3))
        >>> z.shape, ladj.tolist()  # the identity at initialisation
        (torch.Size([2, 4, 5, 5]), [0.0, 0.0])
    """

    event_dims = 3

    def __init__(
        self,
        channels: int,
        elementwise: ElementwiseMap,
        mask: str = "checkerboard",
        context: int = 0,
        hidden: int = 64,
        blocks: int = 1,
        activation: str | Callable[[], nn.Module] = "relu",
    ) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(context, "context", minimum=0)
        if not callable(elementwise) or not hasattr(elementwise, "params"):
            raise TypeError(f"elementwise: expected an elementwise map, got {elementwise!r}")
        if mask not in MASKS:
            raise ValueError(f"mask: expected one of {list(MASKS)}, got {mask!r}")
        self.mask, self.channels, self.context_features = mask, channels, context
        self.elementwise = elementwise
        if mask.startswith("checkerboard"):
            kept = changed = channels
            extra = 1  # the mask itself
        else:
            if channels < 2:
                raise ValueError(
                    f"channels: a channel mask needs at least 2 channels, got {channels}"
                )
            half = channels // 2
            kept, changed = (
                (half, channels - half) if mask == "channel" else (channels - half, half)
            )
            extra = 0
        self.kept_channels, self.changed_channels = kept, changed
        self.net = ConvResNet(
            kept + extra + context, changed * elementwise.params, hidden, blocks, activation
        )

    def _params(self, h: Tensor, context: Tensor | None) -> Tensor:
        n, _, hh, ww = h.shape
        if self.context_features:
            if context is None:
                raise ValueError(
                    f"context: this layer is conditional and needs a context of shape "
                    f"(N, {self.context_features}), got None"
                )
            h = torch.cat([h, _context_maps(context, n, hh, ww, self.context_features)], 1)
        p = self.net(h).view(n, self.changed_channels, self.elementwise.params, hh, ww)
        return p.permute(0, 1, 3, 4, 2)  # (N, C', H, W, params)

    def _run(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        n, c, h, w = _check_image(x, "z" if inverse else "x")
        if c != self.channels:
            raise ValueError(f"x: expected {self.channels} channels, got {c}")
        if self.mask.startswith("checkerboard"):
            if h * w < 2:
                raise ValueError(
                    f"x: a checkerboard mask needs at least 2 pixels, got (H, W) = ({h}, {w})"
                )
            m = checkerboard(h, w, self.mask.endswith("flip"), x.device).to(x.dtype)
            m = m.expand(n, 1, h, w)
            p = self._params(torch.cat([x * m, m], 1), context)
            y, logd = self.elementwise(x, p, inverse)
            return x * m + y * (1 - m), sum_except_batch(logd * (1 - m))
        k = self.kept_channels
        first = self.mask == "channel"
        xa, xb = (x[:, :k], x[:, k:]) if first else (x[:, c - k :], x[:, : c - k])
        yb, logd = self.elementwise(xb, self._params(xa, context), inverse)
        z = torch.cat([xa, yb], 1) if first else torch.cat([yb, xa], 1)
        return z, sum_except_batch(logd)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(z, context, inverse=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mask={self.mask!r}, elementwise={self.elementwise!r}"


__all__ = [
    "MASKS",
    "ImageCoupling",
    "InvConv1x1",
    "InvConv1x1LU",
    "Pixelwise",
    "Squeeze",
    "checkerboard",
    "squeezed_shape",
]

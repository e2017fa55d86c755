r"""Multiscale image flow builders (Dinh et al. 2017, RealNVP; Kingma and Dhariwal 2018, Glow),
with latent interpolation and sample grids.

The builders assemble a :class:`~tractable.flows.multiscale.MultiscaleFlow` (factor-out and
learned conditional priors; see :mod:`tractable.flows.multiscale`), which this module also
exposes together with :class:`~tractable.flows.multiscale.GaussianPrior`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from ..transforms import ActNorm, Affine, Compose, Shift, Transform
from ..transforms.image import ImageCoupling, InvConv1x1, InvConv1x1LU, Squeeze
from .base import context_width
from .builders import norm_layers
from .multiscale import GaussianPrior, MultiscaleFlow, check_image_shape


# -- builders --------------------------------------------------------------------------------
def _squeezes_that_fit(shape: tuple[int, int, int]) -> int:
    r"""How many times an image of ``shape`` can be squeezed: H and W stay divisible by 2."""
    _, h, w = shape
    fit = 0
    while h % 2 ** (fit + 1) == 0 and w % 2 ** (fit + 1) == 0:
        fit += 1
    return fit


def _check_levels(shape: tuple[int, int, int], levels: int, squeezes: int) -> None:
    fit = _squeezes_that_fit(shape)
    if squeezes > fit:
        raise ValueError(
            f"levels: {levels} levels squeeze the image {squeezes} times, which needs H and W "
            f"divisible by {2**squeezes}, got shape {shape}; at most {fit} squeezes fit"
        )


def Glow(  # noqa: N802
    shape: Sequence[int],
    levels: int | None = None,
    depth: int = 8,
    hidden: int = 256,
    context: int = 0,
    coupling: str = "affine",
    lu: bool = True,
    blocks: int = 1,
    scale_bound: float = 3.0,
    embedding: nn.Module | None = None,
) -> MultiscaleFlow:
    r"""Glow (Kingma and Dhariwal 2018). Each of the ``levels`` levels squeezes the image, runs
    ``depth`` steps of (ActNorm, invertible :math:`1 \times 1` convolution, coupling on the
    channel halves) and factors out half of the channels (except the last level). ``coupling``
    is ``"affine"`` (log-scale softly bounded by ``scale_bound``) or ``"additive"``; ``lu``
    picks :func:`~tractable.transforms.image.InvConv1x1LU` over the plain
    :class:`~tractable.transforms.image.InvConv1x1`. The coupling networks are
    :class:`~tractable.nn.ConvResNet` s of width ``hidden`` with ``blocks`` residual blocks.
    ``H`` and ``W`` must be divisible by :math:`2^{\text{levels}}`; ``levels=None`` (the
    default) takes the most levels that fit, at least 1: 2 for a ``(1, 28, 28)`` MNIST image,
    3 for an ``(1, 8, 8)`` digit.

    Example:
        >>> import torch
        >>> from tractable.flows.image import Glow
        >>> Glow((1, 8, 8), levels=2, depth=1, hidden=8).sample(2, temperature=0.7).shape
        torch.Size([2, 1, 8, 8])
    """
    shape = check_image_shape(shape)
    if levels is None:
        levels = max(1, _squeezes_that_fit(shape))
    check_positive_int(levels, "levels")
    check_positive_int(depth, "depth")
    if coupling not in ("affine", "additive"):
        raise ValueError(f"coupling: expected 'affine' or 'additive', got {coupling!r}")
    _check_levels(shape, levels, levels)
    width = context_width(context, embedding)
    stages: list[Transform] = []
    c = shape[0]
    for level in range(levels):
        c *= 4
        steps: list[Transform] = [Squeeze()]
        for _ in range(depth):
            elementwise = Affine(scale_bound) if coupling == "affine" else Shift()
            steps += [
                ActNorm(c),
                InvConv1x1LU(c) if lu else InvConv1x1(c),
                ImageCoupling(c, elementwise, "channel", width, hidden, blocks),
            ]
        stages.append(Compose(steps))
        if level < levels - 1:
            c //= 2
    return MultiscaleFlow(shape, stages, context, embedding)


def MultiscaleRealNVP(  # noqa: N802
    shape: Sequence[int],
    levels: int | None = None,
    depth: int = 3,
    hidden: int = 64,
    context: int = 0,
    blocks: int = 2,
    norm: str | None = "act",
    scale_bound: float = 3.0,
    embedding: nn.Module | None = None,
) -> MultiscaleFlow:
    r"""The multiscale RealNVP of Dinh et al. (2017). Every level but the last runs ``depth``
    affine couplings with alternating checkerboard masks, squeezes, runs ``depth`` couplings
    with alternating channel masks and factors out half of the channels; the last level runs
    ``depth + 1`` checkerboard couplings. ``norm`` (``"act"``, ``"batch"`` or ``None``) puts
    an ActNorm or batch-normalization layer before each coupling. The image is squeezed
    ``levels - 1`` times and the last level needs at least 2 pixels; ``levels=None`` (the
    default) takes the most levels that fit: 3 for a ``(1, 28, 28)`` image and for an
    ``(1, 8, 8)`` digit.

    Example:
        >>> import torch
        >>> from tractable.flows.image import MultiscaleRealNVP
        >>> f = MultiscaleRealNVP((1, 8, 8), levels=2, depth=1, hidden=8, blocks=1)
        >>> f.log_prob(torch.rand(4, 1, 8, 8)).shape
        torch.Size([4])
    """
    shape = check_image_shape(shape)
    if levels is None:
        levels = 1 + _squeezes_that_fit(shape)
        while levels > 1 and (shape[1] >> (levels - 1)) * (shape[2] >> (levels - 1)) < 2:
            levels -= 1
    check_positive_int(levels, "levels")
    check_positive_int(depth, "depth")
    norm_layers(norm, 1)
    _check_levels(shape, levels, levels - 1)
    h, w = shape[1] // 2 ** (levels - 1), shape[2] // 2 ** (levels - 1)
    if h * w < 2:
        raise ValueError(
            f"levels: the last level's checkerboard couplings need at least 2 pixels, but "
            f"{levels} levels leave ({h}, {w}) of shape {shape}"
        )
    width = context_width(context, embedding)

    def couplings(channels: int, masks: tuple[str, str], count: int) -> list[Transform]:
        out: list[Transform] = []
        for i in range(count):
            out += norm_layers(norm, channels)
            elementwise = Affine(scale_bound)
            out.append(ImageCoupling(channels, elementwise, masks[i % 2], width, hidden, blocks))
        return out

    stages: list[Transform] = []
    c = shape[0]
    for level in range(levels):
        if level == levels - 1:
            stages.append(Compose(couplings(c, ("checkerboard", "checkerboard-flip"), depth + 1)))
            break
        layers = couplings(c, ("checkerboard", "checkerboard-flip"), depth)
        layers.append(Squeeze())
        layers += couplings(4 * c, ("channel", "channel-flip"), depth)
        stages.append(Compose(layers))
        c = 2 * c
    return MultiscaleFlow(shape, stages, context, embedding)


# -- utilities -------------------------------------------------------------------------------
def interpolate(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor,
    steps: int = 8,
    context: Tensor | None = None,
    spherical: bool = False,
) -> Tensor:
    r"""Decode points on the path between the latents of ``x1`` and ``x2``.

    With :math:`z_k = f(x_k)` and :math:`t \in [0, 1]` in ``steps`` equal steps, linear
    interpolation decodes :math:`(1 - t) z_1 + t z_2`; ``spherical=True`` uses
    :math:`\frac{\sin((1-t)\Omega)}{\sin \Omega} z_1 + \frac{\sin(t\Omega)}{\sin \Omega} z_2`
    with :math:`\Omega` the angle between :math:`z_1` and :math:`z_2`, which keeps the norm
    typical of the Gaussian latent. Works with any model that has ``transform`` and
    ``inverse`` (:class:`MultiscaleFlow`, :class:`~tractable.flows.Flow`).

    Args:
        x1, x2: single examples ``(*event_shape)`` or batches ``(N, *event_shape)``.
        context: ``(N, K)`` for a conditional model, shared by both ends.

    Returns:
        ``(steps, *event_shape)``, or ``(N, steps, *event_shape)`` for batches; the first
        and last steps reconstruct ``x1`` and ``x2``.

    Example:
        >>> import torch
        >>> from tractable.flows.image import Glow, interpolate
        >>> f = Glow((1, 4, 4), levels=1, depth=1, hidden=8)
        >>> interpolate(f, torch.rand(1, 4, 4), torch.rand(1, 4, 4), steps=5).shape
        torch.Size([5, 1, 4, 4])
    """
    check_positive_int(steps, "steps", minimum=2)
    event_shape = tuple(model.event_shape)
    single = isinstance(x1, Tensor) and x1.dim() == len(event_shape)
    if single:
        x1 = x1.unsqueeze(0)
        x2 = x2.unsqueeze(0) if isinstance(x2, Tensor) else x2
    with torch.no_grad():
        z1, _ = model.transform(x1, context)
        z2, _ = model.transform(x2, context)
        if z1.shape != z2.shape:
            raise ValueError(
                f"x2: expected the shape of x1 {tuple(x1.shape)}, got {tuple(x2.shape)}"
            )
        n, latent = z1.shape[0], z1.shape[1:]
        a, b = z1.reshape(n, 1, -1), z2.reshape(n, 1, -1)
        t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device).view(1, steps, 1)
        z = (1 - t) * a + t * b
        if spherical:
            cos = nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1).unsqueeze(-1)
            omega = torch.arccos(cos)
            sin = torch.sin(omega)
            ok = sin > 1e-6  # nearly parallel ends fall back to the linear path
            safe = torch.where(ok, sin, torch.ones_like(sin))
            slerp = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / safe
            z = torch.where(ok, slerp, z)
        c = None if context is None else context.repeat_interleave(steps, dim=0)
        x = model.inverse(z.reshape(n * steps, *latent), c)
    x = x.reshape(n, steps, *event_shape)
    return x[0] if single else x


__all__ = [
    "GaussianPrior",
    "Glow",
    "MultiscaleFlow",
    "MultiscaleRealNVP",
    "interpolate",
]

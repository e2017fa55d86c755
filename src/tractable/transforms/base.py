r"""The transform protocol: invertible maps in the normalizing direction (data to noise).

A :class:`Transform` is an :class:`torch.nn.Module` whose ``forward(x, context)`` returns
``(z, ladj)``, the image of ``x`` and the log-absolute-determinant of the Jacobian
:math:`\log |\det \partial z / \partial x|`, one value per example (shape ``(N,)``).
``inverse(z, context)`` returns ``(x, ladj)`` with the log-determinant of the inverse map, so
that at matching points ``inverse_ladj == -forward_ladj``.

The change of variables gives the density of a flow in one pass,

.. math:: \log p(x) = \log p_Z(f(x)) + \log |\det J_f(x)|.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class Transform(nn.Module):
    r"""Base class of every invertible transform (data to noise).

    Subclasses implement :meth:`forward` and :meth:`inverse`. ``event_dims`` is the number of
    trailing dimensions that make one example: 1 for vectors ``(N, D)``, 3 for images
    ``(N, C, H, W)``.
    """

    event_dims: int = 1

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def sum_except_batch(t: Tensor) -> Tensor:
    r"""Sum every dimension but the first: ``(N, ...) -> (N,)``."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


class Compose(Transform):
    r"""Apply transforms in order in the forward (data to noise) direction.

    .. math:: f = f_K \circ \dots \circ f_1, \qquad
              \log |\det J_f| = \sum_k \log |\det J_{f_k}|.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.Compose(tr.transforms.Reverse(), tr.transforms.Reverse())
        >>> z, ladj = t(torch.tensor([[1.0, 2.0]]))
        >>> z.tolist(), ladj.tolist()
        ([[1.0, 2.0]], [0.0])
    """

    def __init__(self, *transforms: Transform | Iterable[Transform]) -> None:
        super().__init__()
        flat: list[Transform] = []
        for t in transforms:
            if isinstance(t, Transform):
                flat.append(t)
            else:
                flat.extend(t)
        for i, t in enumerate(flat):
            if not isinstance(t, Transform):
                raise TypeError(f"transforms[{i}]: expected a Transform, got {type(t).__name__}")
        self.transforms = nn.ModuleList(flat)
        self.event_dims = max((t.event_dims for t in flat), default=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, l = t(x, context)
            ladj = ladj + l
        return x, ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ladj = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, l = t.inverse(z, context)
            ladj = ladj + l
        return z, ladj

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> Transform:
        return self.transforms[i]


class Inverse(Transform):
    r"""Swap the two directions of a transform.

    Used to build IAF from a masked autoregressive layer: the cheap direction becomes sampling.
    """

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"transform: expected a Transform, got {type(transform).__name__}")
        self.base_transform = transform
        self.event_dims = transform.event_dims

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform.forward(z, context)


def identity_ladj(x: Tensor) -> Tensor:
    r"""A zero log-determinant for a volume-preserving map: shape ``(N,)``."""
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

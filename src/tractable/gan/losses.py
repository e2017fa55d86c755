r"""GAN objectives and penalties, on discriminator scores (logits for the minimax family).

With :math:`s = D(x)` the discriminator's score and :math:`\sigma` the logistic function:

* ``minimax`` (Goodfellow et al. 2014): :math:`\min_G \max_D \mathbb{E}\log\sigma(s_{\text{real}})
  + \mathbb{E}\log(1 - \sigma(s_{\text{fake}}))`; the generator minimises
  :math:`\mathbb{E}\log(1 - \sigma(s_{\text{fake}}))`, whose gradient vanishes when the
  discriminator wins (the reason for the next one);
* ``nonsaturating``: the same discriminator, the generator minimises
  :math:`-\mathbb{E}\log\sigma(s_{\text{fake}})` (Goodfellow et al. 2014, section 3);
* ``wgan`` (Arjovsky et al. 2017): the critic maximises :math:`\mathbb{E}s_{\text{real}} -
  \mathbb{E}s_{\text{fake}}` with its weights clipped to :math:`[-c, c]`; the generator
  minimises :math:`-\mathbb{E}s_{\text{fake}}`;
* ``wgan-gp`` (Gulrajani et al. 2017): the same with the gradient penalty
  :math:`\lambda\,\mathbb{E}[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2]` on interpolates
  :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x` instead of clipping;
* ``hinge`` (Lim and Ye 2017; Miyato et al. 2018): the discriminator minimises
  :math:`\mathbb{E}[\max(0, 1 - s_{\text{real}})] + \mathbb{E}[\max(0, 1 + s_{\text{fake}})]`,
  the generator :math:`-\mathbb{E}s_{\text{fake}}`.

The optional R1 penalty (Mescheder et al. 2018) adds :math:`\frac{\gamma}{2}
\mathbb{E}\lVert\nabla_x D(x)\rVert^2` on real data to any discriminator loss.

Example:
    >>> import torch
    >>> d, g = discriminator_loss("hinge", torch.tensor([2.0]), torch.tensor([-2.0])), None
    >>> float(d)
    0.0
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("minimax", "nonsaturating", "wgan", "wgan-gp", "hinge")

Critic = Callable[[Tensor], Tensor]


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    r"""The discriminator's loss (to minimise) from its scores ``(N,)`` on real and generated
    data, without penalties."""
    if kind in ("minimax", "nonsaturating"):
        # -log sigma(s) = softplus(-s), -log(1 - sigma(s)) = softplus(s)
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind in ("wgan", "wgan-gp"):
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"loss: expected one of {LOSSES}, got {kind!r}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    r"""The generator's loss (to minimise) from the discriminator's scores on its samples."""
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigma(s)), the saturating objective
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind in ("wgan", "wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"loss: expected one of {LOSSES}, got {kind!r}")


def gradient_penalty(
    critic: Critic, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    r""":math:`\mathbb{E}[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2]` on random
    interpolates :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x`,
    :math:`\epsilon \sim \mathcal{U}[0, 1]` per example (Gulrajani et al. 2017), differentiable
    in the critic's parameters.

    Example:
        >>> import torch
        >>> w = torch.tensor([3.0, 4.0])  # a linear critic: its gradient has norm 5 everywhere
        >>> float(gradient_penalty(lambda x: x @ w, torch.randn(8, 2), torch.randn(8, 2)))
        16.0
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, dtype=real.dtype, device=real.device)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)
    return ((norm - 1.0) ** 2).mean()


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    r""":math:`\mathbb{E}\lVert\nabla_x D(x)\rVert_2^2` on real data (Mescheder et al. 2018);
    the caller weights it by :math:`\gamma / 2`."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty"]

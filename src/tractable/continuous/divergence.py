r"""The divergence of a vector field, exactly or by Hutchinson's trace estimator.

For :math:`f(z)` with rows treated independently, the divergence of row :math:`n` is the trace
of its Jacobian, :math:`\nabla \cdot f = \operatorname{tr}(\partial f / \partial z)`.

* Exact: one vector-Jacobian product per dimension, :math:`D` in all, each giving row
  :math:`i` of every example's Jacobian, batched into one call; fine for small :math:`D`.
* Hutchinson (1989): for noise with :math:`\mathbb{E}[\varepsilon] = 0` and
  :math:`\mathbb{E}[\varepsilon \varepsilon^\top] = I`,

  .. math:: \operatorname{tr}(J) = \mathbb{E}\left[\varepsilon^\top J \varepsilon\right],

  one vector-Jacobian product per estimate (Grathwohl et al. 2019, FFJORD).

The same products give the squared Frobenius norm :math:`\lVert J \rVert_F^2` used by RNODE
(Finlay et al. 2020): exactly as the sum of the squared rows, or unbiasedly as
:math:`\lVert \varepsilon^\top J \rVert^2`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import vmap

NOISES = ("gaussian", "rademacher")


def hutchinson_noise(like: Tensor, kind: str = "gaussian") -> Tensor:
    r"""Noise with zero mean and identity covariance, shaped like ``like``.

    ``"gaussian"`` draws :math:`\mathcal{N}(0, I)`; ``"rademacher"`` draws :math:`\pm 1` with
    equal probability (the lower-variance choice: its estimator ignores the diagonal's spread).

    Example:
        >>> import torch
        >>> from tractable.continuous import hutchinson_noise
        >>> hutchinson_noise(torch.zeros(2, 3), "rademacher").abs().tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if kind == "gaussian":
        return torch.randn_like(like)
    if kind == "rademacher":
        return torch.randint(0, 2, like.shape, device=like.device).to(like.dtype) * 2 - 1
    raise ValueError(f"noise: expected one of {NOISES}, got {kind!r}")


def exact_divergence(
    f: Tensor, z: Tensor, create_graph: bool = False, frobenius: bool = False
) -> tuple[Tensor, Tensor | None]:
    r"""The exact divergence of ``f`` with respect to ``z``, from the full Jacobian.

    The ``D`` vector-Jacobian products :math:`e_i^\top J` (one per basis vector, each giving
    row :math:`i` of every example's Jacobian) run as one batched product under
    :func:`torch.func.vmap`, not as a Python loop over the dimensions.

    Args:
        f: the field, ``(N, ...)``, computed from ``z`` row by row.
        z: the state, ``(N, ...)``, part of ``f``'s autograd graph.
        create_graph: keep the graph of the result (to differentiate it again in training).
        frobenius: also return :math:`\lVert \partial f / \partial z \rVert_F^2`.

    Returns:
        the divergence ``(N,)`` and the squared Frobenius norm ``(N,)`` (``None`` unless
        ``frobenius``).

    Example:
        >>> import torch
        >>> from tractable.continuous import exact_divergence
        >>> z = torch.ones(1, 2, requires_grad=True)
        >>> exact_divergence(z * torch.tensor([2.0, 3.0]), z)[0].tolist()
        [5.0]
    """
    n = z.shape[0]
    if not f.requires_grad:
        return z.new_zeros(n), (z.new_zeros(n) if frobenius else None)
    d = f[0].numel()
    # (D, N, D): basis vector i for every row, shaped like f
    basis = torch.eye(d, dtype=f.dtype, device=f.device).unsqueeze(1).expand(d, n, d)
    basis = basis.reshape(d, *f.shape)

    def row(v: Tensor) -> Tensor:
        (g,) = torch.autograd.grad(
            f, z, v, create_graph=create_graph, retain_graph=True, materialize_grads=True
        )
        return g

    jac = vmap(row)(basis).reshape(d, n, -1)  # jac[i, n, j] = d f_i / d z_j of row n
    div = jac.diagonal(dim1=0, dim2=2).sum(-1)
    frob = jac.pow(2).sum((0, 2)) if frobenius else None
    return div, frob


def hutchinson_divergence(
    f: Tensor, z: Tensor, eps: Tensor, create_graph: bool = False, frobenius: bool = False
) -> tuple[Tensor, Tensor | None]:
    r"""Hutchinson's unbiased estimate of the divergence, :math:`\varepsilon^\top J \varepsilon`.

    Args:
        f: the field, ``(N, ...)``, computed from ``z`` row by row.
        z: the state, ``(N, ...)``, part of ``f``'s autograd graph.
        eps: the probe, shaped like ``z`` (see :func:`hutchinson_noise`).
        create_graph: keep the graph of the result (to differentiate it again in training).
        frobenius: also return the estimate :math:`\lVert \varepsilon^\top J \rVert^2` of
            :math:`\lVert J \rVert_F^2`.

    Returns:
        the estimate ``(N,)`` and the Frobenius estimate ``(N,)`` (``None`` unless
        ``frobenius``).

    Example:
        >>> import torch
        >>> from tractable.continuous import hutchinson_divergence
        >>> z = torch.ones(1, 2, requires_grad=True)
        >>> f = z * torch.tensor([2.0, 3.0])
        >>> hutchinson_divergence(f, z, torch.tensor([[1.0, -1.0]]))[0].tolist()
        [5.0]
    """
    if eps.shape != z.shape:
        raise ValueError(f"eps: expected shape {tuple(z.shape)}, got {tuple(eps.shape)}")
    n = z.shape[0]
    if not f.requires_grad:
        return z.new_zeros(n), (z.new_zeros(n) if frobenius else None)
    (e_jac,) = torch.autograd.grad(
        f, z, eps, create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    if e_jac is None:
        return z.new_zeros(n), (z.new_zeros(n) if frobenius else None)
    div = (e_jac * eps).reshape(n, -1).sum(1)
    frob = e_jac.pow(2).reshape(n, -1).sum(1) if frobenius else None
    return div, frob


__all__ = ["hutchinson_noise", "exact_divergence", "hutchinson_divergence", "NOISES"]

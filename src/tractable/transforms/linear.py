r"""Volume-preserving permutations and the LU-decomposed invertible linear map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from .base import Transform, identity_ladj


class Reverse(Transform):
    r"""Reverse the order of the features (dimension 1): :math:`\log|\det J| = 0`.

    Example:
        >>> import torch, tractable as tr
        >>> tr.transforms.Reverse()(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()
        [[3.0, 2.0, 1.0]]
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.flip(1), identity_ladj(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z.flip(1), identity_ladj(z)


class Permutation(Transform):
    r"""A fixed permutation of the features, :math:`z_i = x_{\pi(i)}`; random by default
    (drawn from a seeded generator), saved as a buffer so it survives a save/load round trip.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.Permutation(3, permutation=torch.tensor([2, 0, 1]))
        >>> t(torch.tensor([[10.0, 11.0, 12.0]]))[0].tolist()
        [[12.0, 10.0, 11.0]]
    """

    def __init__(
        self, features: int, permutation: Tensor | None = None, seed: int | None = None
    ) -> None:
        super().__init__()
        check_positive_int(features, "features")
        if permutation is None:
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            permutation = torch.randperm(features, generator=g)
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        if sorted(permutation.tolist()) != list(range(features)):
            raise ValueError(
                f"permutation: expected a permutation of 0..{features - 1}, "
                f"got {permutation.tolist()}"
            )
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.permutation], identity_ladj(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_permutation], identity_ladj(z)


class LULinear(Transform):
    r"""An invertible linear map :math:`z = W x + b` with :math:`W = P L U` (Kingma and
    Dhariwal 2018): :math:`P` a fixed permutation, :math:`L` unit lower-triangular, :math:`U`
    upper-triangular with diagonal :math:`\sigma \odot e^{s}` (fixed signs :math:`\sigma`).

    .. math:: \log|\det J| = \sum_i s_i

    Only the free entries are parameters: :math:`D(D-1)/2` below the diagonal of :math:`L`,
    as many above the diagonal of :math:`U`, and :math:`s`, :math:`b` (:math:`D^2 + D` in
    all). :math:`P` is kept as an index vector: the forward pass gathers rows of the
    :math:`D \times D` factor, the inverse columns of its input, never a matrix product. The
    forward pass multiplies by :math:`U^\top` then :math:`(P L)^\top` when the batch is
    smaller than :math:`D` (:math:`O(N D^2)`) and forms :math:`P L U` once otherwise
    (:math:`O(D^3)`, cheaper for large batches); the inverse is two triangular solves. The
    determinant costs :math:`O(D)`. Initialised at a random rotation, as in Glow.

    Example:
        >>> import torch, tractable as tr
        >>> t = tr.transforms.LULinear(3)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
        >>> sum(p.numel() for p in t.parameters())  # 3 + 3 off-diagonal, 3 log-scales, 3 biases
        12
    """

    def __init__(self, features: int, identity_init: bool = False) -> None:
        super().__init__()
        check_positive_int(features, "features")
        if identity_init:
            w = torch.eye(features)
        else:
            w, _ = torch.linalg.qr(torch.randn(features, features))
        P, L, U = torch.linalg.lu(w)
        s = torch.diagonal(U)
        rows, cols = torch.tril_indices(features, features, -1)
        self.register_buffer("_lower_index", rows * features + cols, persistent=False)
        self.register_buffer("_upper_index", cols * features + rows, persistent=False)
        self.register_buffer("_diag_index", torch.arange(features) * (features + 1), False)
        self.features = features
        perm, lower, upper = self._pack(P, L, U)
        self.register_buffer("perm", perm)
        self.register_buffer("sign", torch.sign(s))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper)
        self.log_diag = nn.Parameter(s.abs().log())
        self.bias = nn.Parameter(torch.zeros(features))

    def _pack(self, P: Tensor, L: Tensor, U: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""``(perm, lower, upper)`` from a permutation matrix and full triangular factors:
        :math:`(P M)_i = M_{\text{perm}_i}`, and the entries strictly below (above) the
        diagonal of ``L`` (``U``), in the order of the index buffers."""
        lower = L.flatten()[self._lower_index].clone()
        upper = U.flatten()[self._upper_index].clone()
        return P.argmax(dim=1), lower, upper

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # checkpoints written before the packed layout hold full (D, D) ``lower``/``upper``
        # matrices, a permutation matrix ``P`` and an ``eye`` buffer: convert them in place
        if prefix + "P" in state_dict and state_dict[prefix + "lower"].dim() == 2:
            state_dict.pop(prefix + "eye", None)
            perm, lower, upper = self._pack(
                state_dict.pop(prefix + "P"),
                state_dict[prefix + "lower"],
                state_dict[prefix + "upper"],
            )
            state_dict.update(
                {prefix + "perm": perm, prefix + "lower": lower, prefix + "upper": upper}
            )
        # an interim layout also stored the inverse permutation, which is derived from perm
        state_dict.pop(prefix + "inverse_perm", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _factors(self) -> tuple[Tensor, Tensor]:
        d, diag = self.features, self._diag_index
        L = self.lower.new_zeros(d * d).index_put((self._lower_index,), self.lower)
        L = L.index_fill(0, diag, 1.0).view(d, d)
        U = self.upper.new_zeros(d * d).index_put((self._upper_index,), self.upper)
        U = U.index_put((diag,), self.sign * self.log_diag.exp()).view(d, d)
        return L, U

    def weight(self) -> Tensor:
        r"""The full matrix :math:`W = P L U`, ``(D, D)``."""
        L, U = self._factors()
        return (L @ U)[self.perm]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        L, U = self._factors()
        # z = x (P L U)^T + b, with P L = L[perm] (rows gathered from a D x D matrix, never
        # columns of the N x D activations)
        if x.shape[0] < self.features:
            z = torch.addmm(self.bias, x @ U.T, L[self.perm].T)
        else:
            z = torch.addmm(self.bias, x, (L @ U)[self.perm].T)
        return z, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        L, U = self._factors()
        # W x = z - b  =>  L U x = P^T (z - b); rows are examples, so solve on columns.
        rhs = (z - self.bias)[:, torch.argsort(self.perm)]
        y = torch.linalg.solve_triangular(L, rhs.T, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(U, y, upper=True).T
        return x, -self.log_diag.sum().expand(z.shape[0])

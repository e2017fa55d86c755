"""A probabilistic-PCA oracle and a VAE that represents it exactly, shared by the VAE tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from tractable.estimators import LinearGaussian
from tractable.vae import VAE, GaussianDecoder, GaussianEncoder

D, L, SIGMA = 5, 2, 0.5


@pytest.fixture
def ppca() -> LinearGaussian:
    # orthogonal columns make the exact posterior diagonal, so a GaussianEncoder can represent it
    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(D, L, generator=g))
    W = q * torch.tensor([2.0, 0.7])
    return LinearGaussian(W, torch.randn(D, generator=g), SIGMA)


def _ppca_vae(model: LinearGaussian, shift: float = 0.0, analytic_kl: bool | None = None) -> VAE:
    """A VAE whose decoder is the pPCA likelihood and whose encoder is the exact posterior
    (its mean shifted by `shift`)."""
    W, mu = model.W, model.mu
    var = SIGMA**2 / (W.pow(2).sum(0) + SIGMA**2)  # posterior variances, (L,)
    A = (W / (W.pow(2).sum(0) + SIGMA**2)).T  # M^{-1} W^T, (L, D)
    enc = GaussianEncoder(D, L, net=nn.Identity(), features=D)
    dec = GaussianDecoder(D, L, net=nn.Linear(L, D), scale=SIGMA)
    with torch.no_grad():
        enc.loc.weight.copy_(A)
        enc.loc.bias.copy_(-A @ mu + shift)
        enc.log_scale.weight.zero_()
        enc.log_scale.bias.copy_(0.5 * var.log())
        dec.net.weight.copy_(W)
        dec.net.bias.copy_(mu)
    return VAE(enc, dec, analytic_kl=analytic_kl)


@pytest.fixture
def ppca_vae() -> Callable[..., VAE]:
    """`ppca_vae(ppca, shift=0.0, analytic_kl=None)`: the pPCA model as a VAE."""
    return _ppca_vae

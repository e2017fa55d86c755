r"""Priors :math:`p(z)` for VAEs.

Any module with ``log_prob(z) -> (N,)``, ``sample(n) -> (n, L)`` and ``event_shape == (L,)``
is a prior: :class:`tractable.distributions.StandardNormal`, a learnable
:class:`tractable.distributions.MixtureOfGaussians`, an unconditional
:class:`tractable.flows.Flow` on ``(L,)`` (a flow prior), or the :class:`VampPrior` below.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_event, check_positive_int
from .gaussian import log_normal_diag

# Rows per block when evaluating K Gaussian components, so that (rows, K, L) stays ~2**22.
_BLOCK_ELEMENTS = 2**22


def check_temperature(temperature: object) -> float:
    r"""A sampling temperature as a float: finite and > 0 (``TypeError`` for a non-number).

    Example:
        >>> check_temperature(1)
        1.0
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature: expected a float, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a finite float > 0, got {temperature}")
    return float(temperature)


class VampPrior(nn.Module):
    r"""The variational mixture of posteriors prior (Tomczak and Welling 2018).

    .. math:: p(z) = \frac{1}{K} \sum_{k=1}^{K} q(z \mid u_k)

    with :math:`K` learned pseudo-inputs :math:`u_k` of the data's shape pushed through the
    encoder's Gaussian stage. With ``bounds=(lo, hi)`` the pseudo-inputs are passed through a
    hard tanh to :math:`[lo, hi]`, as in the paper for data in :math:`[0, 1]`.

    The encoder is held by reference and not registered as a submodule: it already belongs to
    the VAE, and a second registration would duplicate its tensors in the ``state_dict`` (which
    safetensors refuses). Only the pseudo-inputs are this module's parameters.

    Example:
        >>> import torch
        >>> from tractable.vae import GaussianEncoder, VampPrior
        >>> prior = VampPrior(GaussianEncoder(4, latent=2, hidden=(8,)), pseudo_inputs=3)
        >>> prior.log_prob(torch.zeros(5, 2)).shape, prior.sample(5).shape
        (torch.Size([5]), torch.Size([5, 2]))
    """

    def __init__(
        self,
        encoder: nn.Module,
        pseudo_inputs: int = 500,
        init: Tensor | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        for attr in ("gaussian", "event_shape", "latent"):
            if not hasattr(encoder, attr):
                raise TypeError(
                    f"encoder: expected a tractable encoder (missing {attr!r}), got "
                    f"{type(encoder).__name__}"
                )
        check_positive_int(pseudo_inputs, "pseudo_inputs")
        if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
            raise ValueError(f"bounds: expected (lo, hi) with lo < hi, got {bounds!r}")
        shape = (pseudo_inputs, *encoder.event_shape)
        if init is None:
            centre, spread = (
                (0.0, 1.0)
                if bounds is None
                else (0.5 * (bounds[0] + bounds[1]), bounds[1] - bounds[0])
            )
            init = centre + 0.01 * spread * torch.randn(shape)
        elif not isinstance(init, Tensor) or tuple(init.shape) != shape:
            raise ValueError(
                f"init: expected a tensor of shape {shape}, got "
                f"{tuple(init.shape) if isinstance(init, Tensor) else init!r}"
            )
        self.pseudo_inputs = nn.Parameter(init.detach().clone().to(torch.get_default_dtype()))
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        self._encoder = (encoder,)  # a reference, deliberately not a submodule (see docstring)
        self.latent = encoder.latent
        self.event_shape = (encoder.latent,)

    @property
    def encoder(self) -> nn.Module:
        return self._encoder[0]

    def inputs(self) -> Tensor:
        r"""The pseudo-inputs as the encoder sees them: ``(K, *data_shape)``."""
        u = self.pseudo_inputs
        return u if self.bounds is None else F.hardtanh(u, *self.bounds)

    def components(self) -> tuple[Tensor, Tensor]:
        r"""The mixture components' ``loc`` and ``log_scale``: ``(K, L)`` each."""
        loc, log_scale, _ = self.encoder.gaussian(self.inputs())
        return loc, log_scale

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log p(z)`: ``(N, L) -> (N,)``, evaluated in blocks of rows."""
        z = check_event(z, "z", self.event_shape, like=self.pseudo_inputs)
        loc, log_scale = self.components()
        K = loc.shape[0]
        rows = max(1, _BLOCK_ELEMENTS // (K * self.latent))
        out = [
            torch.logsumexp(log_normal_diag(zb.unsqueeze(1), loc, log_scale), 1)
            for zb in z.split(rows)
        ]
        return torch.cat(out) - math.log(K)

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        r"""``n`` draws ``(n, L)``: a uniform component :math:`k`, then
        :math:`z = \mu_k + T \sigma_k \odot \epsilon` (reparameterized within the component;
        the temperature :math:`T` narrows each component, not the mixture)."""
        check_positive_int(n, "n")
        t = check_temperature(temperature)
        loc, log_scale = self.components()
        idx = torch.randint(loc.shape[0], (n,), device=loc.device)
        return loc[idx] + t * torch.exp(log_scale[idx]) * torch.randn(
            n, self.latent, dtype=loc.dtype, device=loc.device
        )

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        with torch.no_grad():
            return self.rsample(n, temperature)

    def extra_repr(self) -> str:
        return f"pseudo_inputs={self.pseudo_inputs.shape[0]}, latent={self.latent}"


__all__ = ["VampPrior", "check_temperature"]

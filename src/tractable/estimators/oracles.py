r"""Latent-variable models with a closed-form marginal likelihood, to check estimators against.

* :class:`LinearGaussian`: probabilistic PCA (Tipping and Bishop 1999), with an analytic
  :math:`\log p(x)` and an analytic Gaussian posterior;
* :class:`DiscreteMixture`: a mixture of Gaussians with a discrete latent component index,
  whose marginal is an exact finite sum.

Their methods follow the callable protocol of :mod:`tractable.estimators.sampling`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal, kl_divergence

from ..checks import as_float_tensor, check_event, check_finite, check_positive_int

_LOG_2PI = math.log(2 * math.pi)


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite float > 0, got {value}")
    return float(value)


def _parameter(value: object, name: str, dims: int, expected: str) -> Tensor:
    r"""A finite real tensor of ``dims`` non-empty dimensions (``expected`` names its shape)."""
    if isinstance(value, Tensor) and (value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
    value = as_float_tensor(value, name)
    if value.dim() != dims or value.numel() == 0:
        raise ValueError(f"{name}: expected a tensor of shape {expected}, got {tuple(value.shape)}")
    check_finite(value, name)
    return value


class LinearGaussian:
    r"""Probabilistic PCA, a linear-Gaussian latent-variable model.

    .. math::
        z \sim \mathcal{N}(0, I_L), \qquad x \mid z \sim \mathcal{N}(Wz + \mu, \sigma^2 I_D),
        \qquad p(x) = \mathcal{N}(x; \mu, WW^\top + \sigma^2 I_D),

    with posterior :math:`p(z \mid x) = \mathcal{N}(M^{-1}W^\top(x - \mu), \sigma^2 M^{-1})`,
    :math:`M = W^\top W + \sigma^2 I_L`.

    Args:
        W: ``(D, L)`` loading matrix.
        mu: ``(D,)`` mean.
        sigma: the noise standard deviation.

    Example:
        >>> import torch
        >>> from tractable.estimators import LinearGaussian
        >>> model = LinearGaussian.random(features=3, latent=2, seed=0)
        >>> x = model.sample(4)
        >>> z = model.posterior_sample(x, 1)[0]
        >>> # Bayes' rule holds exactly: log p(x, z) - log p(z | x) = log p(x)
        >>> gap = model.log_joint(x, z) - model.posterior_log_prob(z, x) - model.log_marginal(x)
        >>> bool(gap.abs().max() < 1e-4)
        True
    """

    def __init__(self, W: Tensor, mu: Tensor, sigma: float) -> None:
        W = _parameter(W, "W", 2, "(D, L)")
        mu = _parameter(mu, "mu", 1, f"({W.shape[0]},)")
        if tuple(mu.shape) != (W.shape[0],):
            raise ValueError(f"mu: expected shape ({W.shape[0]},), got {tuple(mu.shape)}")
        self.W = W
        self.mu = mu.to(W)
        self.sigma = _positive(sigma, "sigma")

    @classmethod
    def random(
        cls, features: int, latent: int, sigma: float = 0.5, seed: int = 0, scale: float = 1.0
    ) -> LinearGaussian:
        r"""A model with Gaussian random ``W`` (entries :math:`\mathcal{N}(0, \text{scale}^2)`)
        and ``mu``, drawn from its own generator (the global RNG is untouched)."""
        check_positive_int(features, "features")
        check_positive_int(latent, "latent")
        g = torch.Generator().manual_seed(seed)
        dtype = torch.get_default_dtype()
        W = scale * torch.randn(features, latent, generator=g, dtype=dtype)
        mu = torch.randn(features, generator=g, dtype=dtype)
        return cls(W, mu, sigma)

    @property
    def features(self) -> int:
        return self.W.shape[0]

    @property
    def latent(self) -> int:
        return self.W.shape[1]

    def _x(self, x: Tensor) -> Tensor:
        return check_event(x, "x", (self.features,), like=self.W)

    def _z(self, z: Tensor) -> Tensor:
        return check_event(z, "z", (self.latent,), like=self.W)

    def covariance(self) -> Tensor:
        r"""The marginal covariance :math:`WW^\top + \sigma^2 I`: ``(D, D)``."""
        eye = torch.eye(self.features, dtype=self.W.dtype, device=self.W.device)
        return self.W @ self.W.T + self.sigma**2 * eye

    def log_marginal(self, x: Tensor) -> Tensor:
        r"""The exact :math:`\log p(x)`: ``(N, D) -> (N,)``."""
        x = self._x(x)
        return MultivariateNormal(self.mu, self.covariance()).log_prob(x)

    def prior_log_prob(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        r""":math:`\log \mathcal{N}(z; 0, I)`: ``(M, L) -> (M,)`` (``x`` is ignored)."""
        z = self._z(z)
        return -0.5 * z.pow(2).sum(1) - 0.5 * self.latent * _LOG_2PI

    def prior_sample(self, x: Tensor, k: int) -> Tensor:
        r"""``k`` prior draws per row of ``x``: ``(k, N, L)``."""
        check_positive_int(k, "k")
        return torch.randn(k, x.shape[0], self.latent, dtype=self.W.dtype, device=self.W.device)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log \mathcal{N}(x; Wz + \mu, \sigma^2 I)`: ``(M, D), (M, L) -> (M,)``."""
        x, z = self._x(x), self._z(z)
        r = x - z @ self.W.T - self.mu
        return -0.5 * r.pow(2).sum(1) / self.sigma**2 - self.features * (
            math.log(self.sigma) + 0.5 * _LOG_2PI
        )

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log p(x, z) = \log p(z) + \log p(x \mid z)`: ``(M, D), (M, L) -> (M,)``."""
        return self.prior_log_prob(z) + self.log_likelihood(x, z)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""The exact posterior: means ``(N, L)`` and the shared covariance ``(L, L)``."""
        x = self._x(x)
        eye = torch.eye(self.latent, dtype=self.W.dtype, device=self.W.device)
        M = self.W.T @ self.W + self.sigma**2 * eye
        mean = torch.linalg.solve(M, self.W.T @ (x - self.mu).T).T
        cov = self.sigma**2 * torch.linalg.inv(M)
        return mean, 0.5 * (cov + cov.T)

    def posterior_sample(self, x: Tensor, k: int) -> Tensor:
        r"""``k`` exact posterior draws per row of ``x``: ``(k, N, L)``."""
        check_positive_int(k, "k")
        mean, cov = self.posterior(x)
        eps = torch.randn(k, *mean.shape, dtype=mean.dtype, device=mean.device)
        return mean + eps @ torch.linalg.cholesky(cov).T

    def posterior_log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log p(z \mid x)`: ``(M, L), (M, D) -> (M,)``."""
        z = self._z(z)
        mean, cov = self.posterior(x)
        return MultivariateNormal(mean, cov).log_prob(z)

    def gaussian_elbo(self, x: Tensor, loc: Tensor, cov: Tensor) -> Tensor:
        r"""The analytic ELBO of a Gaussian :math:`q = \mathcal{N}(\text{loc}, \text{cov})`:

        .. math:: \mathrm{ELBO} = \log p(x) - \mathrm{KL}(q \,\|\, p(z \mid x)).

        ``loc`` is ``(N, L)``; ``cov`` is ``(L, L)`` or ``(N, L, L)``.
        """
        mean, post_cov = self.posterior(x)
        q = MultivariateNormal(loc, cov)
        return self.log_marginal(x) - kl_divergence(q, MultivariateNormal(mean, post_cov))

    def sample(self, n: int) -> Tensor:
        r"""``n`` draws of ``x`` from the model: ``(n, D)``."""
        check_positive_int(n, "n")
        z = torch.randn(n, self.latent, dtype=self.W.dtype, device=self.W.device)
        noise = torch.randn(n, self.features, dtype=self.W.dtype, device=self.W.device)
        return z @ self.W.T + self.mu + self.sigma * noise


class DiscreteMixture:
    r"""A mixture of diagonal Gaussians read as a model with a discrete latent
    :math:`z \in \{0, \dots, K-1\}`:

    .. math:: p(x, z) = \pi_z \, \mathcal{N}(x; m_z, \operatorname{diag} s_z^2), \qquad
              \log p(x) = \log \sum_{z=0}^{K-1} p(x, z).

    Args:
        logits: ``(K,)`` unnormalized log-weights.
        means: ``(K, D)`` component means.
        scales: ``(K, D)`` component standard deviations.

    Example:
        >>> import torch
        >>> from tractable.estimators import DiscreteMixture, enumerate_latent
        >>> model = DiscreteMixture.random(components=3, features=2, seed=0)
        >>> x = model.sample(5)
        >>> est = enumerate_latent(model.log_joint, x, 3)
        >>> bool((est.values - model.log_marginal(x)).abs().max() < 1e-5)
        True
    """

    def __init__(self, logits: Tensor, means: Tensor, scales: Tensor) -> None:
        means = _parameter(means, "means", 2, "(K, D)")
        K, D = means.shape
        logits = _parameter(logits, "logits", 1, f"({K},)")
        if tuple(logits.shape) != (K,):
            raise ValueError(f"logits: expected shape ({K},), got {tuple(logits.shape)}")
        scales = _parameter(scales, "scales", 2, f"({K}, {D})")
        if tuple(scales.shape) != (K, D):
            raise ValueError(f"scales: expected shape ({K}, {D}), got {tuple(scales.shape)}")
        if not bool((scales > 0).all()):
            raise ValueError("scales: expected positive values")
        self.log_weights = torch.log_softmax(logits.to(means), 0)
        self.means = means
        self.scales = scales.to(means)

    @classmethod
    def random(
        cls, components: int, features: int, spread: float = 2.0, scale: float = 0.7, seed: int = 0
    ) -> DiscreteMixture:
        r"""Random means (spread ``spread``), equal scales ``scale``, random weights."""
        check_positive_int(components, "components")
        check_positive_int(features, "features")
        g = torch.Generator().manual_seed(seed)
        dtype = torch.get_default_dtype()
        logits = torch.randn(components, generator=g, dtype=dtype)
        means = spread * torch.randn(components, features, generator=g, dtype=dtype)
        scales = torch.full((components, features), _positive(scale, "scale"), dtype=dtype)
        return cls(logits, means, scales)

    @property
    def components(self) -> int:
        return self.means.shape[0]

    @property
    def features(self) -> int:
        return self.means.shape[1]

    def component_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log \pi_z + \log \mathcal{N}(x; m_z, s_z^2)` for every ``z``: ``(N, K)``."""
        x = check_event(x, "x", (self.features,), like=self.means)
        u = (x.unsqueeze(1) - self.means) / self.scales
        log_n = -0.5 * u.pow(2).sum(-1) - self.scales.log().sum(-1) - 0.5 * self.features * _LOG_2PI
        return log_n + self.log_weights

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log p(x, z)` for integer states ``z``: ``(M, D), (M,) -> (M,)``."""
        if not isinstance(z, Tensor) or z.dim() != 1 or z.shape[0] != x.shape[0]:
            raise ValueError(f"z: expected a tensor of shape ({x.shape[0]},) of states")
        if z.is_floating_point() or int(z.min()) < 0 or int(z.max()) >= self.components:
            raise ValueError(f"z: expected integer states in 0..{self.components - 1}")
        return self.component_log_prob(x).gather(1, z.long().unsqueeze(1)).squeeze(1)

    def log_marginal(self, x: Tensor) -> Tensor:
        r"""The exact :math:`\log p(x)`: ``(N, D) -> (N,)``."""
        return torch.logsumexp(self.component_log_prob(x), 1)

    def posterior_probs(self, x: Tensor) -> Tensor:
        r""":math:`p(z \mid x)`: ``(N, K)``."""
        return torch.softmax(self.component_log_prob(x), 1)

    def sample(self, n: int) -> Tensor:
        r"""``n`` draws of ``x``: ``(n, D)``."""
        check_positive_int(n, "n")
        z = torch.multinomial(self.log_weights.exp(), n, replacement=True)
        return self.means[z] + self.scales[z] * torch.randn(
            n, self.features, dtype=self.means.dtype
        )


__all__ = ["LinearGaussian", "DiscreteMixture"]

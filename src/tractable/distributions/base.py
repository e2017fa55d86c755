r"""Base distributions as :class:`torch.nn.Module` s, so that learnable parameters move with
``.to(device)`` and dtype changes and are saved in the ``state_dict``.

Every distribution has an ``event_shape`` and returns one log-density per example:
``log_prob(x)`` maps ``(N, *event_shape)`` to ``(N,)``. ``sample(n)`` draws without gradients,
``rsample(n)`` with the reparameterization trick where one exists. ``temperature`` scales the
spread of the draws (Kingma and Dhariwal 2018): 1 is the model itself, lower is more typical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_event, check_positive_int


def _shape(shape: int | Sequence[int], name: str = "shape") -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"{name}: expected a positive int or a sequence of them, got {shape!r}")
    return tuple(shape)


def _per_feature(value: Tensor | float, features: int) -> Tensor:
    r"""A scalar or ``(features,)`` value as a new ``(features,)`` tensor of the default dtype."""
    return torch.as_tensor(value, dtype=torch.get_default_dtype()).expand(features).clone()


def _check_temperature(temperature: float) -> float:
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise TypeError(f"temperature: expected a float, got {type(temperature).__name__}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature: expected a finite float > 0, got {temperature}")
    return float(temperature)


class Distribution(nn.Module):
    r"""Base class: ``log_prob``, ``sample``, ``rsample`` over a fixed ``event_shape``."""

    has_rsample: bool = True

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = event_shape
        # Follows the module across .to(device/dtype), for parameter-free distributions.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def features(self) -> int:
        return math.prod(self.event_shape)

    def _check(self, x: Tensor, name: str = "x") -> Tensor:
        return check_event(x, name, self.event_shape, like=self._anchor)

    def _set_loc_scale(self, loc: Tensor | float, scale: Tensor | float, learnable: bool) -> None:
        r"""Store ``loc`` and ``log(scale)`` as ``(D,)`` parameters (``learnable``) or buffers,
        under the ``state_dict`` keys ``loc`` and ``log_scale``."""
        loc_t, scale_t = _per_feature(loc, self.features), _per_feature(scale, self.features)
        if not bool((scale_t > 0).all()):
            raise ValueError(f"scale: expected positive values, got {scale_t.tolist()}")
        if learnable:
            self.loc = nn.Parameter(loc_t)
            self.log_scale = nn.Parameter(scale_t.log())
        else:
            self.register_buffer("loc", loc_t)
            self.register_buffer("log_scale", scale_t.log())

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        _check_temperature(temperature)
        with torch.no_grad():
            return self.rsample(n, temperature)

    def sample_and_log_prob(self, n: int, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
        x = self.rsample(n, temperature)
        return x, self.log_prob(x)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


class StandardNormal(Distribution):
    r"""The standard normal :math:`\mathcal{N}(0, I)` on ``shape``.

    .. math:: \log p(x) = -\tfrac{1}{2}\lVert x\rVert^2 - \tfrac{D}{2}\log 2\pi

    Example:
        >>> import torch, tractable as tr
        >>> d = tr.distributions.StandardNormal(2)
        >>> round(d.log_prob(torch.zeros(1, 2)).item(), 6) == round(-math.log(2 * math.pi), 6)
        True
    """

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__(_shape(shape))

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        sq = x.reshape(x.shape[0], -1).pow(2).sum(1)
        return -0.5 * sq - 0.5 * self.features * math.log(2 * math.pi)

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        eps = torch.randn(
            (n, *self.event_shape), dtype=self._anchor.dtype, device=self._anchor.device
        )
        return eps * _check_temperature(temperature)


class DiagNormal(Distribution):
    r"""A normal with diagonal covariance, :math:`\mathcal{N}(\mu, \operatorname{diag}\sigma^2)`.

    ``loc`` and ``log_scale`` are learnable parameters when ``learnable`` is true (the default).

    Example:
        >>> import torch, tractable as tr
        >>> d = tr.distributions.DiagNormal(3)
        >>> d.log_prob(torch.zeros(4, 3)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        features: int,
        loc: Tensor | float = 0.0,
        scale: Tensor | float = 1.0,
        learnable: bool = True,
    ) -> None:
        check_positive_int(features, "features")
        super().__init__((features,))
        self._set_loc_scale(loc, scale, learnable)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        u = (x - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * u.pow(2) - self.log_scale).sum(1) - 0.5 * self.features * math.log(
            2 * math.pi
        )

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        eps = torch.randn(n, self.features, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + _check_temperature(temperature) * eps * self.log_scale.exp()


class MixtureOfGaussians(Distribution):
    r"""A mixture of Gaussians with learnable weights, means and scales.

    .. math:: p(x) = \sum_k \pi_k \, \mathcal{N}(x; \mu_k, \Sigma_k)

    ``covariance="diag"`` learns a diagonal :math:`\Sigma_k`; ``"full"`` learns a Cholesky
    factor :math:`\Sigma_k = L_k L_k^\top` with a positive diagonal. Sampling picks a component,
    then draws from it (reparameterized within the component; the discrete choice has no
    pathwise gradient, so ``rsample`` is not offered).

    Example:
        >>> import torch, tractable as tr
        >>> d = tr.distributions.MixtureOfGaussians(2, components=3, covariance="full")
        >>> d.sample(5).shape
        torch.Size([5, 2])
    """

    has_rsample = False

    def __init__(
        self,
        features: int,
        components: int = 8,
        covariance: str = "diag",
        init_spread: float = 1.0,
    ) -> None:
        check_positive_int(features, "features")
        check_positive_int(components, "components")
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance: expected 'diag' or 'full', got {covariance!r}")
        super().__init__((features,))
        self.covariance = covariance
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(init_spread * torch.randn(components, features))
        self.log_diag = nn.Parameter(torch.zeros(components, features))
        if covariance == "full":
            self.off_diag = nn.Parameter(torch.zeros(components, features, features))

    def scale_tril(self) -> Tensor:
        r"""Cholesky factors of the component covariances, ``(K, D, D)``."""
        L = torch.diag_embed(self.log_diag.exp())
        if self.covariance == "full":
            L = L + torch.tril(self.off_diag, diagonal=-1)
        return L

    def component_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log \mathcal{N}(x; \mu_k, \Sigma_k)` for every component: ``(N, K)``."""
        diff = x.unsqueeze(1) - self.means  # (N, K, D)
        D = self.features
        if self.covariance == "diag":
            u = diff * torch.exp(-self.log_diag)
        else:
            L = self.scale_tril().expand(x.shape[0], -1, -1, -1)
            u = torch.linalg.solve_triangular(L, diff.unsqueeze(-1), upper=False).squeeze(-1)
        return -0.5 * u.pow(2).sum(-1) - self.log_diag.sum(-1) - 0.5 * D * math.log(2 * math.pi)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        log_w = torch.log_softmax(self.logits, 0)
        return torch.logsumexp(self.component_log_prob(x) + log_w, dim=1)

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        t = _check_temperature(temperature)
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True)
        eps = torch.randn(n, self.features, 1, dtype=self.means.dtype, device=self.means.device)
        return self.means[k] + t * (self.scale_tril()[k] @ eps).squeeze(-1)


class Uniform(Distribution):
    r"""The uniform distribution on the box :math:`[a, b]^D` (not reparameterized at the edges).

    ``log_prob`` is :math:`-\sum_d \log(b_d - a_d)` inside and :math:`-\infty` outside. Temperature
    shrinks the box about its centre.

    Example:
        >>> import torch, tractable as tr
        >>> tr.distributions.Uniform(2, low=0.0, high=2.0).log_prob(torch.ones(1, 2)).item()
        -1.3862943649291992
    """

    def __init__(
        self, features: int, low: Tensor | float = 0.0, high: Tensor | float = 1.0
    ) -> None:
        check_positive_int(features, "features")
        super().__init__((features,))
        low_t, high_t = _per_feature(low, features), _per_feature(high, features)
        if not bool((high_t > low_t).all()):
            raise ValueError(
                f"high: expected high > low everywhere, got low={low_t.tolist()}, "
                f"high={high_t.tolist()}"
            )
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        inside = ((x >= self.low) & (x <= self.high)).all(1)
        lp = -(self.high - self.low).log().sum().expand(x.shape[0])
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        t = _check_temperature(temperature)
        u = torch.rand(n, self.features, dtype=self.low.dtype, device=self.low.device)
        centre = 0.5 * (self.low + self.high)
        return centre + t * (u - 0.5) * (self.high - self.low)


class Logistic(Distribution):
    r"""Independent logistic distributions, the base of NICE (Dinh et al. 2015).

    .. math:: \log p(x) = \sum_d -u_d - \log s_d - 2 \log(1 + e^{-u_d}),
              \quad u_d = (x_d - \mu_d) / s_d

    Example:
        >>> import torch, tractable as tr
        >>> tr.distributions.Logistic(1).log_prob(torch.zeros(1, 1)).item()
        -1.3862943649291992
    """

    def __init__(
        self,
        features: int,
        loc: Tensor | float = 0.0,
        scale: Tensor | float = 1.0,
        learnable: bool = False,
    ) -> None:
        check_positive_int(features, "features")
        super().__init__((features,))
        self._set_loc_scale(loc, scale, learnable)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        u = (x - self.loc) * torch.exp(-self.log_scale)
        # -u - 2 log(1 + e^{-u}) = -u - 2 softplus(-u), stable for both signs of u.
        return (-u - 2 * nn.functional.softplus(-u) - self.log_scale).sum(1)

    def rsample(self, n: int, temperature: float = 1.0) -> Tensor:
        check_positive_int(n, "n")
        t = _check_temperature(temperature)
        eps = torch.finfo(self.loc.dtype).eps
        u = torch.rand(n, self.features, dtype=self.loc.dtype, device=self.loc.device)
        u = u.clamp(eps, 1 - eps)
        return self.loc + t * self.log_scale.exp() * (u.log() - torch.log1p(-u))


__all__ = [
    "Distribution",
    "StandardNormal",
    "DiagNormal",
    "MixtureOfGaussians",
    "Uniform",
    "Logistic",
]

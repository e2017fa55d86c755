r"""Fréchet distance between Gaussians fitted to two feature sets (FID).

Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium": fit :math:`\mathcal{N}(\mu_1, \Sigma_1)` and :math:`\mathcal{N}(\mu_2, \Sigma_2)`
to the features (Inception pool3 activations for the standard FID) and report the squared
2-Wasserstein (Fréchet) distance between them,

.. math::
    d^2 = \lVert \mu_1 - \mu_2 \rVert^2
        + \operatorname{tr}\left(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\right).

:math:`(\Sigma_1\Sigma_2)^{1/2}` is similar to
:math:`(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}`, so its trace is real and non-negative;
scipy's ``sqrtm`` may still return tiny imaginary parts from round-off, which are dropped after
a check. Everything is computed in float64. FID is biased upwards for finite samples (Chong and
Forsyth 2020), so compare values computed on the same number of samples.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .inputs import (
    ArrayLike,
    as_matrix,
    as_vector,
    check_float,
    check_same_features,
    overflow_error,
)

__all__ = ["feature_statistics", "fid", "fid_from_stats"]

# Relative size of the imaginary part of tr((S1 S2)^{1/2}) accepted as round-off.
_IMAG_RTOL = 1e-3


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean ``(F,)`` and unbiased covariance ``(F, F)`` of ``features`` ``(N, F)``, float64.

    Cache these for a reference set and pass them to :func:`fid_from_stats`.

    Example:
        >>> import numpy as np
        >>> mu, sigma = feature_statistics(np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> mu.tolist(), sigma.tolist()
        ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    return _statistics(as_matrix(features, "features", min_rows=2), "features")


def _statistics(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", invalid="ignore"):
        mu = x.mean(axis=0)
        sigma = np.atleast_2d(np.cov(x, rowvar=False))
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise overflow_error(name, x)
    return mu, sigma


def _check_covariance(sigma: object, name: str, features: int) -> np.ndarray:
    s = as_matrix(sigma, name)
    if s.shape != (features, features):
        raise ValueError(f"{name}: expected shape ({features}, {features}), got {s.shape}")
    scale = max(float(np.abs(s).max()), np.finfo(np.float64).tiny)
    asymmetry = float(np.abs(s - s.T).max())
    if asymmetry > 1e-8 * scale:
        raise ValueError(
            f"{name}: expected a symmetric covariance matrix, got max |S - S^T| = {asymmetry:.3g}"
        )
    return s


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    r""":math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2}` via ``scipy.linalg.sqrtm``."""
    import scipy.linalg  # imported on use: scipy costs 0.2 s at start-up

    with warnings.catch_warnings():
        # a singular product (identical rows, fewer rows than features) is checked below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # A singular product (e.g. fewer samples than features) can make sqrtm fail; the standard
        # remedy is to add eps to the diagonals and retry.
        offset = eps * np.eye(sigma1.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError(
                "sigma1, sigma2: the matrix square root of sigma1 @ sigma2 is not finite even "
                f"with eps = {eps} added to the diagonals; check that both are covariance "
                "matrices (symmetric positive semi-definite)"
            )
    trace = np.trace(covmean)
    if np.iscomplexobj(covmean):
        imag = float(np.abs(np.diagonal(covmean).imag).max())
        scale = max(1.0, float(np.abs(np.diagonal(covmean).real).max()))
        if imag > _IMAG_RTOL * scale:
            raise ValueError(
                "sigma1, sigma2: the matrix square root of sigma1 @ sigma2 has imaginary parts "
                f"up to {imag:.3g} on its diagonal (more than round-off); are both "
                "covariances positive semi-definite?"
            )
        trace = trace.real
    return float(trace)


def fid_from_stats(
    mu1: ArrayLike,
    sigma1: ArrayLike,
    mu2: ArrayLike,
    sigma2: ArrayLike,
    eps: float = 1e-6,
) -> float:
    r"""Fréchet distance between :math:`\mathcal{N}(\mu_1, \Sigma_1)` and
    :math:`\mathcal{N}(\mu_2, \Sigma_2)`.

    .. math::
        d^2 = \lVert \mu_1 - \mu_2 \rVert^2
            + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
            - 2 \operatorname{tr}(\Sigma_1 \Sigma_2)^{1/2}

    Args:
        mu1, mu2: means, shape ``(F,)``.
        sigma1, sigma2: covariances, shape ``(F, F)``, symmetric positive semi-definite.
        eps: added to both diagonals only when the square root of the product is not finite.

    Example:
        >>> import numpy as np
        >>> # 1D: (m1 - m2)^2 + (s1 - s2)^2
        >>> fid_from_stats(np.array([0.0]), np.array([[4.0]]), np.array([1.0]), np.array([[1.0]]))
        2.0
    """
    m1 = as_vector(mu1, "mu1")
    m2 = as_vector(mu2, "mu2", length=m1.shape[0])
    s1 = _check_covariance(sigma1, "sigma1", m1.shape[0])
    s2 = _check_covariance(sigma2, "sigma2", m1.shape[0])
    eps = check_float(eps, "eps")
    diff = m1 - m2
    trace_term = np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt_product(s1, s2, eps)
    return float(diff @ diff + trace_term)


def fid(features_a: ArrayLike, features_b: ArrayLike, eps: float = 1e-6) -> float:
    r"""FID between two feature sets ``(N, F)`` and ``(M, F)`` (Heusel et al. 2017).

    Fits a Gaussian to each set with :func:`feature_statistics` and returns
    :func:`fid_from_stats`. The features are whatever embedding the caller chose (Inception
    pool3 features for the standard FID); this function only does the statistics.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(500, 3))
        >>> abs(fid(x, x)) < 1e-10
        True
        >>> round(fid(x, x + np.array([3.0, 4.0, 0.0])), 8)  # a shift adds ||v||^2
        25.0
    """
    a = as_matrix(features_a, "features_a", min_rows=2)
    b = as_matrix(features_b, "features_b", min_rows=2)
    check_same_features(a, "features_a", b, "features_b")
    mu1, s1 = _statistics(a, "features_a")
    mu2, s2 = _statistics(b, "features_b")
    try:
        value = fid_from_stats(mu1, s1, mu2, s2, eps=eps)
    except ValueError as err:
        # the statistics are ours, not the caller's: name the caller's arguments (eps is its)
        message = str(err)
        if message.startswith("eps"):
            raise
        raise ValueError(f"features_a, features_b: {message.split(': ', 1)[-1]}") from None
    if not math.isfinite(value):
        raise overflow_error("features_a, features_b", a, b)
    return value

r"""Principal-component comparison of data and model samples.

A model that matches the data matches its second moments too, so the eigenvalue spectrum of the
sample covariance :math:`\lambda_1 \ge \dots \ge \lambda_k` should track the data's. Missing
variance in the leading components is a symptom of mode dropping; an inflated tail, of noisy
samples. Besides each set's own spectrum, the variance of the samples along the *data's*
principal axes :math:`u_i^\top \hat\Sigma_\text{samples} u_i` compares the two in the same
coordinates.

:func:`pca_projection` puts data and samples in the data's top principal plane (the coordinates
of a side-by-side scatter with shared axes), and :func:`pca_frechet` sums the comparison up as
one number: the Fréchet distance between the two projected sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .frechet import fid
from .inputs import ArrayLike, as_matrix, check_int, check_same_features, check_seed

__all__ = ["pca_comparison", "pca_frechet", "pca_projection", "plot_pca_comparison"]


def _principal(
    x: np.ndarray, k: int, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    r"""Mean ``(F,)``, top-``k`` eigenvalues ``(k,)`` and unit axes ``(k, F)`` of the sample
    covariance of ``x``, and its total variance; a ``ValueError`` naming ``name`` when values
    near the float64 limit make them overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=0)
        centred = x - mean
        finite = bool(np.isfinite(centred).all())
        if finite:
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            eigen = s**2 / (x.shape[0] - 1)
            finite = bool(np.isfinite(eigen).all() and np.isfinite(eigen.sum()))
    if not finite:
        raise ValueError(
            f"{name}: the mean or variance overflows float64 (largest magnitude "
            f"{float(np.abs(x).max()):g}); rescale the values"
        )
    # Fewer rows than k leaves trailing components with zero variance.
    values = np.zeros(k)
    values[: min(k, eigen.shape[0])] = eigen[:k]
    axes = np.zeros((k, x.shape[1]))
    axes[: min(k, vt.shape[0])] = vt[:k]
    # Fix the sign ambiguity: the largest loading of each axis is positive.
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    axes *= np.where(signs == 0, 1.0, signs)[:, None]
    return mean, values, axes, float(eigen.sum())


def pca_comparison(data: ArrayLike, samples: ArrayLike, k: int = 10) -> dict[str, object]:
    r"""Explained-variance spectra of ``data`` ``(N, F)`` and ``samples`` ``(M, F)``.

    Returns a dict of float64 arrays and floats:

    - ``"data_explained_variance"``, ``"samples_explained_variance"``: the top ``k``
      eigenvalues of each set's own covariance, ``(k,)``;
    - ``"data_explained_variance_ratio"``, ``"samples_explained_variance_ratio"``: the same
      divided by each set's total variance;
    - ``"samples_variance_on_data_components"``: :math:`u_i^\top \hat\Sigma_\text{samples} u_i`
      along the data's axes :math:`u_i`, ``(k,)``;
    - ``"data_total_variance"``, ``"samples_total_variance"``: traces of the covariances;
    - ``"components"``: the data's principal axes ``(k, F)``; ``"mean"``: the data mean
      ``(F,)``; ``"k"``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> data = rng.normal(size=(2000, 3)) * np.array([3.0, 2.0, 1.0])
        >>> out = pca_comparison(data, 0.5 * data, k=2)
        >>> out["data_explained_variance"].round(1).tolist()
        [9.2, 3.8]
        >>> (out["samples_explained_variance"] / out["data_explained_variance"]).round(6).tolist()
        [0.25, 0.25]
    """
    x = as_matrix(data, "data", min_rows=2)
    y = as_matrix(samples, "samples", min_rows=2)
    check_same_features(x, "data", y, "samples")
    k = check_int(k, "k")
    if k > x.shape[1]:
        raise ValueError(f"k: expected at most F = {x.shape[1]} components, got {k}")
    mean, data_values, axes, data_total = _principal(x, k, "data")
    _, sample_values, _, sample_total = _principal(y, k, "samples")
    projected = (y - y.mean(axis=0)) @ axes.T  # (M, k)
    data_ratio = data_values / data_total if data_total > 0 else data_values
    sample_ratio = sample_values / sample_total if sample_total > 0 else sample_values
    return {
        "k": k,
        "data_explained_variance": data_values,
        "samples_explained_variance": sample_values,
        "data_explained_variance_ratio": data_ratio,
        "samples_explained_variance_ratio": sample_ratio,
        "samples_variance_on_data_components": (projected**2).sum(axis=0) / (y.shape[0] - 1),
        "data_total_variance": data_total,
        "samples_total_variance": sample_total,
        "components": axes,
        "mean": mean,
    }


def pca_projection(data: ArrayLike, *others: ArrayLike, k: int = 2) -> list[np.ndarray]:
    r"""``data`` ``(N, F)`` and each of ``others`` ``(M_i, F)`` in the coordinates of the data's
    top ``k`` principal axes :math:`u_1, \dots, u_k`, centred at the data mean :math:`\bar x`:
    :math:`(x - \bar x)^\top [u_1 \dots u_k]`. Returns ``[(N, k), (M_1, k), ...]``; each axis's
    sign is fixed (its largest loading positive), so two calls on the same data agree.

    Example:
        >>> import numpy as np
        >>> data = np.random.default_rng(0).normal(size=(1000, 3)) * np.array([1.0, 5.0, 2.0])
        >>> d2, s2 = pca_projection(data, data[:10], k=2)
        >>> d2.shape, s2.shape, bool(np.allclose(d2[:10], s2))
        ((1000, 2), (10, 2), True)
    """
    x = as_matrix(data, "data", min_rows=2)
    k = check_int(k, "k")
    if k > x.shape[1]:
        raise ValueError(f"k: expected at most F = {x.shape[1]} components, got {k}")
    sets = [as_matrix(o, f"others[{i}]") for i, o in enumerate(others)]
    for i, y in enumerate(sets):
        check_same_features(x, "data", y, f"others[{i}]")
    mean, _, axes, _ = _principal(x, k, "data")
    return [(a - mean) @ axes.T for a in (x, *sets)]


def pca_frechet(data: ArrayLike, samples: ArrayLike, k: int = 2) -> float:
    r"""The Fréchet distance between ``data`` ``(N, F)`` and ``samples`` ``(M, F)`` in the
    data's top-``k`` principal plane: with both sets projected by :func:`pca_projection`
    (means :math:`\mu_d, \mu_s`, unbiased covariances :math:`\Sigma_d, \Sigma_s`, all
    :math:`k`-dimensional),

    .. math::
        d^2 = \lVert \mu_d - \mu_s \rVert^2 + \operatorname{tr}\big(\Sigma_d + \Sigma_s
              - 2 (\Sigma_d \Sigma_s)^{1/2}\big),

    the FID formula of Heusel et al. 2017 in the plane that holds most of the data's variance
    (Pearson 1901). Samples that match the data's mean and covariance in that plane score 0,
    whatever they do along the other axes.

    Example:
        >>> import numpy as np
        >>> data = np.random.default_rng(0).normal(size=(2000, 3)) * np.array([3.0, 2.0, 0.0])
        >>> round(pca_frechet(data, data + np.array([0.0, 0.0, 7.0])), 10)  # off the plane
        0.0
        >>> round(pca_frechet(data, data + np.array([3.0, 4.0, 0.0])), 10)  # a shift in it
        25.0
    """
    x = as_matrix(data, "data", min_rows=2)
    y = as_matrix(samples, "samples", min_rows=2)
    check_same_features(x, "data", y, "samples")
    d, s = pca_projection(x, y, k=k)
    return fid(d, s)


def plot_pca_comparison(
    data: ArrayLike,
    samples: ArrayLike,
    path: str | Path,
    k: int = 10,
    max_points: int = 2000,
    seed: int | None = 0,
) -> Path:
    r"""Write a PNG: the two spectra of :func:`pca_comparison` (log scale) on the left, and both
    sets projected on the data's first two principal axes on the right.

    At most ``max_points`` points of each set are scattered (a random subset drawn with
    ``seed``); the spectra use all of them. Needs ``F >= 2``.

    Example:
        >>> import numpy as np, tempfile, os
        >>> x = np.random.default_rng(0).normal(size=(200, 4))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "pca.png")
        ...     plot_pca_comparison(x, 0.5 * x, path, k=4).stat().st_size > 0
        True
    """
    from matplotlib.figure import Figure  # imported on use; no pyplot state is touched

    x = as_matrix(data, "data", min_rows=2)
    y = as_matrix(samples, "samples", min_rows=2)
    check_same_features(x, "data", y, "samples")
    if x.shape[1] < 2:
        raise ValueError(f"data: expected at least 2 features for the scatter, got {x.shape}")
    max_points = check_int(max_points, "max_points")
    k = min(check_int(k, "k"), x.shape[1])
    stats = pca_comparison(x, y, k=max(k, 2))
    rng = np.random.default_rng(check_seed(seed))

    def subset(a: np.ndarray) -> np.ndarray:
        return a if a.shape[0] <= max_points else a[rng.choice(a.shape[0], max_points, False)]

    axes = stats["components"][:2]
    data_2d = (subset(x) - stats["mean"]) @ axes.T
    samples_2d = (subset(y) - stats["mean"]) @ axes.T

    fig = Figure(figsize=(10, 4.2), constrained_layout=True)
    left, right = fig.subplots(1, 2)
    index = np.arange(1, k + 1)
    # Zero eigenvalues (fewer rows than components) are drawn at a floor on the log axis.
    floor = 1e-12 * max(float(stats["data_explained_variance"][0]), np.finfo(np.float64).tiny)
    for key, style, label in (
        ("data_explained_variance", "o-", "data"),
        ("samples_explained_variance", "s-", "samples"),
        ("samples_variance_on_data_components", "x--", "samples on data axes"),
    ):
        left.semilogy(index, np.maximum(stats[key][:k], floor), style, label=label)
    left.set_xlabel("component")
    left.set_ylabel("explained variance")
    left.set_title("PCA spectra")
    left.legend()
    right.scatter(data_2d[:, 0], data_2d[:, 1], s=4, alpha=0.5, label="data")
    right.scatter(samples_2d[:, 0], samples_2d[:, 1], s=4, alpha=0.5, label="samples")
    right.set_xlabel("PC 1 (data)")
    right.set_ylabel("PC 2 (data)")
    right.set_title("projection on the data's first two axes")
    right.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path

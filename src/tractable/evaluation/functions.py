r"""The metric computations of :mod:`tractable.evaluation.samples` (which says which metric
applies to which data): one function per name in :data:`FUNCTIONS`, each taking the shared
:class:`~tractable.evaluation.state.Comparison` (samples, reference and floor splits, features)
and returning a JSON-ready dict, or a string that says why the metric was skipped; and the
target densities of ``kl``, the exact mixture density of a toy or a Gaussian KDE of the
reference split.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import metrics as tm
from ..data import toy_modes
from .state import Comparison

MIXTURE_STD = {"8gaussians": 0.5 / 1.414, "grid25": 0.05}


def mixture_log_density(name: str, std: float):  # noqa: ANN202
    centres = torch.as_tensor(toy_modes(name), dtype=torch.float64)
    const = -math.log(2 * math.pi * std**2) - math.log(centres.shape[0])

    def log_p(x: Tensor) -> Tensor:
        d2 = torch.cdist(x.double(), centres, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        return torch.logsumexp(-0.5 * d2 / std**2, dim=1) + const

    return log_p


KDE_FACTORS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0)


def kde_logsumexp(points: Tensor, data: Tensor, h: Tensor, chunk: int = 1024) -> Tensor:
    r"""Exact log of the Gaussian KDE of ``data`` ``(n, 2)`` with bandwidths ``h`` at
    ``points`` ``(G, 2)``."""
    n, d = data.shape
    const = -math.log(n) - 0.5 * d * math.log(2 * math.pi) - float(torch.log(h).sum())
    scaled = data / h
    out = [
        torch.logsumexp(-0.5 * torch.cdist(block / h, scaled) ** 2, dim=1) + const
        for block in points.split(chunk)
    ]
    return torch.cat(out)


def kde(ref: Tensor, held_out: Tensor, seed: int) -> tuple[Tensor, float]:
    r"""Bandwidths ``(2,)``: Scott's rule :math:`\sigma_j n^{-1/6}` times the factor in
    ``KDE_FACTORS`` with the highest mean log-density of (up to 1,000 of) ``held_out``
    (likelihood cross-validation). Returns the bandwidths and the factor."""
    scott = ref.std(dim=0) * ref.shape[0] ** (-1.0 / 6.0)
    g = torch.Generator().manual_seed(seed)
    check = held_out[torch.randperm(held_out.shape[0], generator=g)[:1000]]
    scores = [float(kde_logsumexp(check, ref, f * scott).mean()) for f in KDE_FACTORS]
    best = KDE_FACTORS[int(np.argmax(scores))]
    return best * scott, best


def kde_grid_density(data: Tensor, h: Tensor, bounds: list[tuple[float, float]], res: int):  # noqa: ANN202
    r"""The log KDE on the cell centres of ``grid_divergences``'s grid, by the separable sum
    :math:`\sum_i k(g_a - x_{i1}) k(g_b - x_{i2}) = (A B^\top)_{ab}` (one matrix product);
    cells where that underflows are recomputed exactly. Returns a callable for
    ``grid_divergences`` that looks points up on the grid (and evaluates any other point
    exactly)."""
    centres = [
        lo + (torch.arange(res, dtype=torch.float64) + 0.5) * (hi - lo) / res for lo, hi in bounds
    ]
    a = -0.5 * ((centres[0][:, None] - data[None, :, 0]) / h[0]) ** 2  # (R, n)
    b = -0.5 * ((centres[1][:, None] - data[None, :, 1]) / h[1]) ** 2
    ma, mb = a.max(dim=1).values, b.max(dim=1).values
    s = torch.exp(a - ma[:, None]) @ torch.exp(b - mb[:, None]).T  # (R, R)
    n = data.shape[0]
    const = -math.log(n) - math.log(2 * math.pi) - float(torch.log(h).sum())
    grid = torch.log(s) + ma[:, None] + mb[None, :] + const
    low = s < 1e-200
    if bool(low.any()):
        i, j = torch.nonzero(low, as_tuple=True)
        grid[i, j] = kde_logsumexp(torch.stack([centres[0][i], centres[1][j]], 1), data, h)
    steps = torch.tensor([(hi - lo) / res for lo, hi in bounds], dtype=torch.float64)
    origin = torch.tensor([lo for lo, _ in bounds], dtype=torch.float64)

    def log_p(points: Tensor) -> Tensor:
        p = points.double()
        index = torch.round((p - origin) / steps - 0.5).long().clamp(0, res - 1)
        on_grid = ((origin + (index + 0.5) * steps - p).abs() <= 1e-9 * (1 + p.abs())).all(1)
        out = torch.empty(p.shape[0], dtype=torch.float64)
        out[on_grid] = grid[index[on_grid, 0], index[on_grid, 1]]
        if not bool(on_grid.all()):
            out[~on_grid] = kde_logsumexp(p[~on_grid], data, h)
        return out

    return log_p


def fid(e: Comparison) -> dict[str, Any]:
    f = e.feats
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = {"value": tm.fid(f["samples"], f["ref"]), "floor": tm.fid(f["floor"], f["ref"])}
    if caught:
        e.notes.append(
            "fid: a feature covariance is (near) singular, so the matrix square root may be "
            f"inaccurate ({f['ref'].shape[1]} features, {f['ref'].shape[0]} reference rows)"
        )
    return out


def kid(e: Comparison) -> dict[str, Any]:
    f = e.feats
    size = min(1000, *(v.shape[0] for k, v in f.items() if not k.endswith("probs")))
    out = tm.kid(f["samples"], f["ref"], subsets=50, subset_size=size, seed=e.seed)
    floor = tm.kid(f["floor"], f["ref"], subsets=50, subset_size=size, seed=e.seed)
    return {"mean": out.mean, "std": out.std, "subset_size": size, "floor": floor.mean}


def prd(e: Comparison) -> dict[str, Any]:
    f = e.feats
    out = tm.prdc(f["ref"], f["samples"], k=5)
    floor = tm.prdc(f["ref"], f["floor"], k=5)
    keys = ("precision", "recall", "density", "coverage")
    return {
        **{k: getattr(out, k) for k in keys},
        "k": 5,
        "floor": {k: getattr(floor, k) for k in keys},
    }


def inception_score(e: Comparison) -> dict[str, Any] | str:
    if "samples_probs" not in e.feats:
        return "is: skipped, the Inception Score needs a classifier (image data, --extractor auto)"
    splits = 10
    out = tm.inception_score(e.feats["samples_probs"], splits=splits)
    data = tm.inception_score(e.feats["ref_probs"], splits=min(splits, e.ref.shape[0]))
    return {"mean": out.mean, "std": out.std, "splits": splits, "data": data.mean}


def kl_uniform(fractions: np.ndarray) -> float:
    r"""KL divergence (nats) of a class histogram :math:`q` ``(K,)`` from the uniform one,

    .. math:: \mathrm{KL}(q \,\|\, u) = \sum_k q_k \log(K q_k) = \log K - H(q),

    0 for a balanced histogram and :math:`\log K` when every sample is of one class.

    Example:
        >>> round(kl_uniform(np.array([1.0, 0, 0, 0])), 6), kl_uniform(np.full(4, 0.25))
        (1.386294, 0.0)
    """
    q = np.asarray(fractions, dtype=np.float64)
    on = q > 0
    return max(float(np.sum(q[on] * np.log(q.shape[0] * q[on]))), 0.0)


def modes(e: Comparison) -> dict[str, Any] | str:
    name = e.ds.name
    if not e.image and name in MIXTURE_STD and tuple(e.ds.shape) == (2,):
        std = float(e.ds.options.get("std", MIXTURE_STD[name]))
        modes = toy_modes(name)
        out = tm.mode_coverage(e.pixels(e.samples), modes, std=std)
        data = tm.mode_coverage(e.pixels(e.floor), modes, std=std)
        return {
            "modes_captured": out.modes_captured,
            "n_modes": out.n_modes,
            "fraction_high_quality": out.fraction_high_quality,
            "kl_assignment": out.kl_assignment,
            "counts": out.counts.tolist(),
            "std": std,
            "data_fraction_high_quality": data.fraction_high_quality,
        }
    if e.image and e.extractor is not None and e.extractor.name.startswith("classifier"):
        q = np.bincount(e.feats["samples_probs"].argmax(1), minlength=e.feats["ref_probs"].shape[1])
        r = np.bincount(e.feats["ref_probs"].argmax(1), minlength=q.shape[0])
        f = np.bincount(e.feats["floor_probs"].argmax(1), minlength=q.shape[0])
        q, r, f = q / q.sum(), r / r.sum(), f / f.sum()
        support = q > 0
        kl = float(np.sum(q[support] * np.log(q[support] / np.maximum(r[support], 1e-12))))
        return {
            "classes_covered": int(support.sum()),
            "n_classes": int(q.shape[0]),
            "kl_class_histogram": max(kl, 0.0),
            "kl_uniform": kl_uniform(q),
            "data_kl_uniform": kl_uniform(f),
            "data_classes_covered": int((f > 0).sum()),
            "class_fractions": q.tolist(),
        }
    if e.image:
        return "modes: skipped, class coverage of images needs the classifier extractor"
    return (
        f"modes: skipped, {name!r} has no point modes (only 8gaussians and grid25 are mixtures "
        "with known centres)"
    )


def support_size(x: np.ndarray, threshold: float, seed: int, draws: int = 200) -> dict[str, Any]:
    r"""The birthday-paradox support size of the pool ``x`` at ``threshold``
    (:func:`tractable.metrics.birthday_support`) as JSON."""
    out = tm.birthday_support(x, threshold=threshold, draws=draws, seed=seed)
    return {
        "estimate": out.estimate,
        "batch_size": out.batch_size,
        "lower_bound": out.lower_bound,
        "duplicate_rate": out.duplicate_rate,
        "draws": out.draws,
        "pool": out.n_samples,
    }


def birthday(e: Comparison) -> dict[str, Any]:
    r"""Near-duplicates among ``s`` samples (``s`` = the smaller of the sample count, the
    reference split's size and 2,000), raw values: a pair is a near-duplicate when it is as
    close as the closest pair of ``s`` reference examples (the data's own closest pair).
    ``support`` is the birthday-paradox support size of (up to 2,000) samples at that threshold
    (the smallest batch size with a near-duplicate in at least half of 200 random orderings,
    squared; Arora and Zhang 2017), ``support_floor`` the same for ``s`` held-out examples of
    the other split."""
    s = min(e.samples.shape[0], e.ref.shape[0], 2000)
    rng = np.random.default_rng(e.seed)
    data = e.pixels(e.ref)[rng.choice(e.ref.shape[0], s, replace=False)]
    threshold = float(tm.birthday(data, top_k=1).distances[0])
    samples = e.pixels(e.samples[:s])
    out = tm.birthday(samples, threshold=threshold, top_k=10)
    floor = e.pixels(e.floor)
    floor = floor[rng.choice(floor.shape[0], min(s, floor.shape[0]), replace=False)]
    result: dict[str, Any] = {
        "batch": s,
        "threshold": threshold,
        "n_duplicates": out.n_duplicates,
        "closest_distance": float(out.distances[0]),
        "support_estimate": out.support_estimate,
        # every sample (up to 2,000) in the pool: larger batches, the same threshold
        "support": support_size(e.pixels(e.samples[:2000]), threshold, e.seed),
        "support_floor": support_size(floor, threshold, e.seed),
    }
    if e.image_shape is not None and e.out_dir is not None:
        path = e.out_dir / "birthday_pairs.png"
        tm.plot_birthday_pairs(samples, out, e.image_shape, path)
        result["plot"] = str(path)
    return result


def pca(e: Comparison) -> dict[str, Any] | str:
    data, samples = e.pixels(e.ref), e.pixels(e.samples)
    if data.shape[1] < 2:
        return "pca: skipped, the data have one dimension"
    k = min(10, data.shape[1])
    out = tm.pca_comparison(data, samples, k=k)
    dv = out["data_explained_variance"]
    result = {
        "k": k,
        "data_explained_variance_ratio": out["data_explained_variance_ratio"].tolist(),
        "samples_explained_variance_ratio": out["samples_explained_variance_ratio"].tolist(),
        "variance_ratio_on_data_components": (
            out["samples_variance_on_data_components"] / np.where(dv > 0, dv, np.nan)
        ).tolist(),
        "total_variance_ratio": out["samples_total_variance"] / out["data_total_variance"],
    }
    if e.out_dir is not None:
        path = tm.plot_pca_comparison(data, samples, e.out_dir / "pca.png", k=k, seed=e.seed)
        result["plot"] = str(path)
    result["plane"] = pca_plane(e)
    return result


PLANE_FILE = "pca_plane.json"
PLANE_FORMAT = "tractable-pca-plane/1"
PLANE_POINTS = 1000


def pca_plane(e: Comparison) -> dict[str, Any]:
    r"""The data's top-2 principal plane, in the extractor's feature space for images (pixels
    when no extractor is set) and in raw coordinates otherwise: the Fréchet distance of the
    samples to the reference split there (:func:`tractable.metrics.pca_frechet`), its floor
    (the other held-out split), and, with ``out_dir``, up to 1,000 projected points of each
    set in :data:`PLANE_FILE` for the comparison report's side-by-side scatter."""
    if e.image and e.extractor is not None:
        space, f = e.extractor.name, e.feats
        ref, samples, floor = f["ref"], f["samples"], f["floor"]
    else:
        space = "raw"
        ref, samples, floor = e.pixels(e.ref), e.pixels(e.samples), e.pixels(e.floor)
    d2, s2 = tm.pca_projection(ref, samples, k=2)
    total = float(np.var(ref, axis=0, ddof=1).sum())
    out = {
        "space": space,
        "frechet": tm.pca_frechet(ref, samples),
        "floor": tm.pca_frechet(ref, floor),
        "explained_variance_ratio": (np.var(d2, axis=0, ddof=1) / total).tolist(),
    }
    if e.out_dir is not None:
        from ..train import atomic_write_json

        rng = np.random.default_rng(e.seed)

        def subset(a: np.ndarray) -> list:
            keep = rng.choice(a.shape[0], min(PLANE_POINTS, a.shape[0]), replace=False)
            return np.round(a[np.sort(keep)], 5).tolist()

        atomic_write_json(
            e.out_dir / PLANE_FILE,
            {"format": PLANE_FORMAT, "space": space, "reference": e.split,
             "explained_variance_ratio": out["explained_variance_ratio"],
             "data": subset(d2), "samples": subset(s2)},
        )  # fmt: skip
        out["file"] = PLANE_FILE
    return out


PLURALISTIC_PER_CLASS = 50


def pluralistic(e: Comparison) -> dict[str, Any] | str:
    r"""Pluralistic diversity of a class-conditional model
    (:func:`tractable.metrics.pluralistic_diversity`): for each class, the mean distance from
    each of its ``m`` samples to the nearest other sample of that class, averaged over classes,
    in the extractor's feature space for images (pixels without one) and raw coordinates
    otherwise. ``m`` is the smaller of 50, the fewest samples of a class and the fewest
    reference examples of a class; ``data`` is the same for ``m`` reference examples per class,
    what a model as diverse as the data would score."""
    if e.labels is None:
        return (
            "pluralistic: skipped, defined for class-conditional runs only (the samples of "
            "each class); these samples have no classes"
        )
    ref_labels = e.ds.labels(e.split)
    if e.image and e.extractor is not None:
        space, samples, ref = e.extractor.name, e.feats["samples"], e.feats["ref"]
    else:
        space, samples, ref = "raw", e.pixels(e.samples), e.pixels(e.ref)
    labels = e.labels.numpy()
    classes = np.unique(labels)
    m = min(PLURALISTIC_PER_CLASS, *(int((labels == c).sum()) for c in classes))
    if ref_labels is not None:
        ref_labels = ref_labels.numpy()
        m = min(m, *(int((ref_labels == c).sum()) for c in classes))
    if m < 2:
        return f"pluralistic: skipped, a class has fewer than 2 samples or examples (m = {m})"
    per_class = [samples[labels == c][:m] for c in classes]
    values = [tm.pluralistic_diversity([g]) for g in per_class]
    out = {
        "value": tm.pluralistic_diversity(per_class),
        "per_class": {str(int(c)): v for c, v in zip(classes, values, strict=True)},
        "m": m,
        "classes": len(classes),
        "space": space,
        "data": None,
    }
    if ref_labels is not None:
        rng = np.random.default_rng(e.seed)
        groups = []
        for c in classes:
            rows = np.flatnonzero(ref_labels == c)
            groups.append(ref[rng.choice(rows, m, replace=False)])
        out["data"] = tm.pluralistic_diversity(groups)
    return out


def kl(e: Comparison) -> dict[str, Any] | str:
    if e.image or tuple(e.ds.shape) != (2,) or e.ds.kind != "continuous":
        return "kl: skipped, grid divergences need 2D continuous data"
    ref = e.ref.double()
    name = e.ds.name
    h = None
    if name in MIXTURE_STD:
        width = float(e.ds.options.get("std", MIXTURE_STD[name]))
        target = "exact mixture density"
    else:
        h, factor = kde(ref, e.floor.double(), e.seed)
        width = float(h.min())
        target = (
            f"Gaussian KDE of the {e.split} split, bandwidth {[round(float(v), 4) for v in h]} "
            f"({factor} x Scott's, chosen by likelihood on the {e.other} split)"
        )
    lo, hi = ref.min(dim=0).values, ref.max(dim=0).values
    pad = 0.1 * (hi - lo) + 3 * width
    bounds = [(float(lo[j] - pad[j]), float(hi[j] + pad[j])) for j in range(2)]
    span = max(b - a for a, b in bounds)
    resolution = int(min(800, max(300, math.ceil(3 * span / width))))
    if h is None:
        log_data = mixture_log_density(name, width)
    else:
        log_data = kde_grid_density(ref, h, bounds, resolution)
    log_model, model_density = e.log_likelihood, "the model's own density"
    if log_model is None:
        # no likelihood (a GAN): a KDE of half the samples, its bandwidth chosen by likelihood
        # on the other half; read as a divergence to the smoothed samples, not to the model
        samples = e.samples.double()
        half = samples.shape[0] // 2
        hs, factor = kde(samples[:half], samples[half:], e.seed)
        log_model = kde_grid_density(samples[:half], hs, bounds, resolution)
        model_density = (
            f"Gaussian KDE of {half} samples, bandwidth {[round(float(v), 4) for v in hs]} "
            f"({factor} x Scott's, chosen by likelihood on {samples.shape[0] - half} others)"
        )
    out = tm.grid_divergences(log_data, log_model, bounds, resolution=resolution)
    return {
        "kl_data_model": out.kl_pq,
        "kl_model_data": out.kl_qp,
        "js": out.js,
        "mass_data": out.mass_p,
        "mass_model": out.mass_q,
        "target": target,
        "model_density": model_density,
        "bounds": bounds,
        "resolution": resolution,
    }


def wasserstein(e: Comparison) -> dict[str, Any] | str:
    if e.image:
        return "wasserstein: skipped for images (pixel-space transport says little); use fid/kid"
    ref, samples, floor = e.pixels(e.ref), e.pixels(e.samples), e.pixels(e.floor)
    m = 2000
    return {
        "w1": tm.wasserstein(samples, ref, max_samples=m, seed=e.seed),
        "floor": tm.wasserstein(floor, ref, max_samples=m, seed=e.seed),
        "max_samples": m,
        "method": "exact",
    }


def _nearest(points: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    ref = torch.as_tensor(reference)
    out = [
        torch.cdist(torch.as_tensor(block), ref).min(dim=1).values
        for block in np.array_split(points, max(1, points.shape[0] // chunk))
    ]
    return torch.cat(out).numpy()


def memorisation(e: Comparison, quantile: float = 0.01) -> dict[str, Any]:
    r"""Copies of the training data: each sample's distance to its nearest training example
    (raw values, pixels for images) against the same distance for held-out examples of the
    reference split. ``fraction_closer`` is the fraction of samples nearer to a training
    example than the ``quantile`` (1%) of held-out examples are: about ``quantile`` for a
    model that generalises as the data do, far more for one that reproduces its training set
    (a nearest-neighbour test in the spirit of Theis et al. 2016 and Webster et al. 2019)."""
    train = e.pixels(e.ds.train)
    held = _nearest(e.pixels(e.ref), train)
    samples = _nearest(e.pixels(e.samples), train)
    threshold = float(np.quantile(held, quantile))
    return {
        "fraction_closer": float((samples < threshold).mean()),
        "quantile": quantile,
        "threshold": threshold,
        "median_sample_distance": float(np.median(samples)),
        "median_heldout_distance": float(np.median(held)),
    }


FUNCTIONS = {
    "fid": fid,
    "kid": kid,
    "prd": prd,
    "is": inception_score,
    "modes": modes,
    "birthday": birthday,
    "pca": pca,
    "kl": kl,
    "wasserstein": wasserstein,
    "memorisation": memorisation,
    "pluralistic": pluralistic,
}

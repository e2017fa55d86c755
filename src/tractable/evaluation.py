r"""Sample-based metrics of a trained run (``tractable eval RUN_DIR --metrics ...``).

The run's model draws ``n`` samples in the data's raw space; they are compared with a held-out
split (``test`` by default) by the pure functions of :mod:`tractable.metrics`, and the results
go under ``"sample_metrics"`` in the run's ``metrics.json``, with the feature extractor used.
Every comparison also reports its *floor*: the same metric between the other held-out split
and the reference, i.e. the value a perfect model would get from finite-sample noise alone.

Which metric applies to which data:

* ``fid``, ``kid``, ``prd`` (precision, recall, density, coverage): images in the feature
  space of an extractor (:mod:`tractable.features`); other data in their raw coordinates.
* ``is``: images, with a classifier extractor (or InceptionV3).
* ``modes``: the mixture toys ``8gaussians`` and ``grid25`` (known centres and widths), and
  images with a classifier (predicted-class histogram). Other data are skipped with a note.
* ``birthday``: any data, in raw (pixel) space, at the threshold of the closest pair of an
  equally large batch of real data (Arora and Zhang 2017).
* ``pca``: any data with at least 2 dimensions, in raw (pixel) space.
* ``kl``: 2D continuous data. The target density is the exact mixture density for
  ``8gaussians`` and ``grid25``; for other data only samples exist, so the target is a Gaussian
  kernel density estimate of the reference split (diagonal bandwidth by Scott's rule), which is
  wider than the true density: read those KLs as a comparison between models under the same
  smoothing, not as a divergence to the truth.
* ``wasserstein``: non-image data; exact :math:`W_1` (POT's ``emd2``) on subsamples of 2,000.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import features as tfeatures
from . import metrics as tm
from . import runs
from .data import toy_modes
from .data.images import IMAGES
from .train import atomic_write_json, read_json

__all__ = ["EXTRACTORS", "METRICS", "evaluate_samples", "parse_metrics", "summary_lines"]

METRICS = ("fid", "kid", "prd", "is", "modes", "birthday", "pca", "kl", "wasserstein")
EXTRACTORS = ("auto", "classifier", "inception", "raw")
_MIXTURE_STD = {"8gaussians": 0.5 / 1.414, "grid25": 0.05}


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    r"""Metric names from ``"fid,kid"`` (or a list); ``"all"`` means every metric.

    Example:
        >>> parse_metrics("kl, modes,kl")
        ['kl', 'modes']
        >>> parse_metrics("fid,foo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: metrics: unknown metric(s) ['foo']; valid: fid, kid, prd, is, modes, ...
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [str(m).strip().lower() for m in items if str(m).strip()]
    if not names:
        raise ValueError(f"metrics: expected a comma-separated list of {', '.join(METRICS)}")
    if "all" in names:
        return list(METRICS)
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"metrics: unknown metric(s) {unknown}; valid: {', '.join(METRICS)}, all")
    return list(dict.fromkeys(names))


def _mixture_log_density(name: str, std: float):  # noqa: ANN202
    centres = torch.as_tensor(toy_modes(name), dtype=torch.float64)
    const = -math.log(2 * math.pi * std**2) - math.log(centres.shape[0])

    def log_p(x: Tensor) -> Tensor:
        d2 = torch.cdist(x.double(), centres, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        return torch.logsumexp(-0.5 * d2 / std**2, dim=1) + const

    return log_p


_KDE_FACTORS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0)


def _kde_logsumexp(points: Tensor, data: Tensor, h: Tensor, chunk: int = 1024) -> Tensor:
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


def _kde(ref: Tensor, held_out: Tensor, seed: int) -> tuple[Tensor, float]:
    r"""Bandwidths ``(2,)``: Scott's rule :math:`\sigma_j n^{-1/6}` times the factor in
    ``_KDE_FACTORS`` with the highest mean log-density of (up to 1,000 of) ``held_out``
    (likelihood cross-validation). Returns the bandwidths and the factor."""
    scott = ref.std(dim=0) * ref.shape[0] ** (-1.0 / 6.0)
    g = torch.Generator().manual_seed(seed)
    check = held_out[torch.randperm(held_out.shape[0], generator=g)[:1000]]
    scores = [float(_kde_logsumexp(check, ref, f * scott).mean()) for f in _KDE_FACTORS]
    best = _KDE_FACTORS[int(np.argmax(scores))]
    return best * scott, best


def _kde_grid_density(data: Tensor, h: Tensor, bounds: list[tuple[float, float]], res: int):  # noqa: ANN202
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
        grid[i, j] = _kde_logsumexp(torch.stack([centres[0][i], centres[1][j]], 1), data, h)
    steps = torch.tensor([(hi - lo) / res for lo, hi in bounds], dtype=torch.float64)
    origin = torch.tensor([lo for lo, _ in bounds], dtype=torch.float64)

    def log_p(points: Tensor) -> Tensor:
        p = points.double()
        index = torch.round((p - origin) / steps - 0.5).long().clamp(0, res - 1)
        on_grid = ((origin + (index + 0.5) * steps - p).abs() <= 1e-9 * (1 + p.abs())).all(1)
        out = torch.empty(p.shape[0], dtype=torch.float64)
        out[on_grid] = grid[index[on_grid, 0], index[on_grid, 1]]
        if not bool(on_grid.all()):
            out[~on_grid] = _kde_logsumexp(p[~on_grid], data, h)
        return out

    return log_p


class _Eval:
    r"""Everything one evaluation shares: the run, the sample and reference sets, features."""

    def __init__(self, run_dir: Path, n: int | None, split: str, seed: int) -> None:
        self.run_dir = run_dir
        self.config, self.net, self.ds = runs.load_run(run_dir)
        self.split, self.seed = split, seed
        self.other = "val" if split == "test" else "test"
        self.ref = self.ds.split(split)
        self.floor = self.ds.split(self.other)
        self.image = self.ds.name in IMAGES
        self.image_shape = tuple(self.ds.shape) if len(self.ds.shape) == 3 else None
        if self.image and self.image_shape is None:
            from .plots import image_shape_of

            self.image_shape = image_shape_of(self.ds.shape, self.ds.name)
        if n is None:
            n = min(max(self.ref.shape[0], 1000), 10_000)
        self.notes: list[str] = []
        x = runs.draw_samples(self.net, self.ds, self.config, n, seed=seed)
        finite = torch.isfinite(x.reshape(n, -1)).all(dim=1)
        if not bool(finite.all()):
            self.notes.append(f"dropped {int((~finite).sum())} non-finite samples of {n}")
            x = x[finite]
        if x.shape[0] < 10:
            raise ValueError(f"n: only {x.shape[0]} finite samples; need at least 10")
        self.samples = x
        self.extractor: tfeatures.FeatureExtractor | None = None
        self.feats: dict[str, np.ndarray] = {}

    def pixels(self, x: Tensor) -> np.ndarray:
        r"""Raw values ``(N, D)`` (intensities for images) as float64."""
        if self.image:
            x = tfeatures.intensities(x, self.ds)
        return x.reshape(x.shape[0], -1).double().numpy()

    def set_extractor(self, choice: str, root: str | Path | None) -> None:
        if choice not in EXTRACTORS:
            raise ValueError(f"extractor: expected one of {', '.join(EXTRACTORS)}, got {choice!r}")
        if not self.image:
            if choice not in ("auto", "raw"):
                raise ValueError(
                    f"extractor: {choice!r} embeds images; {self.ds.name!r} is not an image "
                    "dataset (its metrics use the raw coordinates: --extractor raw)"
                )
            self.extractor = tfeatures.raw()
        elif choice == "raw":
            self.extractor = tfeatures.raw(self.image_shape)
        elif choice == "inception":
            self.extractor = tfeatures.inception(self.image_shape)
        else:
            self.extractor = tfeatures.load(self.ds.name, root=root)
        ex = self.extractor
        inputs = {"samples": self.samples, "ref": self.ref, "floor": self.floor}
        for key, x in inputs.items():
            values = tfeatures.intensities(x, self.ds) if self.image else x
            self.feats[key] = ex.features(values)
            if ex.net is not None:
                self.feats[f"{key}_probs"] = ex.probs(values)


def _fid(e: _Eval) -> dict[str, Any]:
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


def _kid(e: _Eval) -> dict[str, Any]:
    f = e.feats
    size = min(1000, *(v.shape[0] for k, v in f.items() if not k.endswith("probs")))
    out = tm.kid(f["samples"], f["ref"], subsets=50, subset_size=size, seed=e.seed)
    floor = tm.kid(f["floor"], f["ref"], subsets=50, subset_size=size, seed=e.seed)
    return {"mean": out.mean, "std": out.std, "subset_size": size, "floor": floor.mean}


def _prd(e: _Eval) -> dict[str, Any]:
    f = e.feats
    out = tm.prdc(f["ref"], f["samples"], k=5)
    floor = tm.prdc(f["ref"], f["floor"], k=5)
    keys = ("precision", "recall", "density", "coverage")
    return {
        **{k: getattr(out, k) for k in keys},
        "k": 5,
        "floor": {k: getattr(floor, k) for k in keys},
    }


def _is(e: _Eval) -> dict[str, Any] | str:
    if "samples_probs" not in e.feats:
        return "is: skipped, the Inception Score needs a classifier (image data, --extractor auto)"
    splits = 10
    out = tm.inception_score(e.feats["samples_probs"], splits=splits)
    data = tm.inception_score(e.feats["ref_probs"], splits=min(splits, e.ref.shape[0]))
    return {"mean": out.mean, "std": out.std, "splits": splits, "data": data.mean}


def _modes(e: _Eval) -> dict[str, Any] | str:
    name = e.ds.name
    if not e.image and name in _MIXTURE_STD and tuple(e.ds.shape) == (2,):
        std = float(e.ds.options.get("std", _MIXTURE_STD[name]))
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
        q, r = q / q.sum(), r / r.sum()
        support = q > 0
        kl = float(np.sum(q[support] * np.log(q[support] / np.maximum(r[support], 1e-12))))
        return {
            "classes_covered": int(support.sum()),
            "n_classes": int(q.shape[0]),
            "kl_class_histogram": max(kl, 0.0),
            "class_fractions": q.tolist(),
        }
    if e.image:
        return "modes: skipped, class coverage of images needs the classifier extractor"
    return (
        f"modes: skipped, {name!r} has no point modes (only 8gaussians and grid25 are mixtures "
        "with known centres)"
    )


def _birthday(e: _Eval) -> dict[str, Any]:
    s = min(e.samples.shape[0], e.ref.shape[0], 2000)
    rng = np.random.default_rng(e.seed)
    data = e.pixels(e.ref)[rng.choice(e.ref.shape[0], s, replace=False)]
    threshold = float(tm.birthday(data, top_k=1).distances[0])
    samples = e.pixels(e.samples[:s])
    out = tm.birthday(samples, threshold=threshold, top_k=10)
    result: dict[str, Any] = {
        "batch": s,
        "threshold": threshold,
        "n_duplicates": out.n_duplicates,
        "closest_distance": float(out.distances[0]),
        "support_estimate": out.support_estimate,
    }
    if e.image_shape is not None:
        path = e.run_dir / "birthday_pairs.png"
        tm.plot_birthday_pairs(samples, out, e.image_shape, path)
        result["plot"] = str(path)
    return result


def _pca(e: _Eval) -> dict[str, Any] | str:
    data, samples = e.pixels(e.ref), e.pixels(e.samples)
    if data.shape[1] < 2:
        return "pca: skipped, the data have one dimension"
    k = min(10, data.shape[1])
    out = tm.pca_comparison(data, samples, k=k)
    path = tm.plot_pca_comparison(data, samples, e.run_dir / "pca.png", k=k, seed=e.seed)
    dv = out["data_explained_variance"]
    return {
        "k": k,
        "data_explained_variance_ratio": out["data_explained_variance_ratio"].tolist(),
        "samples_explained_variance_ratio": out["samples_explained_variance_ratio"].tolist(),
        "variance_ratio_on_data_components": (
            out["samples_variance_on_data_components"] / np.where(dv > 0, dv, np.nan)
        ).tolist(),
        "total_variance_ratio": out["samples_total_variance"] / out["data_total_variance"],
        "plot": str(path),
    }


def _kl(e: _Eval) -> dict[str, Any] | str:
    if e.image or tuple(e.ds.shape) != (2,) or e.ds.kind != "continuous":
        return "kl: skipped, grid divergences need 2D continuous data"
    ref = e.ref.double()
    name = e.ds.name
    h = None
    if name in _MIXTURE_STD:
        width = float(e.ds.options.get("std", _MIXTURE_STD[name]))
        target = "exact mixture density"
    else:
        h, factor = _kde(ref, e.floor.double(), e.seed)
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
        log_data = _mixture_log_density(name, width)
    else:
        log_data = _kde_grid_density(ref, h, bounds, resolution)

    def log_model(points: Tensor) -> Tensor:
        return runs.log_likelihoods(e.net, e.ds, e.config, points)[0]

    out = tm.grid_divergences(log_data, log_model, bounds, resolution=resolution)
    return {
        "kl_data_model": out.kl_pq,
        "kl_model_data": out.kl_qp,
        "js": out.js,
        "mass_data": out.mass_p,
        "mass_model": out.mass_q,
        "target": target,
        "bounds": bounds,
        "resolution": resolution,
    }


def _wasserstein(e: _Eval) -> dict[str, Any] | str:
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


_FUNCTIONS = {
    "fid": _fid,
    "kid": _kid,
    "prd": _prd,
    "is": _is,
    "modes": _modes,
    "birthday": _birthday,
    "pca": _pca,
    "kl": _kl,
    "wasserstein": _wasserstein,
}


def evaluate_samples(
    run_dir: str | Path,
    metrics: str | Sequence[str],
    *,
    n: int | None = None,
    split: str = "test",
    extractor: str = "auto",
    seed: int = 0,
    features_root: str | Path | None = None,
    write: bool = True,
) -> dict[str, Any]:
    r"""Compute sample-based ``metrics`` of the run in ``run_dir`` against ``split``.

    Args:
        metrics: names from :data:`METRICS` (a comma-separated string or a list; ``"all"``).
        n: samples to draw (default: the reference split's size, at least 1,000, at most
            10,000).
        split: the reference split, ``"test"`` or ``"val"``; the other is the floor.
        extractor: for images, ``"auto"``/``"classifier"`` (the cached classifier of
            :mod:`tractable.features`), ``"inception"`` or ``"raw"`` (pixels).
        write: merge the results into ``metrics.json`` under ``"sample_metrics"``.

    Returns:
        ``{"n_samples", "reference", "n_reference", "floor_split", "seed", "extractor",
        <metric>: {...}, "notes": [...]}``.
    """
    names = parse_metrics(metrics)
    if split not in ("test", "val"):
        raise ValueError(f"split: expected 'test' or 'val' as the reference, got {split!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 10):
        raise ValueError(f"n: expected an int >= 10, got {n!r}")
    run_dir = Path(run_dir)
    e = _Eval(run_dir, n, split, seed)
    if any(m in ("fid", "kid", "prd", "is") for m in names) or ("modes" in names and e.image):
        e.set_extractor(extractor, features_root)
    result: dict[str, Any] = {
        "n_samples": int(e.samples.shape[0]),
        "reference": split,
        "n_reference": int(e.ref.shape[0]),
        "floor_split": e.other,
        "seed": seed,
    }
    if e.extractor is not None:
        result["extractor"] = e.extractor.info
    for name in names:
        with torch.no_grad():
            value = _FUNCTIONS[name](e)
        if isinstance(value, str):
            e.notes.append(value)
            continue
        if name in ("fid", "kid", "prd", "is"):
            value["extractor"] = e.extractor.name
        value.update(n_samples=result["n_samples"], reference=split)
        result[name] = value
    result["notes"] = e.notes
    if write:
        path = run_dir / "metrics.json"
        stored = read_json(path) if path.is_file() else {}
        merged = dict(stored.get("sample_metrics", {}))
        merged.update(result)
        stored["sample_metrics"] = merged
        atomic_write_json(path, stored)
    return result


def _g(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summary_lines(result: dict[str, Any]) -> list[str]:
    r"""A few human-readable lines of an :func:`evaluate_samples` result."""
    lines = [
        f"{result['n_samples']} samples vs the {result['reference']} split "
        f"({result['n_reference']}); floor: {result['floor_split']} vs {result['reference']}"
    ]
    if "extractor" in result:
        ex = result["extractor"]
        acc = ex.get("test_accuracy")
        lines.append(
            f"extractor: {ex.get('name')}" + (f" (test accuracy {acc:.4f})" if acc else "")
        )
    r = result
    if "fid" in r:
        lines.append(f"FID: {_g(r['fid']['value'])} (floor {_g(r['fid']['floor'])})")
    if "kid" in r:
        k = r["kid"]
        lines.append(f"KID: {_g(k['mean'])} ± {_g(k['std'])} (floor {_g(k['floor'])})")
    if "prd" in r:
        p = r["prd"]
        lines.append(
            "precision {:.4f}, recall {:.4f}, density {:.4f}, coverage {:.4f}".format(
                p["precision"], p["recall"], p["density"], p["coverage"]
            )
        )
    if "is" in r:
        lines.append(
            f"IS: {_g(r['is']['mean'])} ± {_g(r['is']['std'])} (data {_g(r['is']['data'])})"
        )
    if "modes" in r:
        m = r["modes"]
        if "modes_captured" in m:
            lines.append(
                f"modes: {m['modes_captured']}/{m['n_modes']} captured, high-quality "
                f"{m['fraction_high_quality']:.4f} (data {m['data_fraction_high_quality']:.4f}), "
                f"KL(assignments || uniform) {m['kl_assignment']:.4f}"
            )
        else:
            lines.append(
                f"classes: {m['classes_covered']}/{m['n_classes']} predicted, KL(class "
                f"histogram || data's) {m['kl_class_histogram']:.4f}"
            )
    if "birthday" in r:
        b = r["birthday"]
        lines.append(
            f"birthday: {b['n_duplicates']} sample pairs within {b['threshold']:.4g} (the "
            f"data's closest pair) in a batch of {b['batch']}; closest sample pair "
            f"{b['closest_distance']:.4g}"
        )
    if "pca" in r:
        lines.append(
            f"PCA: total variance ratio samples/data {r['pca']['total_variance_ratio']:.4f}"
        )
    if "kl" in r:
        k = r["kl"]
        lines.append(
            f"KL(data || model) {k['kl_data_model']:.4f}, KL(model || data) "
            f"{k['kl_model_data']:.4f}, JS {k['js']:.4f} nats (target: {k['target']})"
        )
    if "wasserstein" in r:
        w = r["wasserstein"]
        lines.append(f"W1: {w['w1']:.4f} (floor {w['floor']:.4f})")
    lines += [f"note: {note}" for note in r.get("notes", [])]
    return lines

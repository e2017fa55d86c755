r"""Sample-based metrics (``tractable eval RUN_DIR --metrics ...``).

Samples in the data's raw space (any family's: :meth:`tractable.runs.Run.evaluate` draws them)
are compared with a held-out split (``test`` by default) by the pure functions of
:mod:`tractable.metrics`; a run stores the results under ``"sample_metrics"`` in its
``metrics.json``, with the feature extractor used.
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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import Dataset
from .functions import FUNCTIONS
from .state import EXTRACTORS, Comparison

__all__ = ["EXTRACTORS", "METRICS", "evaluate_samples", "parse_metrics", "summary_lines"]

METRICS = (
    "fid", "kid", "prd", "is", "modes", "birthday", "pca", "kl", "wasserstein", "memorisation"
)  # fmt: skip


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


def evaluate_samples(
    samples: Tensor,
    ds: Dataset,
    metrics: str | Sequence[str],
    *,
    split: str = "test",
    extractor: str = "auto",
    seed: int = 0,
    features_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    log_likelihood: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Any]:
    r"""Compare ``samples`` ``(n, *ds.shape)`` (raw data space) with ``ds``'s ``split``.

    Args:
        metrics: names from :data:`METRICS` (a comma-separated string or a list; ``"all"``).
        split: the reference split, ``"test"`` or ``"val"``; the other is the floor.
        extractor: for images, ``"auto"``/``"classifier"`` (the cached classifier of
            :mod:`tractable.evaluation.features`), ``"inception"`` or ``"raw"`` (pixels).
        out_dir: folder for the figures of ``birthday`` and ``pca`` (none without it).
        log_likelihood: the model's data-space log-likelihood, for ``kl`` (skipped without).

    Returns:
        ``{"n_samples", "reference", "n_reference", "floor_split", "seed", "extractor",
        <metric>: {...}, "notes": [...]}``.
    """
    names = parse_metrics(metrics)
    if split not in ("test", "val"):
        raise ValueError(f"split: expected 'test' or 'val' as the reference, got {split!r}")
    e = Comparison(
        samples, ds, split, seed, None if out_dir is None else Path(out_dir), log_likelihood
    )
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
            value = FUNCTIONS[name](e)
        if isinstance(value, str):
            e.notes.append(value)
            continue
        if name in ("fid", "kid", "prd", "is"):
            value["extractor"] = e.extractor.name
        value.update(n_samples=result["n_samples"], reference=split)
        result[name] = value
    result["notes"] = e.notes
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
    if "memorisation" in r:
        m = r["memorisation"]
        lines.append(
            f"memorisation: {m['fraction_closer']:.4f} of samples nearer to a training example "
            f"than the {m['quantile']:g}-quantile of held-out data (median distance "
            f"{m['median_sample_distance']:.4g} vs {m['median_heldout_distance']:.4g})"
        )
    if "samples_per_second" in r:
        lines.append(f"sampling: {r['samples_per_second']:.4g} samples/s")
    if "wasserstein" in r:
        w = r["wasserstein"]
        lines.append(f"W1: {w['w1']:.4f} (floor {w['floor']:.4f})")
    lines += [f"note: {note}" for note in r.get("notes", [])]
    return lines

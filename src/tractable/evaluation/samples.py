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
  equally large batch of real data (Arora and Zhang 2017), with the birthday-paradox support
  size (the smallest batch size holding a near-duplicate with probability 1/2, squared).
* ``pca``: any data with at least 2 dimensions: the spectra in raw (pixel) space, and the
  Fréchet distance in the data's top-2 principal plane, in feature space for images (the
  extractor's; pixels when ``extractor="auto"`` finds no cached classifier, with a note).
* ``pluralistic``: samples drawn per class (``labels``, a class-conditional model): the
  pluralistic diversity per class, in feature space for images as for ``pca``.
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
from .features import FeatureExtractor
from .functions import FUNCTIONS, PLURALISTIC_PER_CLASS
from .state import EXTRACTORS, Comparison

__all__ = [
    "EXTRACTORS",
    "METRICS",
    "evaluate_per_class",
    "evaluate_samples",
    "parse_metrics",
    "summary_lines",
    "support_text",
]

METRICS = (
    "fid", "kid", "prd", "is", "modes", "birthday", "pca", "kl", "wasserstein", "memorisation",
    "pluralistic",
)  # fmt: skip
# metrics that need an image extractor (pca and pluralistic use one when there is one)
NEED_FEATURES = ("fid", "kid", "prd", "is")


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
    extractor: str | FeatureExtractor = "auto",
    seed: int = 0,
    features_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    log_likelihood: Callable[[Tensor], Tensor] | None = None,
    labels: Tensor | None = None,
) -> dict[str, Any]:
    r"""Compare ``samples`` ``(n, *ds.shape)`` (raw data space) with ``ds``'s ``split``.

    Args:
        metrics: names from :data:`METRICS` (a comma-separated string or a list; ``"all"``).
        split: the reference split, ``"test"`` or ``"val"``; the other is the floor.
        extractor: for images, ``"auto"``/``"classifier"`` (the cached classifier of
            :mod:`tractable.evaluation.features`), ``"inception"``, ``"raw"`` (pixels), or a
            :class:`~tractable.evaluation.features.FeatureExtractor`.
        out_dir: folder for the figures of ``birthday`` and ``pca`` and the projected points
            of ``pca`` (none without it).
        log_likelihood: the model's data-space log-likelihood, for ``kl`` (skipped without).
        labels: ``(n,)`` the class each sample was drawn for, for ``pluralistic``.

    Returns:
        ``{"n_samples", "reference", "n_reference", "floor_split", "seed", "extractor",
        <metric>: {...}, "notes": [...]}``.
    """
    names = parse_metrics(metrics)
    if split not in ("test", "val"):
        raise ValueError(f"split: expected 'test' or 'val' as the reference, got {split!r}")
    e = Comparison(
        samples, ds, split, seed, None if out_dir is None else Path(out_dir), log_likelihood,
        labels,
    )  # fmt: skip
    if any(m in NEED_FEATURES for m in names) or ("modes" in names and e.image):
        e.set_extractor(extractor, features_root)
    elif e.image and ("pca" in names or ("pluralistic" in names and labels is not None)):
        try:
            e.set_extractor(extractor, features_root)
        except FileNotFoundError as err:
            if extractor != "auto":
                raise
            e.set_extractor("raw", None)
            e.notes.append(f"pca, pluralistic: in pixel space, {err}")
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
        if name in NEED_FEATURES:
            value["extractor"] = e.extractor.name
        value.update(n_samples=result["n_samples"], reference=split)
        result[name] = value
    result["notes"] = e.notes
    return result


def evaluate_per_class(
    sample: Callable[[int], Tensor], classes: int, ds: Dataset, **options: Any
) -> dict[str, Any]:
    r"""``pluralistic`` of a class-conditional model: ``sample(m)`` draws ``m`` samples of each
    of the ``classes`` classes, ``(classes * m, *ds.shape)`` class by class (as
    :meth:`tractable.runs.Run.sample` does); ``options`` as for :func:`evaluate_samples`."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes: expected an int >= 1, got {classes!r}")
    m = PLURALISTIC_PER_CLASS
    x = sample(m)
    if x.shape[0] != classes * m:
        raise ValueError(f"sample: expected {classes} x {m} samples, got {x.shape[0]}")
    labels = torch.arange(classes).repeat_interleave(m)
    return evaluate_samples(x, ds, ["pluralistic"], labels=labels, **options)


def _g(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def support_text(s: dict[str, Any]) -> str:
    r"""A support-size estimate of ``birthday`` as one line of text."""
    if s["lower_bound"]:
        return f"> {s['estimate']:.3g} (no batch of the {s['pool']} reached 1/2)"
    return f"{s['estimate']:.3g} (half the batches of {s['batch_size']} hold a near-duplicate)"


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
                f"histogram || data's) {m['kl_class_histogram']:.4f}, KL(class histogram || "
                f"uniform) {m['kl_uniform']:.4f} (data {m['data_kl_uniform']:.4f})"
            )
    if "birthday" in r:
        b = r["birthday"]
        lines.append(
            f"birthday: {b['n_duplicates']} sample pairs within {b['threshold']:.4g} (the "
            f"data's closest pair) in a batch of {b['batch']}; closest sample pair "
            f"{b['closest_distance']:.4g}"
        )
        for key, what in (("support", "samples"), ("support_floor", "held-out data")):
            if key in b:
                lines.append(f"birthday support size ({what}): {support_text(b[key])}")
    if "pca" in r:
        p = r["pca"]
        lines.append(f"PCA: total variance ratio samples/data {p['total_variance_ratio']:.4f}")
        if "plane" in p:
            q = p["plane"]
            lines.append(
                f"PCA plane ({q['space']}): Fréchet distance {q['frechet']:.4g} (floor "
                f"{q['floor']:.4g})"
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
    if "pluralistic" in r:
        p = r["pluralistic"]
        data = "n/a" if p["data"] is None else f"{p['data']:.4g}"
        lines.append(
            f"pluralistic diversity ({p['space']}, {p['m']} per class, {p['classes']} "
            f"classes): {p['value']:.4g} (data {data})"
        )
    if "samples_per_second" in r:
        lines.append(f"sampling: {r['samples_per_second']:.4g} samples/s")
    if "wasserstein" in r:
        w = r["wasserstein"]
        lines.append(f"W1: {w['w1']:.4f} (floor {w['floor']:.4f})")
    lines += [f"note: {note}" for note in r.get("notes", [])]
    return lines

r"""Sample-based metrics of a run: draw its samples, compare them with held-out data
(:func:`tractable.evaluation.evaluate_samples`), and store the result in ``metrics.json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ..evaluation import evaluate_samples

if TYPE_CHECKING:  # a Run calls these; they only read its attributes
    from .run import Run


def evaluate_run(
    run: Run,
    metrics: str | Sequence[str],
    *,
    n: int | None = None,
    split: str = "test",
    extractor: str = "auto",
    seed: int = 0,
    features_root: str | Path | None = None,
    write: bool = True,
) -> dict[str, Any]:
    r"""Compute sample-based ``metrics`` of ``run`` against ``split``.

    Args:
        n: samples to draw (default: the reference split's size, at least 1,000, at most
            10,000), on the data's own support; a class-conditional run draws them over its
            classes in a seeded random order.
        write: merge the results into ``metrics.json`` under ``"sample_metrics"``.

    Other arguments as for :func:`tractable.evaluation.evaluate_samples`.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 10):
        raise ValueError(f"n: expected an int >= 10, got {n!r}")
    if split not in ("test", "val"):
        raise ValueError(f"split: expected 'test' or 'val' as the reference, got {split!r}")
    ds = run.dataset
    if n is None:
        n = min(max(ds.split(split).shape[0], 1000), 10_000)
    started = time.perf_counter()
    samples = run.sample(n, seed=seed, per_class=False)
    seconds = time.perf_counter() - started
    log_likelihood = None
    if run.likelihood != "none":

        def log_likelihood(points: Tensor) -> Tensor:
            return run.log_likelihood(points)[0]

    result = evaluate_samples(
        samples,
        ds,
        metrics,
        split=split,
        extractor=extractor,
        seed=seed,
        features_root=features_root,
        out_dir=run.dir if write else None,
        log_likelihood=log_likelihood,
    )
    result["samples_per_second"] = n / seconds if seconds > 0 else None
    if write:
        merged = dict(run.metrics().get("sample_metrics", {}))
        merged.update(result)
        run.record({"sample_metrics": merged})
    return result


__all__ = ["evaluate_run"]

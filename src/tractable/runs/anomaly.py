r"""Anomaly detection with a trained run: ``tractable score RUN_DIR --data FILE|NAME``.

Each row :math:`x` gets the run's log-likelihood :math:`\ell(x)` in the units of its reported
NLL (:meth:`tractable.runs.Run.log_likelihood`: exact for flows, a bound for VAEs), and
is flagged as an anomaly when

.. math:: \ell(x) < \hat q_\alpha\bigl(\{\ell(v) : v \in \text{validation split}\}\bigr),

the :math:`\alpha`-quantile of the run's validation log-likelihoods (default
:math:`\alpha = 0.01`, so about 1% of in-distribution data are flagged). With labels
(1 = anomaly), the ranking by :math:`-\ell(x)` is scored by AUROC and AUPRC, and the flag by
its precision and recall. Likelihood is not always a good anomaly score: Nalisnick et al. 2019
("Do deep generative models know what they don't know?") show flows giving *higher*
likelihood to some out-of-distribution data, so check the AUROC on a labelled sample first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import data as tdata
from .. import metrics as tm
from ..data.files import read_table
from .run import Run

__all__ = ["read_rows", "score_run"]

_TABLES = (".csv", ".txt", ".tsv")


def _label_index(labels_column: str | int, names: list[str] | None, columns: int) -> int:
    if isinstance(labels_column, str) and not labels_column.lstrip("-").isdigit():
        if names is None or labels_column not in names:
            raise ValueError(
                f"labels_column: no column named {labels_column!r} (header: {names or 'none'})"
            )
        return names.index(labels_column)
    j = int(labels_column)
    if not -columns <= j < columns:
        raise ValueError(f"labels_column: expected an index in [-{columns}, {columns}), got {j}")
    return j % columns


def read_rows(
    data: str | Path,
    ds: tdata.Dataset,
    labels_column: str | int | None = None,
    split: str = "test",
) -> tuple[Tensor, np.ndarray | None, str]:
    r"""The rows to score, shaped ``(N, *ds.shape)`` in ``ds``'s raw space, with their labels
    ``(N,)`` (or ``None``) and a description of the source.

    ``data`` is a text table (``.csv``/``.txt``/``.tsv``, optional header; one example per row,
    the label column removed), an ``.npy`` array ``(N, *shape)`` or ``(N, D)``, or a
    registered dataset name, whose ``split`` is used (its class labels are not anomaly labels).
    """
    text = str(data)
    path = Path(text).expanduser()
    labels = None
    if path.suffix.lower() in _TABLES + (".npy",):
        if not path.is_file():
            raise FileNotFoundError(f"data: no such file {text!r}")
        if path.suffix.lower() == ".npy":
            if labels_column is not None:
                raise ValueError("labels_column: only text tables have label columns")
            values = np.load(path, allow_pickle=False)
        else:
            values, names = read_table(path)
            if labels_column is not None:
                j = _label_index(labels_column, names, values.shape[1])
                labels = values[:, j]
                values = np.delete(values, j, axis=1)
        source = str(path)
    else:
        if labels_column is not None:
            raise ValueError(
                "labels_column: a named dataset has class labels, not anomaly labels; write the "
                "rows and a 0/1 anomaly column to a CSV file"
            )
        if text in (ds.name, ds.source):
            other = ds
        else:
            other = tdata.load(text, seed=ds.seed)
        values = other.split(split).double().numpy()
        source = f"{other.name} ({split} split)"
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 2 or values.shape[0] == 0:
        raise ValueError(f"data: expected rows of examples, got shape {values.shape}")
    width = math.prod(values.shape[1:])
    if width != ds.dims:
        raise ValueError(
            f"data: expected {ds.dims} values per row (the run's data have shape {ds.shape}), "
            f"got {width} in {source}"
            + (" after removing the labels column" if labels_column is not None else "")
        )
    if not np.isfinite(values).all():
        raise ValueError(f"data: {source} holds {int((~np.isfinite(values)).sum())} NaN/inf values")
    x = torch.as_tensor(values.reshape(values.shape[0], *ds.shape), dtype=ds.train.dtype)
    return x, labels, source


def _write_csv(path: Path, ll: np.ndarray, flags: np.ndarray, labels: np.ndarray | None) -> None:
    header = "row,log_likelihood,anomaly" + (",label" if labels is not None else "")
    lines = [header]
    for i in range(ll.shape[0]):
        row = f"{i},{ll[i]:.10g},{int(flags[i])}"
        if labels is not None:
            row += f",{labels[i]:g}"
        lines.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def score_run(
    run_dir: str | Path,
    data: str | Path,
    *,
    labels_column: str | int | None = None,
    threshold_quantile: float = 0.01,
    out: str | Path | None = None,
    split: str = "test",
    estimator: str | None = None,
    k: int | None = None,
) -> dict[str, Any]:
    r"""Score the rows of ``data`` with the run in ``run_dir`` and write ``out`` (default
    ``RUN_DIR/scores-<name>.csv``: ``row, log_likelihood, anomaly[, label]``).

    Args:
        labels_column: the 0/1 anomaly column of a text table (index or header name).
        threshold_quantile: :math:`\alpha` in :math:`(0, 1)`: rows below the
            :math:`\alpha`-quantile of the validation log-likelihoods are flagged.
        split: the split used when ``data`` is a dataset name.
        estimator, k: the estimator (:data:`tractable.protocol.ESTIMATORS`; default the
            model's own) and its number of samples.

    Returns:
        counts, the threshold, and with labels ``auroc``, ``auprc``, ``flag_precision`` and
        ``flag_recall``.
    """
    if (
        isinstance(threshold_quantile, bool)
        or not isinstance(threshold_quantile, int | float)
        or not 0.0 < float(threshold_quantile) < 1.0
    ):
        raise ValueError(
            f"threshold_quantile: expected a float in (0, 1), got {threshold_quantile!r}"
        )
    run_dir = Path(run_dir)
    run = Run.load(run_dir)
    ds = run.dataset
    x, labels, source = read_rows(data, ds, labels_column, split)
    if labels is not None and not np.isin(labels, (0.0, 1.0)).all():
        bad = np.unique(labels[~np.isin(labels, (0.0, 1.0))])[:5]
        raise ValueError(f"labels_column: expected 0 (normal) and 1 (anomaly), found {bad}")
    ll, kind = run.log_likelihood(x, method=estimator, k=k)
    val_ll, _ = run.log_likelihood(ds.val, method=estimator, k=k)
    ll, val_ll = ll.double().numpy(), val_ll.double().numpy()
    for name, values in (("data", ll), ("validation", val_ll)):
        if np.isnan(values).any():
            raise ValueError(
                f"{name}: the model gave NaN log-likelihoods for {int(np.isnan(values).sum())} "
                "rows; check that the rows are in the run's raw data space"
            )
    threshold = float(np.quantile(val_ll, threshold_quantile))
    flags = ll < threshold
    out = Path(out) if out is not None else run_dir / f"scores-{Path(str(data)).stem}.csv"
    _write_csv(out, ll, flags, labels)
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "data": source,
        "n": int(ll.shape[0]),
        "estimate_kind": kind,
        "threshold_quantile": float(threshold_quantile),
        "threshold": threshold,
        "n_validation": int(val_ll.shape[0]),
        "n_flagged": int(flags.sum()),
        "fraction_flagged": float(flags.mean()),
        "mean_log_likelihood": float(ll.mean()),
        "out": str(out),
    }
    if labels is not None:
        y = labels.astype(np.int64)
        positives = int(y.sum())
        result["n_anomalies"] = positives
        if 0 < positives < y.shape[0]:
            score = -ll
            # -inf log-likelihoods rank above everything: keep the order with finite values
            finite = np.isfinite(score)
            if not finite.all():
                score = np.where(finite, score, score[finite].max(initial=0.0) + 1.0)
            result["auroc"] = tm.auroc(score, y)
            result["auprc"] = tm.auprc(score, y)
            hits = int((flags & (y == 1)).sum())
            result["flag_precision"] = hits / int(flags.sum()) if flags.any() else None
            result["flag_recall"] = hits / positives
        else:
            result["note"] = "auroc: skipped, the labels hold one class only"
    return result

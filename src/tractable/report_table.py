r"""The comparison table of :mod:`tractable.report`: its columns, the best value of each
column per dataset group, the data floors, and the table as Markdown or HTML.

A row is the JSON-ready summary of one run (model, family, dataset group, ``metrics.json``); a
:class:`Column` reads one value from it.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["COLUMNS", "Column", "markdown_table"]


@dataclass(frozen=True)
class Column:
    r"""A table column: ``get(row)`` gives the value (``None`` if absent), ``better`` is
    ``"lower"``, ``"higher"`` or ``None`` (not ranked), ``fmt`` formats a value."""

    key: str
    header: str
    get: Callable[[dict[str, Any]], Any]
    better: str | None = None
    fmt: str = "{:.4g}"
    extractor: bool = False  # a feature-space metric: comparable only with one extractor
    floor: Callable[[dict[str, Any]], Any] | None = None  # the data's own value, if any


def _path(*keys: str) -> Callable[[dict[str, Any]], Any]:
    def get(row: dict[str, Any]) -> Any:
        value: Any = row
        for k in keys:
            if not isinstance(value, dict) or k not in value:
                return None
            value = value[k]
        return value

    return get


def _sm(*keys: str) -> Callable[[dict[str, Any]], Any]:
    return _path("metrics", "sample_metrics", *keys)


COLUMNS = [
    Column("model", "model", _path("model"), fmt="{}"),
    Column("family", "family", _path("family"), fmt="{}"),
    Column("data", "data", _path("data"), fmt="{}"),
    Column("params", "params", _path("metrics", "params"), fmt="{:,}"),
    Column("steps", "steps", _path("metrics", "steps"), fmt="{}"),
    Column("train_seconds", "train time (s)", _path("metrics", "train_seconds"), fmt="{:.1f}"),
    Column("test_nll", "test NLL (nats)", _path("metrics", "test_nll"), "lower", "{:.4f}"),
    Column("test_bpd", "bits/dim", _path("metrics", "test_bpd"), "lower", "{:.4f}"),
    Column("fid", "FID", _sm("fid", "value"), "lower", extractor=True, floor=_sm("fid", "floor")),
    Column("kid", "KID", _sm("kid", "mean"), "lower", extractor=True, floor=_sm("kid", "floor")),
    *(
        Column(k, k, _sm("prd", k), "higher", "{:.3f}", True, _sm("prd", "floor", k))
        for k in ("precision", "recall", "density", "coverage")
    ),
    Column("is", "IS", _sm("is", "mean"), "higher", extractor=True, floor=_sm("is", "data")),
    Column("modes", "modes captured", _sm("modes", "modes_captured"), "higher", "{}"),
    Column(
        "hq",
        "high-quality",
        _sm("modes", "fraction_high_quality"),
        "higher",
        "{:.3f}",
        floor=_sm("modes", "data_fraction_high_quality"),
    ),
    Column("classes", "classes covered", _sm("modes", "classes_covered"), "higher", "{}"),
    Column("kl_dm", "KL(data‖model)", _sm("kl", "kl_data_model"), "lower"),
    Column("kl_md", "KL(model‖data)", _sm("kl", "kl_model_data"), "lower"),
    Column("js", "JS", _sm("kl", "js"), "lower"),
    Column("w1", "W1", _sm("wasserstein", "w1"), "lower", floor=_sm("wasserstein", "floor")),
    Column("dup", "birthday pairs", _sm("birthday", "n_duplicates"), None, "{}"),
]


# the sample_metrics entry behind each feature-space column (each records its extractor)
_METRIC_OF = {"fid": "fid", "kid": "kid", "is": "is"} | {
    k: "prd" for k in ("precision", "recall", "density", "coverage")
}


def _best(rows: list[dict[str, Any]], columns: list[Column], warnings: list[str]) -> set:
    r"""``(row index, column key)`` pairs holding the best value of their dataset group."""
    marked = set()
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["group"], []).append(i)
    for col in columns:
        if col.better is None:
            continue
        for members in groups.values():
            have = [(i, col.get(rows[i])) for i in members if col.get(rows[i]) is not None]
            have = [(i, v) for i, v in have if isinstance(v, int | float) and not math.isnan(v)]
            if len(have) < 2:
                continue
            if col.extractor:
                metric = _METRIC_OF[col.key]
                used = {json.dumps(_sm(metric, "extractor")(rows[i])) for i, _ in have}
                if len(used) > 1:
                    warnings.append(
                        f"{col.header}: runs on {rows[have[0][0]]['data']} used different "
                        "feature extractors; the values are not comparable and none is marked"
                    )
                    continue
            values = [v for _, v in have]
            target = min(values) if col.better == "lower" else max(values)
            marked.update((i, col.key) for i, v in have if v == target)
    return marked


def _cell(row: dict[str, Any], col: Column) -> str:
    value = col.get(row)
    if value is None:
        return "–"
    text = col.fmt.format(value)
    m = row["metrics"]
    if col.key in ("test_nll", "test_bpd") and m.get(f"{col.key}_se") is not None:
        text += f" ± {m[f'{col.key}_se']:.4f}"
    if col.key == "test_nll" and m.get("test_estimator") not in (None, "exact"):
        text += " †"
    if col.key == "test_nll" and row["kind"] == "discrete":
        text += " ‡"
    return text


def _header(col: Column) -> str:
    return col.header + {"lower": " ↓", "higher": " ↑"}.get(col.better or "", "")


_GLOSSARY = {
    "fid": "FID, KID: Fréchet and kernel distances between feature sets (Heusel et al. 2017; "
    "Binkowski et al. 2018), in the feature space of the named extractor",
    "precision": "precision, recall, density, coverage: k-NN manifold estimates, k = 5 "
    "(Kynkäänniemi et al. 2019; Naeem et al. 2020)",
    "is": "IS: Inception Score from the extractor's class probabilities (Salimans et al. 2016)",
    "modes": "modes captured, high-quality: modes with a sample within 3 std, and the fraction "
    "of samples that close to a mode (Srivastava et al. 2017)",
    "classes": "classes covered: classes the extractor predicts for at least one sample",
    "kl_dm": "KL, JS: divergences on a grid (nats) to the exact toy density or a KDE of the test "
    "split (see the target stored in metrics.json)",
    "w1": "W1: exact 1-Wasserstein distance on subsamples of 2,000 points",
    "dup": "birthday pairs: sample pairs closer than the closest pair of as many real examples "
    "(Arora and Zhang 2017)",
}


def _floor_rows(rows: list[dict[str, Any]], columns: list[Column]) -> list[tuple[str, list]]:
    r"""Per dataset, the metrics of held-out data against the reference (the value a perfect
    model would get from finite samples alone), from the first run that stored them."""
    out = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for members in groups.values():
        cells, found = [], False
        for col in columns:
            values = [col.floor(r) for r in members if col.floor is not None]
            value = next((v for v in values if v is not None), None)
            found |= value is not None
            cells.append(col.fmt.format(value) if value is not None else "")
        if found:
            where = _sm("floor_split")(members[0]) or "val"
            cells[[c.key for c in columns].index("data")] = members[0]["data"]
            out.append((f"floor ({where} vs test)", cells))
    return out


def markdown_table(
    labels: list[str],
    rows: list[dict[str, Any]],
    columns: list[Column],
    best: set,
    floors: list[tuple[str, list]] = (),
) -> str:
    r"""A Markdown table, best values in bold with a ★, then the data floors in italics."""
    head = "| run | " + " | ".join(_header(c) for c in columns) + " |"
    sep = "|---|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        cells = []
        for col in columns:
            text = _cell(row, col)
            cells.append(f"**{text} ★**" if (i, col.key) in best else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, cells in floors:
        lines.append(f"| *{label}* | " + " | ".join(f"*{c}*" if c else "" for c in cells) + " |")
    return "\n".join(lines)


def _html_table(
    labels: list[str],
    rows: list[dict[str, Any]],
    columns: list[Column],
    best: set,
    floors: list[tuple[str, list]] = (),
) -> str:
    out = [
        '<div class="scroll"><table>',
        "<tr><th>run</th>"
        + "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
        + "</tr>",
    ]
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        cells = []
        for col in columns:
            text = html.escape(_cell(row, col))
            cells.append(
                f'<td class="best">{text} ★</td>' if (i, col.key) in best else f"<td>{text}</td>"
            )
        out.append(f"<tr><td>{html.escape(label)}</td>" + "".join(cells) + "</tr>")
    for label, cells in floors:
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        out.append(f'<tr class="floor"><td>{html.escape(label)}</td>{tds}</tr>')
    out.append("</table></div>")
    return "\n".join(out)

r"""The comparison table of :mod:`tractable.report.compare`: its columns, the best value of each
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

__all__ = [
    "COLUMNS",
    "GLOSSARY",
    "Column",
    "best_cells",
    "floor_rows",
    "html_table",
    "markdown_table",
    "sample_metric",
]


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


def sample_metric(*keys: str) -> Callable[[dict[str, Any]], Any]:
    return _path("metrics", "sample_metrics", *keys)


COLUMNS = [
    Column("model", "model", _path("model"), fmt="{}"),
    Column("family", "family", _path("family"), fmt="{}"),
    Column("data", "data", _path("data"), fmt="{}"),
    Column("params", "params", _path("metrics", "params"), fmt="{:,}"),
    Column("steps", "steps", _path("metrics", "steps"), fmt="{}"),
    Column("train_seconds", "train time (s)", _path("metrics", "train_seconds"), fmt="{:.1f}"),
    Column("likelihood", "likelihood", _path("likelihood"), fmt="{}"),
    Column("test_nll", "test NLL (nats)", _path("metrics", "test_nll"), "lower", "{:.4f}"),
    Column("test_bpd", "bits/dim", _path("metrics", "test_bpd"), "lower", "{:.4f}"),
    # -log p(x | y): ranked only among class-conditional runs, never beside marginal NLLs
    Column(
        "test_nll_conditional",
        "test NLL | class (nats)",
        _path("metrics", "test_nll_conditional"),
        "lower",
        "{:.4f}",
    ),
    Column(
        "fid",
        "FID",
        sample_metric("fid", "value"),
        "lower",
        extractor=True,
        floor=sample_metric("fid", "floor"),
    ),
    Column(
        "kid",
        "KID",
        sample_metric("kid", "mean"),
        "lower",
        extractor=True,
        floor=sample_metric("kid", "floor"),
    ),
    *(
        Column(
            k,
            k,
            sample_metric("prd", k),
            "higher",
            "{:.3f}",
            True,
            sample_metric("prd", "floor", k),
        )
        for k in ("precision", "recall", "density", "coverage")
    ),
    Column(
        "is",
        "IS",
        sample_metric("is", "mean"),
        "higher",
        extractor=True,
        floor=sample_metric("is", "data"),
    ),
    Column("modes", "modes captured", sample_metric("modes", "modes_captured"), "higher", "{}"),
    Column(
        "hq",
        "high-quality",
        sample_metric("modes", "fraction_high_quality"),
        "higher",
        "{:.3f}",
        floor=sample_metric("modes", "data_fraction_high_quality"),
    ),
    Column("classes", "classes covered", sample_metric("modes", "classes_covered"), "higher", "{}"),
    Column("kl_dm", "KL(data‖model)", sample_metric("kl", "kl_data_model"), "lower"),
    Column("kl_md", "KL(model‖data)", sample_metric("kl", "kl_model_data"), "lower"),
    Column("js", "JS", sample_metric("kl", "js"), "lower"),
    Column(
        "w1",
        "W1",
        sample_metric("wasserstein", "w1"),
        "lower",
        floor=sample_metric("wasserstein", "floor"),
    ),
    Column("dup", "birthday pairs", sample_metric("birthday", "n_duplicates"), None, "{}"),
    Column(
        "memo",
        "memorised",
        sample_metric("memorisation", "fraction_closer"),
        "lower",
        "{:.3f}",
        floor=sample_metric("memorisation", "quantile"),
    ),
    Column("sps", "samples/s", sample_metric("samples_per_second"), "higher", "{:.4g}"),
]


# the sample_metrics entry behind each feature-space column (each records its extractor)
_METRIC_OF = {"fid": "fid", "kid": "kid", "is": "is"} | {
    k: "prd" for k in ("precision", "recall", "density", "coverage")
}


def best_cells(rows: list[dict[str, Any]], columns: list[Column], warnings: list[str]) -> set:
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
                used = {json.dumps(sample_metric(metric, "extractor")(rows[i])) for i, _ in have}
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
    if col.key in ("test_nll", "test_bpd", "test_nll_conditional") and (
        m.get(f"{col.key}_se") is not None
    ):
        text += f" ± {m[f'{col.key}_se']:.4f}"
    if col.key == "test_nll" and m.get("test_estimator") not in (None, "exact"):
        text += " †"
    if col.key == "test_nll" and row["kind"] == "discrete":
        text += " ‡"
    return text


def _header(col: Column) -> str:
    return col.header + {"lower": " ↓", "higher": " ↑"}.get(col.better or "", "")


GLOSSARY = {
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
    "memo": "memorised: the fraction of samples nearer to a training example than 1% of held-out "
    "examples are (about 0.01 for a model that generalises; its floor is that quantile)",
    "sps": "samples/s: sampling speed measured while drawing the samples of the metrics",
}


def floor_rows(rows: list[dict[str, Any]], columns: list[Column]) -> list[tuple[str, list]]:
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
            where = sample_metric("floor_split")(members[0]) or "val"
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


def html_table(
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

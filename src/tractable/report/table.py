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
    "KIND_MARK",
    "LIKELIHOOD_KEYS",
    "MISSING",
    "Column",
    "best_cells",
    "floor_rows",
    "html_table",
    "markdown_table",
    "mixed_kinds",
    "sample_metric",
]


@dataclass(frozen=True)
class Column:
    r"""A table column: ``get(row)`` gives the value (``None`` if absent), ``better`` is
    ``"lower"``, ``"higher"`` or ``None`` (not ranked), ``fmt`` formats a value (a format
    string or a function), ``space(row)`` names the feature space of a metric comparable only
    within one space, ``floor(row)`` gives the data's own value and ``detail(row)`` text shown
    after the value (an interval)."""

    key: str
    header: str
    get: Callable[[dict[str, Any]], Any]
    better: str | None = None
    fmt: str | Callable[[Any], str] = "{:.4g}"
    space: Callable[[dict[str, Any]], Any] | None = None
    floor: Callable[[dict[str, Any]], Any] | None = None
    detail: Callable[[dict[str, Any]], str] | None = None

    def format(self, value: Any) -> str:
        return self.fmt(value) if callable(self.fmt) else self.fmt.format(value)


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


def _support(value: dict[str, Any]) -> str:
    estimate = value["estimate"]
    if value["lower_bound"]:
        return f"> {estimate:.3g}"
    return f"{estimate:.3g} (s={value['batch_size']})"


def _interval(*keys: str, fmt: str = "{:.2f}") -> Callable[[dict[str, Any]], str]:
    def detail(row: dict[str, Any]) -> str:
        low, high = _path(*keys, "low")(row), _path(*keys, "high")(row)
        if low is None or high is None:
            return ""
        return f" [{fmt.format(low)}, {fmt.format(high)}]"

    return detail


def _fooled_detail(row: dict[str, Any]) -> str:
    t = _path("human_eval", "fooled")(row)
    return _interval("human_eval", "fooled")(row) + f" ({t['judged_real']}/{t['n']})"


LIKELIHOOD_KEYS = ("test_nll", "test_bpd", "test_nll_conditional")
# the mark before a likelihood of each kind: the true NLL is at most a bound
KIND_MARK = {"bound": "≤ ", "estimate": "≈ "}
MISSING = "—"

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
        space=sample_metric("fid", "extractor"),
        floor=sample_metric("fid", "floor"),
    ),
    Column(
        "kid",
        "KID",
        sample_metric("kid", "mean"),
        "lower",
        space=sample_metric("kid", "extractor"),
        floor=sample_metric("kid", "floor"),
    ),
    *(
        Column(
            k,
            k,
            sample_metric("prd", k),
            "higher",
            "{:.3f}",
            sample_metric("prd", "extractor"),
            sample_metric("prd", "floor", k),
        )
        for k in ("precision", "recall", "density", "coverage")
    ),
    Column(
        "is",
        "IS",
        sample_metric("is", "mean"),
        "higher",
        space=sample_metric("is", "extractor"),
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
    Column(
        "classes",
        "classes covered",
        sample_metric("modes", "classes_covered"),
        "higher",
        "{}",
        floor=sample_metric("modes", "data_classes_covered"),
    ),
    Column(
        "class_kl",
        "class KL",
        sample_metric("modes", "kl_uniform"),
        "lower",
        "{:.3f}",
        floor=sample_metric("modes", "data_kl_uniform"),
    ),
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
        "support",
        "support (birthday)",
        sample_metric("birthday", "support"),
        None,
        _support,
        floor=sample_metric("birthday", "support_floor"),
    ),
    Column(
        "memo",
        "memorised",
        sample_metric("memorisation", "fraction_closer"),
        "lower",
        "{:.3f}",
        floor=sample_metric("memorisation", "quantile"),
    ),
    Column(
        "pca_fd",
        "PCA-plane FD",
        sample_metric("pca", "plane", "frechet"),
        "lower",
        space=sample_metric("pca", "plane", "space"),
        floor=sample_metric("pca", "plane", "floor"),
    ),
    Column(
        "pluralistic",
        "pluralistic diversity",
        sample_metric("pluralistic", "value"),
        None,
        space=sample_metric("pluralistic", "space"),
        floor=sample_metric("pluralistic", "data"),
    ),
    Column("sps", "samples/s", sample_metric("samples_per_second"), "higher", "{:.4g}"),
    Column(
        "fooled",
        "fooled (human)",
        _path("human_eval", "fooled", "fraction"),
        "higher",
        "{:.2f}",
        floor=_path("human_eval", "real", "fraction"),
        detail=_fooled_detail,
    ),
    Column(
        "bt",
        "Bradley–Terry",
        _path("human_eval", "bt", "score"),
        "higher",
        "{:+.2f}",
        detail=_interval("human_eval", "bt", fmt="{:+.2f}"),
    ),
]


def mixed_kinds(rows: list[dict[str, Any]]) -> list[str]:
    r"""The likelihood kinds (exact, bound, estimate) of the rows that report an NLL, sorted,
    when there is more than one; else ``[]``."""
    kinds = {
        str(r["likelihood"])
        for r in rows
        if any(_path("metrics", key)(r) is not None for key in LIKELIHOOD_KEYS)
    }
    return sorted(kinds) if len(kinds) > 1 else []


def best_cells(rows: list[dict[str, Any]], columns: list[Column], warnings: list[str]) -> set:
    r"""``(row index, column key)`` pairs holding the best value of their dataset group. In a
    likelihood column whose values in a group are of different kinds (exact beside a bound or
    an estimate) only the exact values are ranked; a feature-space column is ranked only when
    every run of the group used the same space (else a warning)."""
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
            if col.key in LIKELIHOOD_KEYS and len({rows[i]["likelihood"] for i, _ in have}) > 1:
                # a bound is an upper limit on the NLL, not a value: rank exact values only
                have = [(i, v) for i, v in have if rows[i]["likelihood"] == "exact"]
            if len(have) < 2:
                continue
            if col.space is not None:
                used = {json.dumps(col.space(rows[i])) for i, _ in have}
                if len(used) > 1:
                    warnings.append(
                        f"{col.header}: runs on {rows[have[0][0]]['data']} used different "
                        "feature extractors; the values are not comparable and none is marked"
                    )
                    continue
            values = [v for _, v in have]
            if len(set(values)) == 1:
                continue  # a tie of every run (e.g. none memorises: all 0.000) ranks nothing
            target = min(values) if col.better == "lower" else max(values)
            marked.update((i, col.key) for i, v in have if v == target)
    return marked


def _cell(row: dict[str, Any], col: Column) -> str:
    value = col.get(row)
    if value is None:
        return MISSING
    text = col.format(value)
    m = row["metrics"]
    if col.key in LIKELIHOOD_KEYS:
        text = KIND_MARK.get(str(row["likelihood"]), "") + text
        if m.get(f"{col.key}_se") is not None:
            text += f" ± {m[f'{col.key}_se']:.4f}"
    if col.key == "test_nll" and row["kind"] == "discrete":
        text += " ‡"
    if col.detail is not None:
        text += col.detail(row)
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
    "class_kl": "class KL: KL(q ‖ uniform) = log K − H(q) of the histogram q of the classes the "
    "extractor predicts for the samples, in nats: 0 when balanced, log 10 = 2.303 when every "
    "sample is of one class of ten (against uniform, not the data's class frequencies; the floor "
    "is the held-out data's own value)",
    "dup": "birthday pairs: sample pairs closer than the closest pair of as many real examples "
    "(Arora and Zhang 2017)",
    "support": "support (birthday): the birthday-paradox support size (Arora and Zhang 2017): "
    "the smallest batch size s at which at least half of 200 random batches of the samples (up "
    "to 2,000) hold a near-duplicate pair (as close as the closest pair of the test examples of "
    "the birthday-pairs batch), squared; '> N²' when no batch of the N samples reaches one half. "
    "A uniform distribution over S items gives about 1.4 S. The floor is held-out data's own "
    "value at that threshold (from at most as many examples as that batch)",
    "pca_fd": "PCA-plane FD: the Fréchet distance between the samples and the test data projected "
    "on the test data's first two principal axes (in the extractor's feature space for images, "
    "raw values otherwise); the PCA figure shows the same plane",
    "pluralistic": "pluralistic diversity (class-conditional runs): for each class, the mean "
    "distance from each of m samples to the nearest other sample of that class, averaged over "
    "classes (feature space for images); the floor is the same for m held-out examples per "
    "class. Not ranked: more spread is not better beyond the data's",
    "fooled": "fooled (human): the fraction of a model's images that raters judged real in the "
    "generative Turing test, with its 95% Wilson interval and count (the floor: real images "
    "judged real); Bradley–Terry: scores from side-by-side choices (log-strength, mean 0) with "
    "95% bootstrap intervals (Bradley and Terry 1952; Hunter 2004)",
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
            cells.append(col.format(value) if value is not None else "")
        if found:
            where = sample_metric("floor_split")(members[0]) or "val"
            cells[[c.key for c in columns].index("data")] = members[0]["data"]
            out.append((f"floor ({where} vs test)", cells))
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(
    labels: list[str],
    rows: list[dict[str, Any]],
    columns: list[Column],
    best: set,
    floors: list[tuple[str, list]] = (),
) -> str:
    r"""A Markdown table, best values in bold with a ★, then the data floors in italics (a
    ``|`` inside a header or cell is escaped, so it does not split the cell)."""
    head = "| run | " + " | ".join(_md(_header(c)) for c in columns) + " |"
    sep = "|---|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        cells = []
        for col in columns:
            text = _md(_cell(row, col))
            cells.append(f"**{text} ★**" if (i, col.key) in best else text)
        lines.append(f"| {_md(label)} | " + " | ".join(cells) + " |")
    for label, cells in floors:
        lines.append(
            f"| *{label}* | " + " | ".join(f"*{_md(c)}*" if c else "" for c in cells) + " |"
        )
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

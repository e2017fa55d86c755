r"""Model comparison reports: ``tractable compare RUN_DIR... --out report.html``.

One table across runs (model, family, parameters, training time, test NLL with its standard
error and its kind, bits/dim, the sample metrics of ``tractable eval --metrics``, and the results
of a human evaluation when one is given), the best value of each column marked among runs on the
same data, and plots: 2D densities side by side, sample grids, data and samples in the data's
principal plane, training curves overlaid. Written as Markdown (``report.md``, images in
``report_files/``) and as one self-contained HTML file whose PNG images are embedded as base64
``data:`` URIs (no external assets, so it can be mailed or archived as it is).

NLLs are comparable only on the same test split: the report groups runs by dataset (name, data
seed and options), marks the best per group, and warns when there is more than one group. A bound
on the NLL is an upper limit, not a value: when exact NLLs stand beside bounds or estimates, only
the exact ones are ranked, and a line under the table says so.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.images import IMAGES
from ..plots import compare as figures
from ..plots import image_shape_of
from ..registry import build_model, get_entry
from ..runs import Run
from ..train import read_json
from .table import (
    COLUMNS,
    GLOSSARY,
    best_cells,
    floor_rows,
    html_table,
    markdown_table,
    mixed_kinds,
    sample_metric,
)

__all__ = ["attach_human_eval", "compare_runs", "kinds_note", "load_row", "run_labels"]


def load_row(run_dir: Path) -> dict[str, Any]:
    r"""One run's row: its description and ``metrics.json``. Runs written before marginal
    NLLs were reported for class-conditional models held :math:`-\log p(x \mid y)` under
    ``test_nll``; their value moves to the conditional column, so it is never ranked beside
    a marginal NLL."""
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"run_dir: {str(run_dir)!r} holds no run (no config.json)")
    if not (run_dir / "metrics.json").is_file():
        raise FileNotFoundError(
            f"run_dir: {str(run_dir)!r} has no metrics.json (unfinished?); finish it with "
            f"'tractable train --resume {run_dir}'"
        )
    config, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    # a run whose final evaluation was stopped keeps only the trainer's summary
    if metrics.get("train_seconds") is None and metrics.get("seconds") is not None:
        metrics = {**metrics, "train_seconds": metrics["seconds"]}
    if metrics.get("params") is None:
        model = build_model(config["model"])
        metrics = {**metrics, "params": sum(p.numel() for p in model.parameters())}
    dataset = config["data"]["dataset"]
    model = config["model"]["model"]
    # the same data whether a model sees it as flat vectors or as (C, H, W) images
    options = {k: v for k, v in (dataset.get("options") or {}).items() if k != "image"}
    group = json.dumps([dataset.get("source"), dataset.get("seed"), options])
    entry = get_entry(model)
    conditional = bool(config["data"].get("conditional"))
    if conditional and "test_nll_conditional" not in metrics and "test_nll" in metrics:
        metrics = dict(metrics)
        for key in ("nll", "nll_se", "bpd", "bpd_se"):
            value = metrics.pop(f"test_{key}", None)
            if value is not None:
                metrics[f"test_{key.replace('nll', 'nll_conditional')}"] = value
    return {
        "run_dir": str(run_dir),
        "model": model,
        "family": entry.family,
        "likelihood": metrics.get("test_estimate_kind", metrics.get("likelihood")),
        "data": dataset.get("name"),
        "group": group,
        "kind": dataset.get("kind"),
        "shape": dataset.get("shape"),
        "conditional": conditional,
        "metrics": metrics,
        "config": config,
    }


def run_labels(dirs: Sequence[Path]) -> list[str]:
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{d.parent.name}/{d.name}" for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    return names


_CSS = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:100em}
table{border-collapse:separate;border-spacing:0;font-size:13px}
th,td{border-right:1px solid #ccc;border-bottom:1px solid #ccc;padding:4px 8px;text-align:right;
background:#fff}
tr:first-child th{border-top:1px solid #ccc}
th{background:#f0f0f0;vertical-align:bottom;min-width:4.5em}
td{white-space:nowrap}
th:first-child,td:first-child{position:sticky;left:0;z-index:1;text-align:left;
border-left:1px solid #ccc;box-shadow:2px 0 3px -1px rgba(0,0,0,.15)}
th:first-child{background:#f0f0f0}
td.best{font-weight:bold;background:#e8f5e9}
tr.floor td{font-style:italic;color:#555;background:#fafafa}
.scroll{overflow-x:auto;max-width:100%;padding-bottom:4px}
.warn{background:#fff3e0;border-left:4px solid #fb8c00;padding:6px 10px}
.kinds{background:#e3f2fd;border-left:4px solid #1e88e5;padding:6px 10px;margin-top:.6em}
li{margin:.2em 0}
img{max-width:100%;border:1px solid #ddd}
"""


def attach_human_eval(
    rows: list[dict[str, Any]], names: Sequence[str], results: dict[str, Any]
) -> list[str]:
    r"""Put the human-evaluation ``results`` (as :func:`tractable.humaneval.results` returns
    them) of the model called ``names[i]`` in the database into ``rows[i]["human_eval"]``:
    the Turing-test answers (``fooled``: fraction judged real, Wilson interval, counts), the
    Bradley–Terry score with its bootstrap interval (``bt``), and the real images' own rate
    (``real``). Runs whose name is not among the database's models get nothing (shown as
    missing). Returns notes on what was matched."""
    if len(names) != len(rows):
        raise ValueError(f"human_eval_names: expected {len(rows)} names, got {len(names)}")
    models = list(results.get("models", []))
    for row, name in zip(rows, names, strict=True):
        if name not in models:
            continue
        fooled = results["turing"][name]
        row["human_eval"] = {
            "name": name,
            "fooled": fooled if fooled["n"] else None,
            "bt": results["bradley_terry"][name] if results.get("comparisons") else None,
            "real": results["real"] if results["real"]["n"] else None,
        }
    used = [n for n in names if n in models]
    notes = [
        f"Human evaluation: {results['sessions']} rater session(s), {results['excluded']} "
        f"excluded after a failed attention check, {results['answers']} answers kept, "
        f"{results['comparisons']} side-by-side comparisons; runs matched to its models by "
        f"name: {', '.join(used) or 'none'}"
    ]
    unused = [m for m in models if m not in names]
    if unused:
        notes.append(
            "Human evaluation: models in the database without a run in this report (their "
            f"Bradley–Terry scores are relative to these too): {', '.join(unused)}"
        )
    return notes


def kinds_note(rows: list[dict[str, Any]], labels: Sequence[str]) -> str | None:
    r"""The line under the table when the likelihood columns mix kinds (``None`` when they do
    not): how bounds and estimates are marked and that only exact values are ranked; and, per
    dataset, a bound below the best exact NLL (that model is then better whatever its true
    NLL)."""
    kinds = mixed_kinds(rows)
    if not kinds:
        return None
    text = (
        f"The test NLLs are of different kinds ({', '.join(kinds)}). A bound is an upper limit "
        "on the NLL, not its value: ≤ marks one (the true NLL is at most the number shown), ≈ "
        "marks an estimate (importance sampling). Bounds and estimates are not ranked against "
        "exact values as if equal: ★ marks the best exact value only."
    )
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["metrics"].get("test_nll") is not None:
            groups.setdefault(row["group"], []).append(i)
    for members in groups.values():
        exact = [i for i in members if rows[i]["likelihood"] == "exact"]
        if not exact:
            continue
        best = min(exact, key=lambda i: rows[i]["metrics"]["test_nll"])
        e = rows[best]["metrics"]["test_nll"]
        for i in members:
            b = rows[i]["metrics"]["test_nll"]
            if rows[i]["likelihood"] == "bound" and b < e:
                text += (
                    f" On {rows[i]['data']}, {labels[i]}'s bound ({b:.4f}) is below the best "
                    f"exact NLL ({e:.4f}, {labels[best]}): its true NLL is lower still."
                )
    return text


def compare_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path = "report.html",
    title: str = "tractable model comparison",
    plots: bool = True,
    human_eval: dict[str, Any] | None = None,
    human_eval_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    r"""Write the comparison of ``run_dirs`` to ``out`` (HTML) and ``out`` with suffix
    ``.md`` (Markdown, images in ``<stem>_files/``). Returns the table as JSON-ready data.

    Args:
        human_eval: the results of a human evaluation (:func:`tractable.humaneval.results`),
            shown as the columns ``fooled (human)`` and ``Bradley–Terry`` (see
            :func:`attach_human_eval`).
        human_eval_names: each run's model name in that evaluation (default: the run
            directory's name, as ``tractable human-eval`` names them).
    """
    if isinstance(run_dirs, str | Path) or not run_dirs:
        raise ValueError("run_dirs: expected one or more run directories")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"out: expected a .html path, got {str(out)!r}")
    dirs = [Path(d) for d in run_dirs]
    rows = [load_row(d) for d in dirs]
    labels = run_labels(dirs)
    human_notes: list[str] = []
    if human_eval is not None:
        names = human_eval_names or [d.resolve().name for d in dirs]
        human_notes = attach_human_eval(rows, list(names), human_eval)
    warnings: list[str] = []
    datasets = sorted({r["data"] for r in rows})
    if len({r["group"] for r in rows}) > 1:
        warnings.append(
            f"The runs use different datasets or splits ({', '.join(datasets)}): NLLs and sample "
            "metrics are comparable only between runs on the same data; best values are marked "
            "per dataset."
        )
    columns = [c for c in COLUMNS if any(c.get(r) is not None for r in rows)]
    best = best_cells(rows, columns, warnings)
    notes = []
    estimators = sorted(
        {str(r["metrics"].get("test_estimator")) for r in rows if r["metrics"].get("test_nll")}
    )
    if set(estimators) - {"exact", "None"}:
        notes.append(
            f"likelihood: the kind of the test NLL's estimator ({', '.join(estimators)}): exact "
            "is the model's density; elbo and iwae are bounds, upper limits on the NLL (≤, Burda "
            "et al. 2016); importance sampling is a consistent estimate (≈), in expectation also "
            "an upper limit"
        )
    subsets = [
        f"{Path(r['run_dir']).name}: {r['metrics']['test_rows']} of "
        f"{r['metrics']['test_rows_of']}"
        for r in rows
        if r["metrics"].get("test_nll") is not None and r["metrics"].get("test_rows_of")
    ]
    if subsets:
        notes.append(
            "likelihood on a random subset of the test split (an estimator too costly for all "
            f"of it; the ± covers the choice of examples): {'; '.join(subsets)}"
        )
    if any(r["kind"] == "discrete" for r in rows):
        notes.append(
            "‡ discrete data: the NLL of the dequantized density, an upper bound on the discrete "
            "NLL (Theis et al. 2016)"
        )
    if any(r["conditional"] for r in rows):
        notes.append(
            "class-conditional runs: 'test NLL' is the marginal -log p(x) (the classes summed "
            "with their training frequencies), 'test NLL | class' is -log p(x | y) with the "
            "true label; the two are never ranked together"
        )
    notes += [GLOSSARY[c.key] for c in columns if c.key in GLOSSARY]
    notes += human_notes
    kinds = kinds_note(rows, labels)
    extractors = sorted(
        {str(sample_metric("extractor", "name")(r)) for r in rows if sample_metric("extractor")(r)}
    )
    if extractors:
        notes.append(
            f"Sample metrics computed with the feature extractor(s): {', '.join(extractors)}."
        )
    files_dir = out.parent / f"{out.stem}_files"
    pictures: list[tuple[str, Path]] = []
    if plots:
        for name, stem, fn in (
            ("2D densities (test data, then each model)", "densities", _densities),
            ("samples", "samples", _sample_grids),
            ("PCA: data and samples in the data's first two principal components", "pca",
             _pca_planes),
            ("training curves", "curves", _curves),
        ):  # fmt: skip
            path = fn(labels, rows, files_dir / f"{stem}.png")
            if path is not None:
                pictures.append((name, path))
        missing = [
            lab
            for lab, r in zip(labels, rows, strict=True)
            if sample_metric("pca", "plane")(r) is None
        ]
        if missing and len(missing) < len(rows):
            notes.append(
                "PCA figure: not for " + ", ".join(missing) + " (no 'tractable eval RUN --metrics "
                "pca' stored)"
            )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    md = [f"# {title}", "", f"{len(rows)} runs, {stamp}. Best value per dataset: **bold ★**.", ""]
    md += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    floors = floor_rows(rows, columns)
    if floors:
        notes.insert(
            0,
            "floor: the same metric for held-out data (the val split) against the test split, "
            "what a perfect model would score with as many samples",
        )
    md += [markdown_table(labels, rows, columns, best, floors), ""]
    if kinds:
        md += [f"> **Note:** {kinds}", ""]
    md += [f"- {n}" for n in notes] + [""]
    md += [f"- {label}: `{row['run_dir']}`" for label, row in zip(labels, rows, strict=True)]
    md += [""]
    for name, path in pictures:
        md += [f"## {name}", "", f"![{name}]({files_dir.name}/{path.name})", ""]
    md_path = out.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(md))
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(rows)} runs, {stamp}. Best value per dataset: <b>bold ★</b>.</p>",
    ]
    body += [f'<p class="warn"><b>Warning:</b> {html.escape(w)}</p>' for w in warnings]
    body.append(html_table(labels, rows, columns, best, floors))
    if kinds:
        body.append(f'<p class="kinds"><b>Note:</b> {html.escape(kinds)}</p>')
    body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    body.append(
        "<ul>"
        + "".join(
            f"<li>{html.escape(lab)}: <code>{html.escape(r['run_dir'])}</code></li>"
            for lab, r in zip(labels, rows, strict=True)
        )
        + "</ul>"
    )
    for name, path in pictures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f"<h2>{html.escape(name)}</h2>")
        body.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    out.write_text(page, encoding="utf-8")
    table = [
        {"run": label, "run_dir": row["run_dir"], **{c.key: c.get(row) for c in columns}}
        for label, row in zip(labels, rows, strict=True)
    ]
    for entry, row in zip(table, rows, strict=True):
        entry["test_nll_se"] = row["metrics"].get("test_nll_se")
        entry["test_estimator"] = row["metrics"].get("test_estimator")
        if "human_eval" in row:
            entry["human_eval"] = row["human_eval"]
    return {
        "title": title,
        "runs": table,
        "columns": [c.key for c in columns],
        "best": sorted([labels[i], key] for i, key in best),
        "warnings": warnings,
        "kinds_note": kinds,
        "notes": notes,
        "html": str(out),
        "markdown": str(md_path),
        "plots": [str(p) for _, p in pictures],
    }


def _groups(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> dict:
    out: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if keep(row):
            out.setdefault(row["group"], []).append(i)
    return out


def _densities(labels: list[str], rows: list[dict[str, Any]], path: Path, res: int = 150):  # noqa: ANN202
    r"""Each 2D continuous dataset's test data beside the densities of its runs with an exact
    likelihood, on one grid."""
    groups = _groups(
        rows,
        lambda r: r["shape"] == [2] and r["kind"] == "continuous" and r["likelihood"] == "exact",
    )
    if not groups:
        return None
    panels = []
    for members in groups.values():
        data = Run.load(rows[members[0]]["run_dir"]).dataset.test.double()
        lo = torch.quantile(data, 0.005, dim=0)
        hi = torch.quantile(data, 0.995, dim=0)
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
        gx = torch.linspace(float(lo[0]), float(hi[0]), res, dtype=torch.float64)
        gy = torch.linspace(float(lo[1]), float(hi[1]), res, dtype=torch.float64)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        models = []
        for i in members:
            run = Run.load(rows[i]["run_dir"])
            log_p = torch.cat([run.log_likelihood(c)[0] for c in grid.split(8192)])
            dens = torch.nan_to_num(log_p.double().exp(), nan=0.0).reshape(res, res).numpy()
            models.append((f"{labels[i]} ({rows[i]['model']})", dens))
        panels.append((f"data: {rows[members[0]]['data']} (test)", data, extent, models))
    return figures.densities(panels, path)


def _sample_grids(labels: list[str], rows: list[dict[str, Any]], path: Path, n: int = 36):  # noqa: ANN202
    images = [i for i, r in enumerate(rows) if r["data"] in IMAGES]
    if not images:
        return None
    grids = []
    for i in images:
        run = Run.load(rows[i]["run_dir"])
        x = run.sample(n, seed=0, per_class=False)
        shape = image_shape_of(run.data_shape, run.data_name)
        x = run.preprocess.intensities(x).double().clamp(0, 1).reshape(-1, *shape)
        grids.append((f"{labels[i]} ({rows[i]['model']})", x))
    return figures.sample_grids(grids, path)


def _pca_planes(labels: list[str], rows: list[dict[str, Any]], path: Path):  # noqa: ANN202
    r"""Per dataset and feature space, the projected points that ``tractable eval --metrics pca``
    stored beside each run (the test data and the samples on the test data's first two
    principal axes, which depend on the data and the space alone), side by side."""
    groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for i, row in enumerate(rows):
        plane = sample_metric("pca", "plane")(row)
        if not plane or not plane.get("file"):
            continue
        file = Path(row["run_dir"]) / plane["file"]
        if not file.is_file():
            continue
        stored = read_json(file)
        if stored.get("space") != plane.get("space") or not stored.get("samples"):
            continue
        groups.setdefault((row["group"], plane["space"]), []).append((i, stored))
    if not groups:
        return None
    panels = []
    for (_, space), members in groups.items():
        first = members[0][1]
        title = f"{rows[members[0][0]]['data']}: {first.get('reference', 'test')} data ({space})"
        data = np.asarray(first["data"], dtype=np.float64)
        models = [
            (f"{labels[i]} ({rows[i]['model']})", np.asarray(st["samples"], dtype=np.float64))
            for i, st in members
        ]
        panels.append((title, data, models))
    return figures.pca_planes(panels, path)


def _curves(labels: list[str], rows: list[dict[str, Any]], path: Path):  # noqa: ANN202
    groups = _groups(rows, lambda r: (Path(r["run_dir"]) / "log.jsonl").is_file())
    if not groups:
        return None
    return figures.curves(
        [
            (
                rows[members[0]]["data"],
                [(labels[i], Path(rows[i]["run_dir"]) / "log.jsonl") for i in members],
            )
            for members in groups.values()
        ],
        path,
    )

r"""Model comparison reports: ``tractable compare RUN_DIR... --out report.html``.

One table across runs (model, family, parameters, training time, test NLL with its standard
error, bits/dim, and the sample metrics of ``tractable eval --metrics``), the best value of each
column marked among runs on the same data, and plots: 2D densities side by side, sample grids,
training curves overlaid. Written as Markdown (``report.md``, images in ``report_files/``) and
as one self-contained HTML file whose PNG images are embedded as base64 ``data:`` URIs (no
external assets, so it can be mailed or archived as it is).

NLLs are comparable only on the same test split: the report groups runs by dataset (name, data
seed and options), marks the best per group, and warns when there is more than one group.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs
from .train import read_json

__all__ = ["COLUMNS", "Column", "compare_runs", "markdown_table"]

FAMILIES = {"vae": "VAE", "ffjord": "continuous flow"}


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


def _load_row(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"run_dir: {str(run_dir)!r} holds no run (no config.json)")
    if not (run_dir / "metrics.json").is_file():
        raise FileNotFoundError(
            f"run_dir: {str(run_dir)!r} has no metrics.json (unfinished?); finish it with "
            f"'tractable train --resume {run_dir}'"
        )
    config, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    dataset = config["data"]["dataset"]
    model = config["model"]["model"]
    group = json.dumps([dataset.get("source"), dataset.get("seed"), dataset.get("options")])
    return {
        "run_dir": str(run_dir),
        "model": model,
        "family": FAMILIES.get(model, "flow"),
        "data": dataset.get("name"),
        "group": group,
        "kind": dataset.get("kind"),
        "shape": dataset.get("shape"),
        "conditional": bool(config["data"].get("conditional")),
        "metrics": metrics,
        "config": config,
    }


def _labels(dirs: Sequence[Path]) -> list[str]:
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{d.parent.name}/{d.name}" for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    return names


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


def _figure(width: float, height: float):  # noqa: ANN202
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _groups(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> dict:
    out: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if keep(row):
            out.setdefault(row["group"], []).append(i)
    return out


def _densities(labels: list[str], rows: list[dict[str, Any]], path: Path, res: int = 150):  # noqa: ANN202
    groups = _groups(rows, lambda r: r["shape"] == [2] and r["kind"] == "continuous")
    if not groups:
        return None
    cols = 1 + max(len(m) for m in groups.values())
    fig = _figure(3.0 * cols, 3.0 * len(groups))
    for g, members in enumerate(groups.values()):
        ds = runs.load_run(rows[members[0]]["run_dir"])[2]
        data = ds.test.double()
        lo = torch.quantile(data, 0.005, dim=0)
        hi = torch.quantile(data, 0.995, dim=0)
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
        gx = torch.linspace(float(lo[0]), float(hi[0]), res, dtype=torch.float64)
        gy = torch.linspace(float(lo[1]), float(hi[1]), res, dtype=torch.float64)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        ax = fig.add_subplot(len(groups), cols, g * cols + 1)
        pts = data.numpy()
        ax.hist2d(pts[:, 0], pts[:, 1], bins=100, range=[extent[:2], extent[2:]], cmap="magma")
        ax.set_title(f"data: {rows[members[0]]['data']} (test)", fontsize=9)
        for j, i in enumerate(members):
            config, net, ds = runs.load_run(rows[i]["run_dir"])
            with torch.no_grad():
                log_p = torch.cat(
                    [runs.log_likelihoods(net, ds, config, c)[0] for c in grid.split(8192)]
                )
            dens = torch.nan_to_num(log_p.double().exp(), nan=0.0).reshape(res, res).numpy()
            ax = fig.add_subplot(len(groups), cols, g * cols + j + 2)
            ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="magma")
            ax.set_title(f"{labels[i]} ({rows[i]['model']})", fontsize=9)
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)


def _mosaic(x: torch.Tensor, nrow: int) -> np.ndarray:
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1, dtype=torch.float64)
    for k in range(n):
        r, q = divmod(k, nrow)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[
            k
        ]
    img = canvas.permute(1, 2, 0).numpy()
    return img[..., 0] if c == 1 else img


def _sample_grids(labels: list[str], rows: list[dict[str, Any]], path: Path, n: int = 36):  # noqa: ANN202
    from .data.images import IMAGES
    from .features import intensities
    from .plots import image_shape_of

    images = [i for i, r in enumerate(rows) if r["data"] in IMAGES]
    if not images:
        return None
    fig = _figure(3.0 * len(images), 3.3)
    for j, i in enumerate(images):
        config, net, ds = runs.load_run(rows[i]["run_dir"])
        x = runs.draw_samples(net, ds, config, n, seed=0)
        shape = image_shape_of(ds.shape, ds.name)
        x = intensities(x, ds).double().clamp(0, 1).reshape(-1, *shape)
        ax = fig.add_subplot(1, len(images), j + 1)
        ax.imshow(_mosaic(x, 6), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{labels[i]} ({rows[i]['model']})", fontsize=9)
        ax.set_axis_off()
    return _save(fig, path)


def _curves(labels: list[str], rows: list[dict[str, Any]], path: Path):  # noqa: ANN202
    groups = _groups(rows, lambda r: (Path(r["run_dir"]) / "log.jsonl").is_file())
    if not groups:
        return None
    fig = _figure(6.5, 3.4 * len(groups))
    for g, members in enumerate(groups.values()):
        ax = fig.add_subplot(len(groups), 1, g + 1)
        finite = []
        for i in members:
            steps, loss, vsteps, vloss = [], [], [], []
            for line in (Path(rows[i]["run_dir"]) / "log.jsonl").read_text().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                if entry.get("loss") is not None:
                    steps.append(entry["step"])
                    loss.append(entry["loss"])
                if entry.get("val_loss") is not None:
                    vsteps.append(entry["step"])
                    vloss.append(entry["val_loss"])
            (line_,) = ax.plot(vsteps, vloss, "o-", ms=2, lw=1.5, label=f"{labels[i]} (val)")
            ax.plot(steps, loss, lw=0.7, alpha=0.5, color=line_.get_color())
            finite += [v for v in loss + vloss if v is not None and math.isfinite(v)]
        if finite:
            low, high = np.percentile(finite, [0, 95])
            pad = 0.05 * (high - low + 1e-9)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(
            f"training curves on {rows[members[0]]['data']} (thin: train loss)", fontsize=9
        )
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats, model space)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


_CSS = """
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}
td{white-space:nowrap}
td:first-child{text-align:left}
td.best{font-weight:bold;background:#e8f5e9}
tr.floor td{font-style:italic;color:#555;background:#fafafa}
.scroll{overflow-x:auto}
.warn{background:#fff3e0;border-left:4px solid #fb8c00;padding:6px 10px}
img{max-width:100%;border:1px solid #ddd}
"""


def compare_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path = "report.html",
    title: str = "tractable model comparison",
    plots: bool = True,
) -> dict[str, Any]:
    r"""Write the comparison of ``run_dirs`` to ``out`` (HTML) and ``out`` with suffix
    ``.md`` (Markdown, images in ``<stem>_files/``). Returns the table as JSON-ready data."""
    if isinstance(run_dirs, str | Path) or not run_dirs:
        raise ValueError("run_dirs: expected one or more run directories")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"out: expected a .html path, got {str(out)!r}")
    dirs = [Path(d) for d in run_dirs]
    rows = [_load_row(d) for d in dirs]
    labels = _labels(dirs)
    warnings: list[str] = []
    datasets = sorted({r["data"] for r in rows})
    if len({r["group"] for r in rows}) > 1:
        warnings.append(
            f"The runs use different datasets or splits ({', '.join(datasets)}): NLLs and sample "
            "metrics are comparable only between runs on the same data; best values are marked "
            "per dataset."
        )
    columns = [c for c in COLUMNS if any(c.get(r) is not None for r in rows)]
    best = _best(rows, columns, warnings)
    notes = []
    if any(r["metrics"].get("test_estimator") not in (None, "exact") for r in rows):
        notes.append(
            "† an estimate of the NLL from importance samples (IWAE): in expectation an upper "
            "bound on the true NLL"
        )
    if any(r["kind"] == "discrete" for r in rows):
        notes.append(
            "‡ discrete data: the NLL of the dequantized density, an upper bound on the discrete "
            "NLL (Theis et al. 2016)"
        )
    notes += [text for key, text in _GLOSSARY.items() if key in {c.key for c in columns}]
    extractors = sorted({str(_sm("extractor", "name")(r)) for r in rows if _sm("extractor")(r)})
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
            ("training curves", "curves", _curves),
        ):
            path = fn(labels, rows, files_dir / f"{stem}.png")
            if path is not None:
                pictures.append((name, path))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    md = [f"# {title}", "", f"{len(rows)} runs, {stamp}. Best value per dataset: **bold ★**.", ""]
    md += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    floors = _floor_rows(rows, columns)
    if floors:
        notes.insert(
            0,
            "floor: the same metric for held-out data (the val split) against the test split, "
            "what a perfect model would score with as many samples",
        )
    md += [markdown_table(labels, rows, columns, best, floors), ""]
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
    body.append(_html_table(labels, rows, columns, best, floors))
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
    return {
        "title": title,
        "runs": table,
        "columns": [c.key for c in columns],
        "best": sorted([labels[i], key] for i, key in best),
        "warnings": warnings,
        "notes": notes,
        "html": str(out),
        "markdown": str(md_path),
        "plots": [str(p) for _, p in pictures],
    }

"""The comparison report's newer parts: bounds beside exact NLLs (marked, not ranked, a note under
the table exactly when kinds mix), human-evaluation columns from a database rated by a scripted
rater with known answers, the PCA figure and the sample-metric columns, and the wide table's
layout (horizontal scroll, sticky first column)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tractable import report, runs
from tractable.cli import main
from tractable.humaneval import create_pool, new_session, results, store_answer, wilson_interval
from tractable.report.table import MISSING

NOTE = "are not ranked against exact values as if equal"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    runs.train_run(model="maf", data="8gaussians", steps=20, batch_size=64, n=256, out=out,
                   options={"hidden": [16], "transforms": 2}, progress=False, plots=False,
                   data_options={"n_val": 300, "n_test": 300})  # fmt: skip
    return out


def _copy(base: Path, to: Path, **metrics: object) -> Path:
    shutil.copytree(base, to)
    stored = json.loads((to / "metrics.json").read_text())
    stored.update(metrics)
    (to / "metrics.json").write_text(json.dumps(stored))
    return to


def _split(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]  # not at \|


def _cells(md: str, column: str) -> dict[str, str]:
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| run |"))
    names = _split(header)
    out = {}
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("| "):
            break
        cells = _split(line)
        out[cells[0]] = cells[names.index(column)]
    return out


def test_bounds_beside_exact_nlls(base: Path, tmp_path: Path) -> None:
    exact = {"test_estimate_kind": "exact", "test_estimator": "exact"}
    bound = {"test_estimate_kind": "bound", "test_estimator": "iwae"}
    dirs = [
        _copy(base, tmp_path / "e1", test_nll=3.0, **exact),
        _copy(base, tmp_path / "e2", test_nll=2.5, **exact),
        _copy(base, tmp_path / "b1", test_nll=2.0, **bound),  # below every exact value
        _copy(base, tmp_path / "b2", test_nll=4.0, **bound),
    ]
    res = report.compare_runs(dirs, tmp_path / "mixed.html", plots=False)
    page = (tmp_path / "mixed.html").read_text()
    assert NOTE in page and res["kinds_note"] and NOTE in res["kinds_note"]
    assert re.search(r'<p class="kinds"><b>Note:</b>[^<]*' + NOTE, page)
    assert page.index('<p class="kinds">') > page.index("</table>")  # under the table
    # the best exact value is marked, never the lower bound beside it
    assert [r for r, col in res["best"] if col == "test_nll"] == ["e2"]
    cells = _cells(Path(res["markdown"]).read_text(), "test NLL (nats) ↓")
    assert cells["b1"].startswith("≤ 2.0000") and cells["e1"].startswith("3.0000")
    assert "★" in cells["e2"] and "★" not in cells["b1"]
    assert "b1's bound (2.0000) is below the best exact NLL (2.5000, e2)" in res["kinds_note"]
    assert "b2's bound" not in res["kinds_note"]  # above it: says nothing
    # one exact value and a bound: nothing to rank
    two = report.compare_runs(dirs[1:3], tmp_path / "two.html", plots=False)
    assert not [col for _, col in two["best"] if col == "test_nll"] and two["kinds_note"]
    # one kind only: no note, ranked as usual (bounds among bounds)
    for group, best in ((dirs[:2], "e2"), (dirs[2:], "b1")):
        same = report.compare_runs(group, tmp_path / "same.html", plots=False)
        assert same["kinds_note"] is None and NOTE not in (tmp_path / "same.html").read_text()
        assert [r for r, col in same["best"] if col == "test_nll"] == [best]


def _rate(db: Path, choose) -> None:  # noqa: ANN001 - choose(task, left, right) -> choice
    session, csrf = new_session(db)
    with sqlite3.connect(db) as con:
        plan = con.execute(
            "SELECT i.pos, i.task, l.source, r.source FROM items i JOIN images l ON "
            "l.id = i.left_image LEFT JOIN images r ON r.id = i.right_image WHERE session = ? "
            "ORDER BY pos", (session,)
        ).fetchall()  # fmt: skip
    for pos, task, left, right in plan:
        store_answer(db, session, csrf, pos, choose(task, left, right))


def test_human_eval_columns(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dirs = [_copy(base, tmp_path / name) for name in ("good", "poor", "unrated")]
    rng = np.random.default_rng(0)
    images = {m: rng.uniform(size=(6, 1, 8, 8)) for m in ("good", "poor")}
    db = tmp_path / "he.sqlite"
    create_pool(db, images, rng.uniform(size=(8, 1, 8, 8)), noise=4, turing=3, pairs=4, checks=2)

    def choose(task: str, left: str, right: str | None) -> str:
        if task == "turing":  # 'good' always passes for real, 'poor' never; real images do
            return "real" if left in ("good", "real") else "generated"
        return "left" if left in ("good", "real") else "right"  # 'good' wins, real beats noise

    _rate(db, choose)
    _rate(db, choose)
    assert main(["compare", *map(str, dirs), "--out", str(tmp_path / "h.html"), "--no-plots",
                 "--human-eval", str(db), "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert {"fooled", "bt"} <= set(res["columns"])
    by_run = {r["run"]: r for r in res["runs"]}
    assert by_run["good"]["fooled"] == 1.0 and by_run["poor"]["fooled"] == 0.0
    assert by_run["unrated"]["fooled"] is None and by_run["unrated"]["bt"] is None
    assert by_run["good"]["bt"] > 0 > by_run["poor"]["bt"]
    assert ["good", "fooled"] in res["best"] and ["good", "bt"] in res["best"]
    md = Path(res["markdown"]).read_text()
    fooled = _cells(md, "fooled (human) ↑")
    low, high = wilson_interval(6, 6)  # 3 images per session, 2 sessions
    assert fooled["good"] == f"**1.00 [{low:.2f}, {high:.2f}] (6/6) ★**"
    low, high = wilson_interval(0, 6)
    assert fooled["poor"] == f"0.00 [{low:.2f}, {high:.2f}] (0/6)"
    assert fooled["unrated"] == MISSING and _cells(md, "Bradley–Terry ↑")["unrated"] == MISSING
    bt = results(db)["bradley_terry"]["good"]
    assert _cells(md, "Bradley–Terry ↑")["good"].startswith(
        f"**{bt['score']:+.2f} [{bt['low']:+.2f}, {bt['high']:+.2f}]"
    )
    floor = next(line for line in md.splitlines() if line.startswith("| *floor"))
    assert "*1.00*" in floor  # real images: every one judged real
    assert any("2 rater session(s)" in n and "good, poor" in n for n in res["notes"])
    # a database of other models: no column filled, said in the notes
    other = tmp_path / "other.sqlite"
    create_pool(other, {"x": images["good"], "y": images["poor"]}, images["poor"], noise=2)
    plain = report.compare_runs(dirs, tmp_path / "o.html", plots=False, human_eval=results(other))
    assert "fooled" not in plain["columns"] and any("without a run" in n for n in plain["notes"])
    assert main(["compare", str(dirs[0]), "--out", str(tmp_path / "x.html"),
                 "--human-eval", str(tmp_path / "none.sqlite")]) == 2  # fmt: skip
    assert "db: " in capsys.readouterr().err


@pytest.mark.slow
def test_pca_figure_and_sample_columns(base: Path, tmp_path: Path) -> None:
    dirs = [_copy(base, tmp_path / "p"), _copy(base, tmp_path / "q"), _copy(base, tmp_path / "r")]
    for d in dirs[:2]:
        runs.evaluate_run(runs.Run.load(d), "pca,birthday,memorisation", n=300)
    res = report.compare_runs(dirs, tmp_path / "cmp" / "report.html")
    assert {"pca_fd", "support", "dup", "memo"} <= set(res["columns"])
    pca = [p for p in res["plots"] if p.endswith("pca.png")]
    assert len(pca) == 1 and Path(pca[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(n.startswith("PCA figure: not for r ") for n in res["notes"])
    page = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(res["plots"]) and all(
        base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG" for s in sources
    )
    assert "<h2>PCA: data and samples in the data&#x27;s first two principal components</h2>" in (
        page
    )
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", page)
    assert "http" not in text.lower() and "//" not in text and "url(" not in text
    # the wide table scrolls sideways with its first column held in place
    assert '<div class="scroll"><table>' in page and "overflow-x:auto" in page
    assert re.search(r"th:first-child,td:first-child\{position:sticky;left:0", page)
    by_run = {r["run"]: r for r in res["runs"]}
    assert by_run["p"]["support"]["estimate"] > 0 and by_run["r"]["support"] is None
    md = _cells(Path(res["markdown"]).read_text(), "support (birthday)")
    assert md["r"] == MISSING and (md["p"].startswith("> ") or "(s=" in md["p"])
    stored = json.loads((dirs[0] / "metrics.json").read_text())["sample_metrics"]["pca"]
    assert by_run["p"]["pca_fd"] == stored["plane"]["frechet"]


def test_markdown_escapes_a_pipe_in_a_header(base: Path, tmp_path: Path) -> None:
    run = _copy(base, tmp_path / "c", test_nll_conditional=1.5)
    res = report.compare_runs([run], tmp_path / "c.html", plots=False)
    md = Path(res["markdown"]).read_text()
    header = next(line for line in md.splitlines() if line.startswith("| run |"))
    assert "test NLL \\| class (nats) ↓" in header
    assert len(_split(header)) == len(res["columns"]) + 1  # one cell per column
    assert _cells(md, "test NLL \\| class (nats) ↓")["c"].startswith("1.5000")


def test_flat_and_image_views_of_one_dataset_are_one_group(base: Path, tmp_path: Path) -> None:
    # the same data seen as (C, H, W) images by one model and flat by another: one group,
    # no "different datasets" warning; a different seed still makes another group
    image = _copy(base, tmp_path / "image")
    config = json.loads((image / "config.json").read_text())
    config["data"]["dataset"]["options"] = {**config["data"]["dataset"]["options"], "image": True}
    (image / "config.json").write_text(json.dumps(config))
    rows = [report.compare.load_row(p) for p in (base, image)]
    assert rows[0]["group"] == rows[1]["group"]
    config["data"]["dataset"]["seed"] = 7
    (image / "config.json").write_text(json.dumps(config))
    assert report.compare.load_row(image)["group"] != rows[0]["group"]


def test_a_run_with_only_the_trainers_summary_shows_its_size_and_time(
    base: Path, tmp_path: Path
) -> None:
    # the final evaluation of a costly run was stopped: metrics.json holds the fit summary
    cut = _copy(base, tmp_path / "cut")
    stored = json.loads((cut / "metrics.json").read_text())
    full = report.compare.load_row(base)["metrics"]
    summary = {k: v for k, v in stored.items() if k not in ("params", "train_seconds")}
    (cut / "metrics.json").write_text(json.dumps(summary))
    row = report.compare.load_row(cut)["metrics"]
    assert row["params"] == full["params"] and row["train_seconds"] == stored["seconds"]


def test_a_tie_of_every_run_marks_none(base: Path, tmp_path: Path) -> None:
    dirs = [_copy(base, tmp_path / n, test_nll=2.5) for n in ("t1", "t2", "t3")]
    res = report.compare_runs(dirs, tmp_path / "tie.html", plots=False)
    assert not [r for r, col in res["best"] if col == "test_nll"]  # all equal: no best
    _copy(base, tmp_path / "t4", test_nll=2.4)
    res = report.compare_runs([*dirs, tmp_path / "t4"], tmp_path / "t.html", plots=False)
    assert [r for r, col in res["best"] if col == "test_nll"] == ["t4"]

"""Comparison reports (`tractable compare`): table, best marks, warnings, self-contained HTML."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from tractable import report, runs
from tractable.cli import main
from tractable.report.compare import run_labels

TINY = {"hidden": [16], "transforms": 2}


def _train(out: Path, data: str, model: str = "maf", steps: int = 20, **kw: object) -> Path:
    runs.train_run(
        model=model, data=data, steps=steps, batch_size=64, n=256, out=out, options=TINY,
        progress=False, plots=False, **kw,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    small = {"data_options": {"n_val": 300, "n_test": 300}}
    return [
        _train(root / "a", "8gaussians", "maf", 40, **small),
        _train(root / "b", "8gaussians", "realnvp", 10, **small),
        _train(root / "c", "digits", "maf", 5),
    ]


def _nll_cell(md: str, run: str) -> str:
    row = next(line for line in md.splitlines() if line.startswith(f"| {run} |"))
    header = next(line for line in md.splitlines() if line.startswith("| run |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    return cells[names.index("test NLL (nats) ↓")]


@pytest.mark.slow
def test_report_is_self_contained(trio: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp" / "report.html"
    result = report.compare_runs(trio, out)
    page = out.read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", page)
    assert "http" not in text.lower() and "//" not in text  # no external reference of any kind
    assert len(sources) == len(result["plots"]) == 3  # densities, samples, curves
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page and "url(" not in page
    md = Path(result["markdown"]).read_text()
    assert md.count("](report_files/") == 3
    assert all(Path(p).is_file() for p in result["plots"])
    # two datasets: warned, and best values are marked per dataset
    assert "different datasets" in result["warnings"][0] and "Warning" in md
    nll = {r["run"]: r["test_nll"] for r in result["runs"]}
    best_toy = min(("a", "b"), key=nll.get)
    other = "b" if best_toy == "a" else "a"
    assert "★" in _nll_cell(md, best_toy) and "★" not in _nll_cell(md, other)
    assert "★" not in _nll_cell(md, "c")  # alone on its dataset: nothing to compare with
    assert "‡" in _nll_cell(md, "c") and ["c", "test_bpd"] not in result["best"]
    assert [best_toy, "test_nll"] in result["best"]
    assert {"model", "params", "test_nll", "test_bpd"} <= set(result["columns"])
    assert "fid" not in result["columns"]  # no sample metrics yet


def test_same_data_no_warning_and_no_plots(trio: list[Path], tmp_path: Path) -> None:
    result = report.compare_runs(trio[:2], tmp_path / "r.html", plots=False)
    assert result["warnings"] == [] and result["plots"] == []
    assert "<img" not in (tmp_path / "r.html").read_text()
    assert "test_bpd" not in result["columns"]  # continuous data have no bits/dim


def test_sample_metrics_and_extractor_mismatch(trio: list[Path], tmp_path: Path) -> None:
    copies = []
    for name, extractor, fid in (("x", "classifier:digits", 3.0), ("y", "raw", 1.0)):
        run = tmp_path / name
        shutil.copytree(trio[0], run)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["sample_metrics"] = {
            "extractor": {"name": "raw"},  # the last extractor used; each metric has its own
            "fid": {"value": fid, "extractor": extractor},
            "wasserstein": {"w1": fid / 10},
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
        copies.append(run)
    result = report.compare_runs(copies, tmp_path / "m.html", plots=False)
    assert {"fid", "w1"} <= set(result["columns"])
    assert ["y", "w1"] in result["best"]  # extractor-free metric: marked
    assert not any(col == "fid" for _, col in result["best"])  # different extractors: not
    assert any("different feature extractors" in w for w in result["warnings"])


def test_bad_input(trio: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run_dirs: expected one or more"):
        report.compare_runs([], tmp_path / "r.html")
    with pytest.raises(ValueError, match=r"out: expected a \.html path"):
        report.compare_runs(trio[:1], tmp_path / "r.pdf")
    with pytest.raises(FileNotFoundError, match="holds no run"):
        report.compare_runs([tmp_path], tmp_path / "r.html")
    unfinished = tmp_path / "u"
    shutil.copytree(trio[0], unfinished)
    (unfinished / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        report.compare_runs([unfinished], tmp_path / "r.html")


def test_labels_are_unique(tmp_path: Path) -> None:
    assert run_labels([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    assert run_labels([tmp_path / "p" / "run", tmp_path / "q" / "run"]) == ["p/run", "q/run"]
    assert run_labels([tmp_path / "r", tmp_path / "r"]) == [
        f"1:{tmp_path.name}/r",
        f"2:{tmp_path.name}/r",
    ]


def test_cli(trio: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.html"
    argv = ["compare", *map(str, trio[:2]), "--out", str(out), "--no-plots", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["html"] == str(out) and out.is_file() and out.with_suffix(".md").is_file()
    assert main(["compare", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tractable: error: run_dir:") and len(err.strip().splitlines()) == 1

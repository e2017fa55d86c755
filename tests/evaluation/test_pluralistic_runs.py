"""`tractable eval RUN --metrics pluralistic` on tiny digits runs: a class-conditional run stores
the pluralistic diversity of its samples per class; an unconditional run is told it has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tractable import metrics as tm
from tractable import runs
from tractable.cli import main
from tractable.runs import Run


def _train(out: Path, conditional: bool) -> Path:
    runs.train_run(model="maf", data="digits", steps=5, batch_size=64, n=256, out=out,
                   options={"hidden": [16], "transforms": 2}, conditional=conditional,
                   progress=False, plots=False)  # fmt: skip
    return out


@pytest.mark.slow
def test_pluralistic_of_a_conditional_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _train(tmp_path / "cond", conditional=True)
    argv = ["eval", str(run_dir), "--metrics", "pluralistic,birthday", "--extractor", "raw"]
    assert main([*argv, "--n", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    p = out["pluralistic"]
    run = Run.load(run_dir)
    m = int(run.dataset.test_labels.bincount().min())
    assert p["m"] == m and p["classes"] == 10 and p["space"] == "raw"
    # the same samples by hand: 50 per class, class by class, the first m of each, intensities
    x = run.preprocess.intensities(run.sample(50, seed=0)).reshape(10, 50, 64)[:, :m]
    assert p["value"] == pytest.approx(tm.pluralistic_diversity(x.double().numpy()), rel=1e-9)
    assert p["data"] > 0 and out["birthday"]["batch"] == 100  # the other metric ran too
    stored = json.loads((run_dir / "metrics.json").read_text())["sample_metrics"]
    assert stored["pluralistic"]["value"] == p["value"] and "birthday" in stored
    assert main(["eval", str(run_dir), "--metrics", "pluralistic", "--extractor", "raw"]) == 0
    assert "pluralistic diversity (raw, " in capsys.readouterr().out

    flat = _train(tmp_path / "flat", conditional=False)
    assert main(["eval", str(flat), "--metrics", "pluralistic"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(
        "tractable: error: --metrics: pluralistic diversity is defined for class-conditional runs"
    )
    assert main(["eval", str(flat), "--metrics", "pluralistic,pca", "--n", "50", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert "pluralistic" not in res and "pca" in res
    assert any("class-conditional runs only" in n for n in res["notes"])
    assert torch.isfinite(torch.tensor(res["pca"]["plane"]["frechet"]))

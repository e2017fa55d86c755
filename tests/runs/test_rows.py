"""Likelihoods of a random subset of a split (Run.estimate(rows=N), tractable eval --rows)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tractable import runs
from tractable.cli import main
from tractable.runs import Run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rows") / "run"
    runs.train_run(model="maf", data="moons", steps=20, n=600, out=out, progress=False,
                   options={"hidden": [8], "transforms": 2}, plots=False)  # fmt: skip
    return out


def test_a_subset_is_a_seeded_sample_of_the_split(run_dir: Path) -> None:
    run = Run.load(run_dir)
    whole = run.estimate("test")
    part = run.estimate("test", rows=25)
    again = run.estimate("test", rows=25)
    assert part == again  # the same rows every time
    n = whole.get("test_rows", None)
    assert n is None and part["test_rows"] == 25 and part["test_rows_of"] == 5000
    # the subset's NLL is the mean of those rows' values, its se their standard error
    y, ladj = run.setup.model_space("test")
    g = torch.Generator().manual_seed(runs.run.EVAL_SEED)
    keep = torch.randperm(y.shape[0], generator=g)[:25].sort().values
    values = -run.log_likelihood(run.dataset.split("test")[keep])[0].double()
    assert part["test_nll"] == pytest.approx(float(values.mean()), rel=1e-6)
    assert part["test_nll_se"] == pytest.approx(float(values.std()) / math.sqrt(25), rel=1e-6)
    # as many rows as the split, or more: the whole split
    full = run.estimate("test", rows=10**6)
    assert full["test_nll"] == whole["test_nll"] and "test_rows_of" not in full
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="rows"):
            run.estimate("test", rows=bad)  # type: ignore[arg-type]


def test_cli_rows_fills_a_missing_result_and_never_replaces_one(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_path = run_dir / "metrics.json"
    original = json.loads(metrics_path.read_text())
    assert main(["eval", str(run_dir), "--rows", "10"]) == 0
    assert "10 random examples of 5000" in capsys.readouterr().out
    after = json.loads(metrics_path.read_text())
    assert after["test_nll"] == original["test_nll"]  # the whole split's result stays
    assert "test:default-rows10" in after["evaluations"]
    # a run whose final evaluation was cut short: the subset's result becomes the run's
    cut = {k: v for k, v in original.items() if not k.startswith("test_")}
    metrics_path.write_text(json.dumps(cut))
    assert main(["eval", str(run_dir), "--rows", "10"]) == 0
    filled = json.loads(metrics_path.read_text())
    assert filled["test_rows"] == 10 and filled["test_rows_of"] == 5000
    assert main(["eval", str(run_dir), "--rows", "0"]) == 2
    assert "--rows: expected an int >= 1, got 0" in capsys.readouterr().err

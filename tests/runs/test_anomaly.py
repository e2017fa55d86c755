"""Anomaly scores of runs (`tractable score`) and the per-example log-likelihoods behind them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tractable import runs
from tractable.cli import main
from tractable.runs import Run, anomaly

TINY = {"hidden": [16], "transforms": 2}


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gauss")
    rng = np.random.default_rng(0)
    np.savetxt(root / "normal.csv", rng.normal(size=(1500, 2)), delimiter=",", header="a,b")
    out = root / "run"
    runs.train_run(
        model="maf", data=str(root / "normal.csv"), steps=150, batch_size=128, lr=3e-3,
        out=out, options=TINY, progress=False, plots=False,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def planted(gaussian_run: Path) -> Path:
    # 300 normal rows and 30 far outliers (radius 6 to 8), labelled 1
    rng = np.random.default_rng(1)
    normal = rng.normal(size=(300, 2))
    angle = rng.uniform(0, 2 * np.pi, 30)
    radius = rng.uniform(6, 8, 30)
    outliers = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    table = np.c_[np.r_[normal, outliers], np.r_[np.zeros(300), np.ones(30)]]
    path = gaussian_run.parent / "planted.csv"
    np.savetxt(path, table, delimiter=",", header="a,b,anomaly", comments="")
    return path


@pytest.mark.slow
def test_planted_outliers_are_found(gaussian_run: Path, planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = anomaly.score_run(gaussian_run, planted, labels_column="anomaly", out=out)
    assert result["n"] == 330 and result["n_anomalies"] == 30
    assert result["auroc"] > 0.99 and result["auprc"] > 0.95
    assert result["flag_recall"] == 1.0  # every far outlier is below the 1% quantile
    assert 30 <= result["n_flagged"] <= 40  # plus about 1% of the 300 normal rows
    lines = out.read_text().splitlines()
    assert lines[0] == "row,log_likelihood,anomaly,label" and len(lines) == 331
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table[:, 2].sum() == result["n_flagged"]
    assert (table[table[:, 2] == 1, 1] < result["threshold"]).all()
    # the labels column can be given by index too, and the default output goes in the run
    by_index = anomaly.score_run(gaussian_run, planted, labels_column="-1")
    assert by_index["auroc"] == result["auroc"]
    assert Path(by_index["out"]) == gaussian_run / "scores-planted.csv"


def test_threshold_is_the_validation_quantile(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runs.train_run(
        model="maf", data="8gaussians", steps=20, batch_size=64, n=256, out=out, options=TINY,
        data_options={"n_val": 400, "n_test": 300}, progress=False, plots=False,
    )  # fmt: skip
    # scoring the validation split itself flags exactly the rows below its 10% quantile
    result = anomaly.score_run(out, "8gaussians", split="val", threshold_quantile=0.1)
    assert result["n"] == 400 and result["n_flagged"] == 40
    assert result["data"] == "8gaussians (val split)" and "auroc" not in result
    run = Run.load(out)
    ll, kind = run.log_likelihood(run.dataset.test)
    assert kind == "exact"
    metrics = json.loads((out / "metrics.json").read_text())
    assert -float(ll.mean()) == pytest.approx(metrics["test_nll"], rel=1e-10)


def test_discrete_log_likelihoods_match_the_reported_nll(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    runs.train_run(
        model="maf", data="digits", steps=5, batch_size=64, out=out, options=TINY,
        progress=False, plots=False,
    )  # fmt: skip
    run = Run.load(out)
    ds = run.dataset
    ll, _ = run.log_likelihood(ds.test)
    metrics = json.loads((out / "metrics.json").read_text())
    # -mean includes D log L: the dequantized NLL bound of metrics.json, not the [0,1] density
    assert -float(ll.mean()) == pytest.approx(metrics["test_nll"], rel=1e-10)
    rows = tmp_path / "rows.npy"
    np.save(rows, ds.test[:7].numpy().reshape(7, 1, 8, 8))
    result = anomaly.score_run(out, rows)
    assert result["n"] == 7
    assert result["mean_log_likelihood"] == pytest.approx(float(ll[:7].mean()), rel=1e-10)
    np.save(rows, ds.test[:3].numpy() + 0.5)
    with pytest.raises(ValueError, match="expected raw integer values in 0..16"):
        anomaly.score_run(out, rows)


def test_conditional_runs_are_marginalised(tmp_path: Path) -> None:
    out = tmp_path / "cond"
    runs.train_run(
        model="maf", data="digits", steps=5, batch_size=64, out=out, options=TINY,
        conditional=True, progress=False, plots=False,
    )  # fmt: skip
    run = Run.load(out)
    net, ds = run.model, run.dataset
    x = ds.test[:5]
    ll, _ = run.log_likelihood(x)
    # by hand: log sum_c p(c) p(x | c), with p(c) the training class frequencies
    y, ladj = run.preprocess.eval(x, torch.Generator().manual_seed(runs.EVAL_SEED))
    prior = torch.bincount(ds.train_labels, minlength=10).double() / ds.train_labels.numel()
    with torch.no_grad():
        joint = (
            torch.stack([net.log_prob(y, torch.eye(10)[c].expand(5, 10)) for c in range(10)], 1)
            + prior.log()
        )
    expected = torch.logsumexp(joint, 1) + ladj - 64 * np.log(17)
    torch.testing.assert_close(ll, expected)
    draws = run.sample(25, seed=3, per_class=False)
    assert draws.shape == (25, 64)
    # metrics.json: the marginal NLL under test_nll (what score and compare use), the NLL given
    # the true class under its own key (they were one and the same key before)
    metrics = json.loads((out / "metrics.json").read_text())
    full, _ = run.log_likelihood(ds.test)
    assert metrics["test_nll"] == pytest.approx(-float(full.mean()), rel=1e-10)
    given, _ = run.log_likelihood(ds.test, labels=ds.test_labels)
    assert metrics["test_nll_conditional"] == pytest.approx(-float(given.mean()), rel=1e-10)
    assert metrics["test_nll_conditional"] != pytest.approx(metrics["test_nll"], abs=1e-3)
    assert "test_bpd_conditional" in metrics


def test_bad_input(gaussian_run: Path, planted: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected 2 values per row .* got 3"):
        anomaly.score_run(gaussian_run, planted)
    with pytest.raises(ValueError, match="no column named 'label'"):
        anomaly.score_run(gaussian_run, planted, labels_column="label")
    with pytest.raises(ValueError, match=r"threshold_quantile: expected a float in \(0, 1\)"):
        anomaly.score_run(gaussian_run, planted, labels_column=2, threshold_quantile=0.0)
    with pytest.raises(FileNotFoundError, match="no such file"):
        anomaly.score_run(gaussian_run, tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="named dataset has class labels"):
        anomaly.score_run(gaussian_run, "moons", labels_column=0)
    bad = tmp_path / "bad.csv"
    np.savetxt(bad, np.c_[np.zeros((4, 2)), [0, 1, 2, 1]], delimiter=",")
    with pytest.raises(ValueError, match=r"expected 0 \(normal\) and 1 \(anomaly\)"):
        anomaly.score_run(gaussian_run, bad, labels_column=2)
    one_class = tmp_path / "one.csv"
    np.savetxt(one_class, np.zeros((4, 3)), delimiter=",")
    result = anomaly.score_run(gaussian_run, one_class, labels_column=2)
    assert "auroc" not in result and "one class" in result["note"]


def test_cli(
    gaussian_run: Path, planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.csv"
    argv = ["score", str(gaussian_run), "--data", str(planted), "--labels-column", "anomaly"]
    assert main([*argv, "--out", str(out), "--threshold-quantile", "0.05", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["auroc"] > 0.99 and out.is_file() and result["threshold_quantile"] == 0.05
    assert main(argv[:4]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tractable: error: data: expected 2 values per row")
    assert len(err.strip().splitlines()) == 1

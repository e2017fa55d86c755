"""Sample metrics of runs (`tractable eval RUN --metrics ...`), on tiny runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tractable import evaluation, runs
from tractable.cli import main
from tractable.evaluation import features
from tractable.evaluation import functions as fn
from tractable.runs import Run

SMALL = {"n_val": 400, "n_test": 400}
TINY = {"hidden": [16], "transforms": 2}


def _train(out: Path, data: str, **kw: object) -> Path:
    opts = {
        "model": "maf",
        "data": data,
        "steps": 40,
        "batch_size": 64,
        "n": 512,
        "out": out,
        "options": TINY,
        "progress": False,
        "plots": False,
    }
    opts.update(kw)
    runs.train_run(**opts)
    return out


def evaluate(run_dir: Path, metrics: str, **kw: object) -> dict:
    return runs.evaluate_run(Run.load(run_dir), metrics, **kw)


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toys")
    return {name: _train(root / name, name, data_options=SMALL) for name in ("8gaussians", "moons")}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("digits")
    run = _train(root / "run", "digits", n=None, steps=20)
    features.train_extractor("digits", root=root / "features", steps=30, progress=False)
    return run, root / "features"


def test_parse_metrics() -> None:
    assert evaluation.parse_metrics("all") == list(evaluation.METRICS)
    assert evaluation.parse_metrics(["KL", " modes", "kl"]) == ["kl", "modes"]
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['fidd'\]; valid: fid, kid"):
        evaluation.parse_metrics("fidd,kid")
    with pytest.raises(ValueError, match="metrics: expected"):
        evaluation.parse_metrics(" , ")


def test_mixture_target_density_integrates_to_one() -> None:
    # the exact targets of the kl metric are normalised densities
    for name, std in (("8gaussians", 0.5 / 1.414), ("grid25", 0.05)):
        log_p = fn.mixture_log_density(name, std)
        h = std / 2  # the midpoint rule is exact to ~exp(-2 pi^2 std^2 / h^2) on a Gaussian
        ticks = torch.arange(-5.0, 5.0, h, dtype=torch.float64) + h / 2
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        mass = float(log_p(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().sum()) * h * h
        assert mass == pytest.approx(1.0, abs=1e-6)


def test_kde_on_grid_matches_the_exact_sum() -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.randn(300, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.3])
    h = torch.tensor([0.2, 0.05], dtype=torch.float64)
    bounds = [(-5.0, 5.0), (-2.0, 2.0)]
    log_p = fn.kde_grid_density(data, h, bounds, 60)
    centres = [
        lo + (torch.arange(60, dtype=torch.float64) + 0.5) * (hi - lo) / 60 for lo, hi in bounds
    ]
    gx, gy = torch.meshgrid(*centres, indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)
    exact = fn.kde_logsumexp(grid, data, h)
    # far corners underflow the separable product and are recomputed: all finite, all exact
    assert torch.isfinite(log_p(grid)).all()
    torch.testing.assert_close(log_p(grid), exact, rtol=0, atol=1e-9)
    off = grid[:50] + 0.013  # points off the grid are evaluated exactly
    torch.testing.assert_close(log_p(off), fn.kde_logsumexp(off, data, h))
    # likelihood cross-validation picks a factor from the list
    h_cv, factor = fn.kde(data, data.flip(0), seed=0)
    assert factor in fn.KDE_FACTORS and h_cv.shape == (2,)


@pytest.mark.slow
def test_toy_metrics_are_stored(toy_runs: dict[str, Path]) -> None:
    run = toy_runs["8gaussians"]
    result = evaluate(run, "modes,kl,wasserstein,pca,fid,prd,birthday", n=600)
    assert result["n_samples"] == 600 and result["extractor"]["name"] == "raw"
    modes = result["modes"]
    assert modes["n_modes"] == 8 and 0 <= modes["modes_captured"] <= 8
    assert modes["data_fraction_high_quality"] > 0.97  # 3 sigma in 2D holds 98.9%
    kl = result["kl"]
    assert kl["target"] == "exact mixture density"
    assert kl["mass_data"] == pytest.approx(1.0, abs=1e-3)
    assert all(math.isfinite(kl[k]) and kl[k] >= 0 for k in ("kl_data_model", "kl_model_data"))
    assert 0 <= kl["js"] <= math.log(2)
    assert result["wasserstein"]["w1"] > 0 and result["wasserstein"]["floor"] > 0
    assert Path(result["pca"]["plot"]).is_file()
    assert result["fid"]["extractor"] == "raw" and result["fid"]["floor"] >= 0
    stored = json.loads((run / "metrics.json").read_text())["sample_metrics"]
    assert stored["modes"] == json.loads(json.dumps(modes))
    assert "test_nll" in json.loads((run / "metrics.json").read_text())
    # a later evaluation adds to what is stored
    evaluate(run, "pca", n=200)
    stored = json.loads((run / "metrics.json").read_text())["sample_metrics"]
    assert stored["kl"]["n_samples"] == 600 and stored["pca"]["n_samples"] == 200


def test_a_perfect_sampler_scores_near_its_floor(toy_runs: dict[str, Path]) -> None:
    # samples drawn from the data distribution itself: W1 and FID match their floors
    run = Run.load(toy_runs["8gaussians"])
    e = evaluation.Comparison(run.sample(400, per_class=False), run.dataset, "test", 0)
    e.samples = e.floor.clone()
    e.set_extractor("raw", None)
    w = fn.wasserstein(e)
    assert w["w1"] == pytest.approx(w["floor"], rel=1e-9)
    fid = fn.fid(e)
    assert fid["value"] == pytest.approx(fid["floor"], rel=1e-9)


def test_moons_skips_modes_and_uses_a_kde(toy_runs: dict[str, Path]) -> None:
    result = evaluate(toy_runs["moons"], "modes,kl,is", n=300, write=False)
    assert "modes" not in result and "is" not in result
    assert any("no point modes" in note for note in result["notes"])
    assert any("Inception Score needs a classifier" in note for note in result["notes"])
    assert result["kl"]["target"].startswith("Gaussian KDE of the test split")


@pytest.mark.slow
def test_image_metrics_with_a_classifier(digits_run: tuple[Path, Path]) -> None:
    run, root = digits_run
    result = evaluate(run, "all", n=200, features_root=root)
    assert result["extractor"]["name"] == "classifier:digits"
    for name in ("fid", "kid", "prd", "is"):
        assert result[name]["extractor"] == "classifier:digits"
    assert 1.0 <= result["is"]["mean"] <= 10.0 and 1.0 <= result["is"]["data"] <= 10.0
    assert result["modes"]["n_classes"] == 10
    assert abs(sum(result["modes"]["class_fractions"]) - 1) < 1e-12
    assert Path(result["birthday"]["plot"]).is_file() and result["birthday"]["batch"] == 179
    assert "kl" not in result and "wasserstein" not in result
    pixels = evaluate(
        run, "fid", n=200, extractor="raw", features_root=root, write=False
    )
    assert pixels["extractor"]["name"] == "raw" and pixels["fid"]["extractor"] == "raw"


@pytest.mark.slow
def test_binary_vae_samples_are_binary(tmp_path: Path) -> None:
    run = _train(
        tmp_path / "vae",
        "digits-binary",
        model="vae",
        n=None,
        steps=5,
        options={"latent": 4, "hidden": [16]},
    )
    x = Run.load(run).sample(50, seed=1, per_class=False)
    assert x.shape == (50, 64) and set(torch.unique(x).tolist()) <= {0.0, 1.0}
    result = evaluate(run, "birthday,pca", n=100, write=False)
    assert result["birthday"]["batch"] == 100


def test_bad_input(toy_runs: dict[str, Path], tmp_path: Path) -> None:
    run = toy_runs["8gaussians"]
    with pytest.raises(ValueError, match="n: expected an int >= 10"):
        evaluate(run, "pca", n=5)
    with pytest.raises(ValueError, match="split: expected 'test' or 'val'"):
        evaluate(run, "pca", split="train")
    with pytest.raises(ValueError, match="extractor: 'classifier' embeds images"):
        evaluate(run, "fid", extractor="classifier", n=100)
    with pytest.raises(FileNotFoundError, match="holds no run"):
        evaluate(tmp_path, "pca")


def test_missing_classifier_says_how_to_train_it(
    digits_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = digits_run
    with pytest.raises(FileNotFoundError, match="tractable features train --data digits"):
        evaluate(run, "fid", n=50, features_root=tmp_path / "empty")


def test_cli(toy_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run = str(toy_runs["8gaussians"])
    assert main(["eval", run, "--metrics", "modes,pca", "--n", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modes"]["n_modes"] == 8
    assert main(["eval", run, "--metrics", "modes", "--n", "200"]) == 0
    assert "modes:" in capsys.readouterr().out
    for argv, message in (
        (["--metrics", "fid,nope"], "unknown metric(s) ['nope']; valid: fid, kid, prd, is"),
        (["--n", "100"], "--n: applies to sample metrics"),
        (["--metrics", "kl", "--split", "train"], "--split: sample metrics"),
        (["--metrics", "kl", "--k", "3"], "--estimator/--k"),
    ):
        assert main(["eval", run, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tractable: error: ") and message in err
        assert len(err.strip().splitlines()) == 1
    # the NLL evaluation still works as before
    assert main(["eval", run, "--json"]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["test_nll"])


def test_memorisation_tells_a_copier_from_a_generaliser(toy_runs: dict[str, Path]) -> None:
    run = Run.load(toy_runs["moons"])
    ds = run.dataset
    # samples that are training examples: every one is nearer than any held-out example
    copier = evaluation.Comparison(ds.train[:300].clone(), ds, "test", 0)
    assert fn.memorisation(copier)["fraction_closer"] == 1.0
    # held-out data themselves: about the quantile (1%) by construction, within sampling noise
    fresh = evaluation.Comparison(ds.val.clone(), ds, "test", 0)
    assert fn.memorisation(fresh)["fraction_closer"] < 0.05
    result = evaluate(toy_runs["moons"], "memorisation", n=300, write=False)
    assert 0.0 <= result["memorisation"]["fraction_closer"] <= 1.0
    assert result["samples_per_second"] > 0

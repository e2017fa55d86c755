"""The Run object and the run set-up: defaults that follow the data, preprocessing stored in
the run, the protocol used instead of model names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tractable import runs
from tractable.runs import Run

TINY_VAE = {"latent": 2, "hidden": [8]}


def _train(out: Path, model: str, data: str, **kw: object) -> dict:
    opts = {"steps": 3, "batch_size": 32, "out": out, "progress": False, "plots": False}
    opts.update(kw)
    return runs.train_run(model=model, data=data, **opts)


@pytest.mark.parametrize("decoder", ["logistic", "logistic_mixture", "categorical"])
def test_vae_grid_decoders_train_on_discrete_images(tmp_path: Path, decoder: str) -> None:
    # these decoders model the mass on the grid i / (L - 1): the run must not dequantize
    m = _train(tmp_path / decoder, "vae", "digits", options={**TINY_VAE, "decoder": decoder})
    assert math.isfinite(m["test_nll"]) and m["test_estimate_kind"] == "bound"
    run = Run.load(tmp_path / decoder)
    assert run.preprocess.dequantize is False and run.preprocess.logit is None
    # the grid mass needs no D log L: bits/dim is the NLL over D ln 2
    assert m["test_bpd"] == pytest.approx(m["test_nll"] / (64 * math.log(2)), rel=1e-12)
    x = run.sample(5)
    assert x.shape == (5, 64) and bool(((x >= 0) & (x <= 16) & (x == x.round())).all())


@pytest.mark.parametrize(
    ("data", "decoder"),
    [("digits", "logistic"), ("digits-binary", "bernoulli"), ("moons", "gaussian")],
)
def test_vae_default_decoder_follows_the_data(tmp_path: Path, data: str, decoder: str) -> None:
    m = _train(tmp_path / "run", "vae", data, options=TINY_VAE, n=None if data != "moons" else 256)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["options"]["decoder"] == decoder
    assert math.isfinite(m["test_nll"])


def test_flows_see_discrete_images_in_logit_space(tmp_path: Path) -> None:
    _train(tmp_path / "run", "maf", "digits", options={"transforms": 1, "hidden": [8]})
    prep = Run.load(tmp_path / "run").preprocess
    assert prep.dequantize and prep.logit == 0.05
    # a user's explicit choice wins over the family's default
    _train(
        tmp_path / "raw", "maf", "digits", options={"transforms": 1, "hidden": [8]},
        data_options={"logit": None},
    )  # fmt: skip
    assert Run.load(tmp_path / "raw").preprocess.logit is None


@pytest.mark.parametrize("data", ["digits", "mnist5k"])
def test_image_flow_defaults_fit_the_builtin_images(tmp_path: Path, data: str) -> None:
    # Glow's levels follow the image size (28 x 28 takes 2 squeezes, 8 x 8 takes 3)
    m = _train(
        tmp_path / data, "glow", data, n=64, batch_size=16, steps=1,
        options={"depth": 1, "hidden": 8},
    )  # fmt: skip
    assert math.isfinite(m["test_bpd"])


def test_a_run_samples_and_plots_without_its_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    csv = tmp_path / "points.csv"
    np.savetxt(csv, rng.normal(size=(400, 2)), delimiter=",")
    out = tmp_path / "run"
    _train(out, "maf", str(csv), options={"transforms": 1, "hidden": [8]})
    csv.unlink()  # the data are gone; the preprocessing is stored in the run
    run = Run.load(out)
    assert run.sample(9, seed=1).shape == (9, 2)
    torch.testing.assert_close(run.sample(9, seed=1), run.sample(9, seed=1))
    names = {p.name for p in run.plot()}
    assert {"training_curves.png", "samples.png"} <= names
    with pytest.raises(FileNotFoundError, match="points.csv"):
        run.estimate("test")


def test_estimators_are_the_protocol_vocabulary(tmp_path: Path) -> None:
    _train(tmp_path / "vae", "vae", "digits-binary", options=TINY_VAE)
    run = Run.load(tmp_path / "vae")
    kinds = {
        m: run.estimate("val", method=m, k=4)["val_estimate_kind"] for m in run.model.estimators
    }
    assert kinds == {"iwae": "bound", "importance": "estimate", "elbo": "bound"}
    assert run.estimate("val", method="importance", k=4)["val_estimator"] == "importance"
    with pytest.raises(ValueError, match="offers iwae, importance, elbo, not 'exact'"):
        run.estimate("val", method="exact")
    _train(tmp_path / "maf", "maf", "moons", n=256, options={"transforms": 1, "hidden": [8]})
    flow = Run.load(tmp_path / "maf")
    assert flow.estimate("val")["val_estimate_kind"] == "exact"
    with pytest.raises(ValueError, match="offers exact, not 'iwae'"):
        flow.estimate("val", method="iwae")


def test_refusals_are_one_line_and_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="conditional: model 'vae' takes no context"):
        _train(tmp_path / "a", "vae", "digits", conditional=True)
    with pytest.raises(ValueError, match=r"needs images of shape \(C, H, W\)"):
        _train(tmp_path / "b", "glow", "moons")
    with pytest.raises(ValueError, match="no class labels"):
        _train(tmp_path / "c", "maf", "moons", conditional=True)
    assert not any((tmp_path / d).exists() for d in "abc")
    with pytest.raises(FileNotFoundError, match="holds no run"):
        Run.load(tmp_path)


def test_runs_on_data_with_known_modes_log_their_coverage(tmp_path: Path) -> None:
    _train(
        tmp_path / "run", "maf", "8gaussians", n=256, steps=4,
        options={"transforms": 1, "hidden": [8]}, train_options={"eval_every": 2},
    )  # fmt: skip
    lines = [json.loads(s) for s in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evaluated = [r for r in lines if "val_loss" in r]
    assert len(evaluated) == 2
    assert all(0 <= r["modes_captured"] <= 8 and 0 <= r["high_quality"] <= 1 for r in evaluated)
    # other data have no modes to count
    _train(tmp_path / "moons", "maf", "moons", n=256, options={"transforms": 1, "hidden": [8]})
    assert "modes_captured" not in (tmp_path / "moons" / "log.jsonl").read_text()


def test_mode_count_is_a_monitor_held_to_its_share_of_the_run() -> None:
    # A fake clock and a model whose sampling "takes" a given number of seconds: a count that
    # costs more than the free allowance is skipped while the monitor's total would exceed its
    # share of the time since the start; a cheap count is made at every evaluation.
    from tractable.runs.setup import prepare
    from tractable.runs.training import MODE_LOG_FREE_SECONDS, mode_log

    now = [0.0]
    setup = prepare("maf", "8gaussians", options={"transforms": 1, "hidden": [8]}, n=64)
    model = torch.nn.Module()
    cost = [2.0]

    def sample(n: int) -> torch.Tensor:
        now[0] += cost[0]
        return torch.zeros(n, 2)

    model.sample = sample  # type: ignore[method-assign]
    log = mode_log(setup, share=0.1, clock=lambda: now[0])
    made = []
    for step in range(1, 101):  # an evaluation every 1 s of training
        now[0] += 1.0
        made.append(bool(log(model, step)))
    # the first count always; then only while the counts' 2 s each stay within 10% of the time
    assert made[0] and sum(made) >= 2
    spent = 2.0 * sum(made)
    assert spent <= 0.1 * now[0] + 2.0  # at most one count beyond the share
    assert sum(made) < 20  # without the rule: 100 counts, 200 s of 300
    cost[0] = MODE_LOG_FREE_SECONDS / 2
    log = mode_log(setup, share=0.01, clock=lambda: now[0])
    assert all(log(model, step) for step in range(10))  # cheap counts are always made

"""Sampling settings chosen after training (Run.configure_sampling, --sample-option)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tractable import runs
from tractable.cli import main
from tractable.runs import Run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sampling") / "ddpm"
    runs.train_run(model="ddpm", data="moons", steps=10, n=300, out=out, progress=False,
                   options={"hidden": [16], "steps": 50}, plots=False)  # fmt: skip
    return out


def test_configure_sampling_changes_the_sampler_not_the_weights(run_dir: Path) -> None:
    run = Run.load(run_dir)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert run.configure_sampling({"sampler": "ddim", "sample_steps": 5}) == {
        "sampler": "ddim", "sample_steps": 5}  # fmt: skip
    assert run.model.sampler == "ddim" and run.model.sample_steps == 5
    assert all(bool((before[k] == v).all()) for k, v in run.model.state_dict().items())
    # DDIM with eta = 0 is deterministic given the noise: two runs of one seed agree
    a, b = run.sample(20, seed=3), run.sample(20, seed=3)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="sampler: expected one of"):
        run.configure_sampling({"sampler": "euler"})
    with pytest.raises(ValueError, match="sample_steps"):
        run.configure_sampling({"sample_steps": 0})
    with pytest.raises(ValueError, match="diffusion runs take sampler, sample_steps, eta; got T"):
        run.configure_sampling({"T": 3})


def test_a_model_without_sampling_settings_refuses_any(tmp_path: Path) -> None:
    out = tmp_path / "maf"
    runs.train_run(model="maf", data="moons", steps=5, n=300, out=out, progress=False,
                   options={"hidden": [8], "transforms": 1}, plots=False)  # fmt: skip
    with pytest.raises(ValueError, match="flow runs take none; got sampler"):
        Run.load(out).configure_sampling({"sampler": "ddim"})


def test_cli_sample_option_is_recorded_with_the_metrics(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", str(run_dir), "--metrics", "wasserstein", "--n", "200",
            "--sample-option", "sampler=ddim", "--sample-option", "sample_steps=5"]  # fmt: skip
    assert main(args) == 0
    assert "sampling: sampler=ddim, sample_steps=5" in capsys.readouterr().out
    stored = json.loads((run_dir / "metrics.json").read_text())["sample_metrics"]
    assert stored["sampling"] == {"sampler": "ddim", "sample_steps": 5}
    out = run_dir / "s.npy"
    assert (
        main(
            [
                "sample",
                str(run_dir),
                "-n",
                "7",
                "--out",
                str(out),
                "--sample-option",
                "sampler=ddim",
                "--sample-option",
                "sample_steps=4",
            ]
        )
        == 0
    )
    assert np.load(out).shape == (7, 2)
    assert main(["sample", str(run_dir), "--sample-option", "nope=1"]) == 2

"""`tractable fit` end to end on tiny budgets, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tractable.cli import main

TINY = ["-o", "hidden=[8]", "-o", "transforms=2", "--steps", "30", "--eval-samples", "500"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_u1_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fit"
    code, stdout, _ = run(["fit", "--target", "u1", "--model", "realnvp", *TINY, "--lr", "3e-3",
                           "--out", str(out), "--json"], capsys)  # fmt: skip
    assert code == 0
    result = json.loads(stdout)
    for key in ("elbo", "elbo_se", "log_z", "log_z_se", "ess", "ess_fraction", "true_log_z"):
        assert isinstance(result[key], float), key
    assert result["steps"] == 30 and result["eval_samples"] == 500 and result["params"] > 0
    assert result["elbo"] <= result["log_z"]
    assert result["true_log_z"] == pytest.approx(1.8775, abs=1e-4)
    assert (out / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads((out / "result.json").read_text())
    assert len(stored["history"]) == 30 and stored["log_z"] == result["log_z"]
    # the same seed gives the same fit
    code, again, _ = run(["fit", "--target", "u1", *TINY, "--lr", "3e-3", "--json"], capsys)
    assert json.loads(again)["log_z"] == result["log_z"]


def test_fit_text_output_1d_mixture_and_10d_funnel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(["fit", "--target", "mixture", "--target-option", "dim=1", "--model",
                           "maf", *TINY, "--out", str(tmp_path / "m")], capsys)  # fmt: skip
    assert code == 0
    assert "ELBO: " in stdout and "log Z: " in stdout and "true log Z -1.0000" in stdout
    assert "ESS: " in stdout and f"plot: {tmp_path / 'm' / 'density.png'}" in stdout
    code, stdout, _ = run(["fit", "--target", "funnel", "--target-option", "dim=10", "--model",
                           "gaussian", "--steps", "20", "--eval-samples", "200", "--out",
                           str(tmp_path / "f")], capsys)  # fmt: skip
    assert code == 0 and "target: funnel (10-D)" in stdout and "plot:" not in stdout
    assert (tmp_path / "f" / "result.json").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "vae"], "--model: 'vae' has no exact density to fit by reverse KL"),
        (["--model", "nope"], "model: unknown model 'nope'"),
        (["--target", "banana"], "--target: expected one of u1"),
        (["--target-option", "dims=2", "--target", "funnel"], "unknown option(s) ['dims']"),
        (["--target-option", "dim"], "--target-option: expected KEY=VALUE"),
        (["-o", "depth=3"], "options: unknown option(s) ['depth']"),
        (["--steps", "0"], "--steps: expected an int >= 1, got 0"),
        (["--batch-size", "-1"], "--batch-size: expected an int >= 1, got -1"),
        (["--lr", "nan"], "--lr: expected a finite number > 0"),
        (["--anneal", "5000"], "--anneal: expected at most --steps (2000)"),
    ],
)
def test_fit_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run(["fit", *argv], capsys)
    assert code == 2 and not stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tractable: error: "), stderr
    assert message in lines[0], lines[0]

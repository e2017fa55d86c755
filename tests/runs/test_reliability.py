"""Regression tests of issue 18's run-directory defects, through the command line in-process.

Each test names the defect it covers; every one failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tractable.train.bookkeeping as bookkeeping
from tractable.cli import main
from tractable.runs.run import json_ready
from tractable.train import TrainConfig, fit, has_checkpoint, resume
from tractable.train.lock import run_lock
from tractable.train.signals import Interrupted

from ..train.helpers import Toy, assert_bitwise_equal, gaussian_data, params_of

TINY = ["-o", "hidden=[8]", "-o", "transforms=2", "--train-size", "256", "--batch-size", "64"]


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    r"""Run the command line in-process; warnings appear in ``err`` as the CLI prints them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    err += "".join(f"tractable: warning: {w.message}\n" for w in caught)
    return code, out, err


def one_line(code: int, err: str, expected: str, exit_code: int = 2) -> None:
    lines = [
        x for x in err.strip().splitlines()
        if not x.startswith(("tractable: warning:", "train: step"))
    ]  # fmt: skip
    assert code == exit_code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]


def train(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return cli(["train", "--steps", "6", "--out", str(out), *TINY, *extra], capsys)


# -- 1: no dead end ------------------------------------------------------------------------------
def test_defect1_a_run_stopped_before_its_first_checkpoint_restarts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    reference = load_file(str(out / "model.safetensors"))
    # what a kill right after config.json leaves: config.json (and a log), nothing else
    for name in ("model.safetensors", "best.safetensors", "metrics.json", "MANIFEST.json"):
        (out / name).unlink()
    for p in sorted((out / "checkpoints").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    code, _, err = cli(["eval", str(out)], capsys)
    one_line(code, err, f"'tractable train --resume {out}' starts it again")
    code, _, err = cli(["train", "--resume", str(out)], capsys)
    assert code == 0 and "starting it again" in err
    assert_bitwise_equal(load_file(str(out / "model.safetensors")), reference)
    # the same with train --out R
    (out / "model.safetensors").unlink()
    for p in sorted((out / "checkpoints").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    code, _, err = train(out, capsys)
    assert code == 0 and "starting it again" in err
    assert_bitwise_equal(load_file(str(out / "model.safetensors")), reference)


def test_defect1_step_zero_checkpoint_and_resume(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=8, batch_size=16, lr=0.05, eval_every=4)  # no periodic checkpoint
    torch.manual_seed(0)
    whole = Toy()
    fit(whole, gaussian_data(), gaussian_data(40, seed=2), cfg, progress=False)

    class Killed(BaseException):
        pass

    def die(model: torch.nn.Module, step: int) -> dict[str, float]:
        raise Killed  # stands for a kill in the middle of the run

    torch.manual_seed(0)
    with pytest.raises(Killed):
        fit(Toy(), gaussian_data(), gaussian_data(40, seed=2), cfg, tmp_path / "r",
            progress=False, log_extra=die)  # fmt: skip
    assert has_checkpoint(tmp_path / "r")  # the step-0 checkpoint
    model = Toy()
    resume(tmp_path / "r", model, gaussian_data(), gaussian_data(40, seed=2), progress=False)
    assert_bitwise_equal(params_of(model), params_of(whole))


def test_defect1_a_failed_first_step_leaves_no_directory(tmp_path: Path) -> None:
    model = Toy()
    model.loss = lambda batch: (_ for _ in ()).throw(ValueError("x: a check inside the model"))
    with pytest.raises(ValueError, match="a check inside the model"):
        fit(model, gaussian_data(), None, TrainConfig(steps=3, batch_size=16), tmp_path / "r",
            progress=False)  # fmt: skip
    assert not (tmp_path / "r").exists()


# -- 2: one writer -------------------------------------------------------------------------------
def test_defect2_a_second_writer_is_refused_and_a_dead_holder_does_not_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # another process holding the run's lock
        try:
            os.close(read)
            import tractable.train.lock as lock

            lock._held.clear()
            with run_lock(out):
                os.write(write, b"x")
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"x"
    try:
        code, _, err = train(out, capsys)
        one_line(code, err, "is in use by another tractable process")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # the holder died: its lock went with it
    assert train(out, capsys)[0] == 0
    code, _, err = cli(["train", "--resume", str(out)], capsys)
    assert code == 0


# -- 3: OS errors --------------------------------------------------------------------------------
def test_defect3_file_size_limit_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
    try:
        code, _, err = cli(["train", "--steps", "6", "--out", str(out), *TINY[:4],
                            "-o", "hidden=[64]"], capsys)  # fmt: skip
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    one_line(code, err, "the file size limit was reached (ulimit -f)")
    assert str(out) in err
    # nothing half-done is left that would block the same command
    assert not out.exists() or not (out / "config.json").exists() or has_checkpoint(out)


def test_defect3_eval_and_sample_on_an_unwritable_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0

    def refuse(path: os.PathLike, data: bytes) -> str:
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr("tractable.runs.run.atomic_write_json",
                        lambda path, obj: refuse(path, b""))  # fmt: skip
    code, stdout, err = cli(["eval", str(out)], capsys)
    assert code == 0 and "test NLL" in stdout
    assert "not recorded in" in err and "read-only" in err
    monkeypatch.setattr("tractable.runs.figures.np.save", lambda path, x: refuse(path, b""))
    code, _, err = cli(["sample", str(out), "-n", "4"], capsys)
    one_line(code, err, "write them elsewhere with --out FILE")


# -- 4: one-row splits ---------------------------------------------------------------------------
def test_defect4_one_row_splits_record_null_standard_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.csv"
    np.savetxt(data, np.random.default_rng(0).normal(size=(40, 2)), delimiter=",")
    out = tmp_path / "run"
    code, stdout, err = cli(
        ["train", "--data", str(data), "--steps", "4", "--out", str(out), "--batch-size", "8",
         "-o", "hidden=[8]", "-o", "transforms=1", "--data-option", "val_fraction=0.03",
         "--data-option", "test_fraction=0.03", "--json"], capsys,
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_nll_se"] is None and np.isfinite(metrics["test_nll"])
    assert "undefined" in err or "not defined" in err
    assert cli(["eval", str(out)], capsys)[0] == 0


def test_defect4_non_finite_numbers_become_null_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="test_nll_se: not defined"):
        assert json_ready({"test_nll": 1.0, "test_nll_se": float("nan")}) == {
            "test_nll": 1.0, "test_nll_se": None,
        }  # fmt: skip


# -- 5: huge learning rates ----------------------------------------------------------------------
def test_defect5_huge_learning_rate_is_a_divergence_and_eval_reaches_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_default_dtype(torch.float32)  # as the command line trains (conftest resets it)
    out = tmp_path / "run"
    code, _, err = train(out, capsys, "--lr", "1000", "--steps", "30")
    one_line(code, err, "training diverged")
    assert "expected finite values" not in err.split("training diverged")[0]
    assert "the last finite weights are in the checkpoint of step" in err
    code, stdout, err = cli(["eval", str(out)], capsys)
    assert code == 0 and "test NLL" in stdout and "using the model weights of its checkpoint" in err
    assert not (out / "metrics.json").exists()  # an unfinished run's numbers are not recorded


# -- 6: size bounds ------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["hidden=[1000000000]", "transforms=10000000"])
def test_defect6_oversized_models_are_refused_before_allocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    started = time.perf_counter()
    code, _, err = cli(["train", "--out", str(tmp_path / "r"), "-o", option], capsys)
    one_line(code, err, "refusing to")
    assert "TRACTABLE_MAX" in err and not (tmp_path / "r").exists()
    assert time.perf_counter() - started < 30


def test_defect6_tampered_shape_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    config = json.loads((out / "config.json").read_text())
    config["model"]["shape"] = [10**9]
    (out / "config.json").write_text(json.dumps(config))
    code, _, err = cli(["eval", str(out)], capsys)
    one_line(code, err, "refusing to")


# -- 7, 8: weights verified, config.json matching ------------------------------------------------
def test_defect7_a_changed_order_buffer_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    from safetensors.torch import save_file

    weights = load_file(str(out / "model.safetensors"))
    key = next(k for k in weights if k.endswith("order"))
    weights[key] = weights[key].flip(0)
    save_file(weights, str(out / "model.safetensors"))
    code, _, err = cli(["eval", str(out)], capsys)
    one_line(code, err, "does not match its checksum")


def test_defect8_config_not_matching_the_weights_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    config = json.loads((out / "config.json").read_text())
    config["model"]["options"]["hidden"] = [12]
    (out / "config.json").write_text(json.dumps(config))
    code, _, err = cli(["eval", str(out)], capsys)
    one_line(code, err, "do not match the model described in config.json")


# -- 10, 11: flags and configs -------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size: expected an int >= 1, got 0"),
        (["--out", ""], "--out: expected a non-empty value"),
        (["--data", ""], "--data: expected a non-empty value"),
    ],
)
def test_defect10_zero_and_empty_flags_are_refused(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["train", "--steps", "2", *argv], capsys)
    one_line(code, err, message)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("steps: abc\n", "'steps' in"),
        ("options: abc\n", "'options' in"),
        ("lr: [1]\n", "'lr' in"),
        ("conditional: 3\n", "'conditional' in"),
    ],
)
def test_defect11_yaml_values_of_the_wrong_type(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(text)
    code, _, err = cli(["train", "--config", str(tmp_path / "c.yaml")], capsys)
    one_line(code, err, message)
    assert "expected" in err


def test_defect11_config_json_without_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    config = json.loads((out / "config.json").read_text())
    del config["data"]
    (out / "config.json").write_text(json.dumps(config))
    for argv in (["eval", str(out)], ["train", "--resume", str(out)]):
        code, _, err = cli(argv, capsys)
        one_line(code, err, "has no 'data' section")


# -- 12: a refused resume writes nothing ---------------------------------------------------------
def test_defect12_a_refused_resume_does_not_rewrite_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, capsys)[0] == 0
    before = (out / "config.json").read_bytes()
    for state in (out / "checkpoints").rglob("state.json"):
        state.write_text("{}")  # damaged: nothing to resume from
    code, _, err = cli(["train", "--resume", str(out), "--steps", "50"], capsys)
    one_line(code, err, "no complete checkpoint")
    assert (out / "config.json").read_bytes() == before


# -- 15: signals and file modes ------------------------------------------------------------------
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_defect15_a_signal_writes_a_checkpoint_and_exits_conventionally(
    signum: int, exit_code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    reference = tmp_path / "whole"
    assert train(reference, capsys, "--steps", "9")[0] == 0
    validate = bookkeeping.validate

    def validate_then_signal(run: bookkeeping.TrainState) -> None:
        validate(run)
        if run.counters.step == 3:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(bookkeeping, "validate", validate_then_signal)
    monkeypatch.setattr("tractable.train.loop.validate", validate_then_signal)
    out = tmp_path / "run"
    code, _, err = train(out, capsys, "--steps", "9", "-t", "eval_every=1",
                         "-t", "checkpoint_every=100")  # fmt: skip
    one_line(code, err, f"interrupted by {signal.Signals(signum).name} at step 3", exit_code)
    assert "wrote a checkpoint at step 3" in err
    monkeypatch.undo()
    assert cli(["train", "--resume", str(out)], capsys)[0] == 0
    whole = load_file(str(reference / "model.safetensors"))
    assert_bitwise_equal(load_file(str(out / "model.safetensors")), whole)


def test_defect15_interrupted_fit_raises_and_resumes(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=6, batch_size=16, lr=0.05, eval_every=2)

    def stop(model: torch.nn.Module, step: int) -> dict[str, float]:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return {}

    with pytest.raises(Interrupted) as info:
        fit(Toy(), gaussian_data(), gaussian_data(40, seed=2), cfg, tmp_path / "r",
            progress=False, log_extra=stop)  # fmt: skip
    assert info.value.exit_code == 143 and info.value.step == 2


def test_defect15_written_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fit(Toy(), gaussian_data(), None, TrainConfig(steps=2, batch_size=16), tmp_path / "r",
            progress=False)  # fmt: skip
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors", "metrics.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o644, name

"""Concurrent writers: two trainings into one --out started at the same instant, and a
--resume alongside a running training. One process writes; the other refuses with one line,
and the run that remains is exactly the winner's."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tractable.cli import main
from tractable.train.lock import run_lock

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX fork")
TINY = ["-o", "hidden=[8]", "-o", "transforms=1", "--train-size", "256", "--batch-size", "32"]


def child(argv: list[str], err_path: Path, start: int | None) -> int:
    r"""Fork a process running ``tractable argv`` (after a byte on the pipe ``start``)."""
    pid = os.fork()
    if pid:
        return pid
    code = 4
    try:
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        import tractable.train.lock as lock

        lock._held.clear()
        if start is not None:
            os.read(start, 1)
        code = main(argv)
    except BaseException as err:  # noqa: BLE001 - reported through the exit code
        print(f"child: {type(err).__name__}: {err}", file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def errors(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.startswith("tractable: error:")]


def test_two_trainings_into_one_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    read, write = os.pipe()
    argv = ["train", "--steps", "20", "--out", str(out), *TINY]
    pids = [child([*argv, "--seed", str(seed)], tmp_path / f"err{seed}", read) for seed in (1, 2)]
    os.write(write, b"xx")  # both start at once
    codes = {seed: wait(pid) for seed, pid in zip((1, 2), pids, strict=True)}
    assert sorted(codes.values()) == [0, 2], codes
    winner = next(s for s, c in codes.items() if c == 0)
    loser = 3 - winner
    lines = errors(tmp_path / f"err{loser}")
    assert len(lines) == 1 and ("in use by another" in lines[0] or "already holds" in lines[0])
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["seed"] == winner
    # the directory holds the winner's run alone: the same weights as training it on its own
    reference = tmp_path / "reference"
    assert main([*argv[:4], str(reference), *TINY, "--seed", str(winner)]) == 0
    for name in ("model.safetensors", "best.safetensors"):
        got, want = load_file(str(out / name)), load_file(str(reference / name))
        assert all(torch.equal(got[k], want[k]) for k in want), name
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [
        json.loads(x)["step"] for x in (reference / "log.jsonl").read_text().splitlines()
    ]


def test_resume_alongside_a_running_training_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    pid = child(["train", "--steps", "100000", "--out", str(out), *TINY], tmp_path / "a", None)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "checkpoints").glob("step-*/MANIFEST.json")):
            assert time.monotonic() < deadline, (tmp_path / "a").read_text()
            time.sleep(0.05)
        second = child(["train", "--resume", str(out)], tmp_path / "b", None)
        assert wait(second) == 2
        lines = errors(tmp_path / "b")
        assert len(lines) == 1 and "in use by another tractable process" in lines[0]
        third = child(["train", "--out", str(out), *TINY], tmp_path / "c", None)
        assert wait(third) == 2 and len(errors(tmp_path / "c")) == 1
    finally:
        os.kill(pid, signal.SIGTERM)  # stops after writing a checkpoint
    assert wait(pid) == 143
    assert "wrote a checkpoint" in (tmp_path / "a").read_text()
    # the holder is gone and its lock with it; its last checkpoint is there to resume from
    with run_lock(out, create=False):
        pass
    assert main(["eval", str(out)]) == 0

"""Full and read-only file systems, in a private mount namespace (run by test_filesystems.py as
``unshare -m --propagation private python fs_script.py ROOT``; needs root).

A tiny tmpfs is mounted over ``ROOT/mnt``. Full disk: training runs into tmpfs of growing sizes,
so that the disk fills at every stage of a run (config.json, the step-0 checkpoint, later
checkpoints, the final weights, metrics, plots); each must fail with one line, then, once the
file system is enlarged, the run must be resumable (or absent, to be started again) and end
bitwise equal to an uninterrupted run. Read-only: a finished run on a file system remounted
read-only must still evaluate and sample elsewhere; writing commands fail with one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from tractable.cli import main

TINY = ["-o", "hidden=[8]", "-o", "transforms=2", "--train-size", "256", "--batch-size", "32"]
TRAIN = ["train", "--steps", "12", *TINY]


def cli(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except BaseException as exc:  # noqa: BLE001 - reported as a failure
                code = f"raised {type(exc).__name__}: {exc}"
    lines = [x for x in err.getvalue().splitlines() if not x.startswith("train: step")]
    return code, lines + [f"tractable: warning: {w.message}" for w in caught]


def mount(mnt: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], check=True)


def remount(mnt: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True)


def umount(mnt: Path) -> None:
    subprocess.run(["umount", str(mnt)], check=True)


def same_weights(a: Path, b: Path) -> bool:
    for name in ("model.safetensors", "best.safetensors"):
        x, y = load_file(str(a / name)), load_file(str(b / name))
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def full_disk(root: Path, mnt: Path, reference: Path) -> dict:
    results = {}
    for kb in (4, 8, 16, 32, 64, 96, 128, 160, 192, 208, 224, 240, 256, 320, 512):
        mount(mnt, f"size={kb}k")
        try:
            run = mnt / "run"
            code, lines = cli([*TRAIN, "--out", str(run)])
            first = {"code": code, "lines": lines}
            remount(mnt, "size=64m")
            if (run / "config.json").exists():
                again = cli(["train", "--resume", str(run)])
            else:
                again = cli([*TRAIN, "--out", str(run)])
            ok = again[0] == 0 and same_weights(run, reference)
            results[f"{kb}k"] = {"first": first, "then": again[0], "bitwise": ok,
                                 "then_lines": again[1]}  # fmt: skip
        finally:
            umount(mnt)
    return results


def read_only(root: Path, mnt: Path) -> dict:
    mount(mnt, "size=64m")
    try:
        run = mnt / "run"
        assert cli([*TRAIN, "--out", str(run)])[0] == 0
        remount(mnt, "ro")
        out = {
            "eval": cli(["eval", str(run)]),
            "sample-elsewhere": cli(
                ["sample", str(run), "-n", "4", "--out", str(root / "s.npy")]
            ),  # fmt: skip
            "sample-default": cli(["sample", str(run), "-n", "4"]),
            "resume": cli(["train", "--resume", str(run), "--steps", "20"]),
            "train-into": cli([*TRAIN, "--out", str(mnt / "new")]),
            "plot": cli(["plot", str(run)]),
        }
        remount(mnt, "rw")
        out["eval-after"] = cli(["eval", str(run)])
        return out
    finally:
        umount(mnt)


def main_script() -> None:
    root = Path(sys.argv[1])
    mnt = root / "mnt"
    mnt.mkdir()
    reference = root / "reference"
    assert cli([*TRAIN, "--out", str(reference)])[0] == 0
    print(json.dumps({"full": full_disk(root, mnt, reference), "ro": read_only(root, mnt)}))


if __name__ == "__main__":
    main_script()

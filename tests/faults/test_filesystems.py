"""Full and read-only file systems (a tiny tmpfs in a private mount namespace; see
fs_script.py). Needs root and ``unshare``, as on the CI machines; elsewhere it is skipped,
and the reason says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("fs_script.py")
REPO = Path(__file__).parents[2]


def _namespaces() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True)  # fmt: skip
    return None if probe.returncode == 0 else "unshare -m is not permitted here"


REASON = _namespaces()


def one_line(code: object, lines: list[str], expected: str = "") -> bool:
    errors = [x for x in lines if x.startswith("tractable: error:")]
    others = [x for x in lines if not x.startswith("tractable: ")]
    return code == 2 and len(errors) == 1 and not others and expected in errors[0]


@pytest.mark.slow  # about a minute: 15 tmpfs sizes, each a training and a resume
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_full_and_read_only_file_systems(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, str(SCRIPT), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    full = result["full"]
    failed_first = [k for k, v in full.items() if v["first"]["code"] != 0]
    assert len(failed_first) >= 5, full  # the disk filled at several stages of a run
    for size, case in full.items():
        first = case["first"]
        assert first["code"] == 0 or one_line(first["code"], first["lines"]), (size, first)
        if first["code"] == 2:
            assert "the disk is full" in first["lines"][-1] or any(
                "disk is full" in x for x in first["lines"]
            ), (size, first)
        assert case["then"] == 0 and case["bitwise"], (size, case)

    ro = result["ro"]
    code, lines = ro["eval"]
    assert code == 0 and any("not recorded in" in x and "read-only" in x for x in lines), lines
    assert ro["sample-elsewhere"][0] == 0, ro["sample-elsewhere"]
    assert one_line(*ro["sample-default"], "write them elsewhere with --out FILE")
    assert one_line(*ro["resume"], "read-only"), ro["resume"]
    assert one_line(*ro["train-into"], "read-only"), ro["train-into"]
    assert one_line(*ro["plot"], "read-only"), ro["plot"]
    assert ro["eval-after"][0] == 0

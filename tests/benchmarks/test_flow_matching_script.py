"""Smoke test of benchmarks/flow_matching.py: its --quick mode runs end to end (NSF, flow
matching and the DDPM rows, 20 steps each; torchcfm is an optional peer, left out) and writes
the JSON the BENCHMARKS.md section is made from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "flow_matching.py"


@pytest.mark.slow
def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "fm.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "--no-peer", "--ddpm",
           "--keep", str(tmp_path / "runs"), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert abs(result["true_test_nll"] - 2.8526) < 1e-3  # the true density on the test split
    for name in ("nsf", "flow-matching"):
        (row,) = result["runs"][name]
        assert row["kind"] == "exact" and row["test_nll_se"] > 0
        assert row["train_seconds"] > 0 and row["threads"] == 1
    assert [r["data"] for r in result["ddpm"]] == ["8gaussians", "moons"]
    for row in result["ddpm"]:
        assert row["bound_ge_ode"] == (row["elbo"]["test_nll"] >= row["exact"]["test_nll"])
        assert "--steps 20" in row["command"]

"""Thread choice and the wall-time split of a run (tractable.runs.threads, runs.training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tractable import runs
from tractable.cli import main
from tractable.registry import build_model
from tractable.runs.threads import SMALL_FLOPS, choose_threads, forward_flops


def test_the_rules_in_order() -> None:
    assert choose_threads(2, 1.0, cores=8, load=50.0, environ={}) == (2, "asked for")
    n, reason = choose_threads(None, 1e12, cores=2, load=0.0, environ={"OMP_NUM_THREADS": "1"})
    assert n == torch.get_num_threads() and reason == "OMP_NUM_THREADS=1"
    assert choose_threads(None, 1e12, cores=2, load=1.5, environ={})[0] == 1  # busy
    assert choose_threads(None, 1e12, cores=2, load=1.4, environ={}) == (2, "one per core")
    assert choose_threads(None, SMALL_FLOPS / 2, cores=4, load=0.0, environ={})[0] == 1
    assert choose_threads(None, SMALL_FLOPS * 2, cores=4, load=0.0, environ={})[0] == 4
    assert choose_threads(None, None, cores=4, load=0.0, environ={})[0] == 4  # unknown cost
    assert choose_threads(None, 1.0, cores=1, load=9.0, environ={})[0] == 1
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="threads"):
            choose_threads(bad, None, cores=2, load=0.0, environ={})  # type: ignore[arg-type]


def test_forward_flops_counts_matmuls_and_scales_with_the_batch() -> None:
    torch.manual_seed(0)
    net = build_model({"model": "gaussian", "shape": [3], "options": {}})
    x = torch.randn(64, 3)
    small, large = forward_flops(net, (x,), 64), forward_flops(net, (x,), 640)
    assert small is not None and large == pytest.approx(10 * small)
    # a MAF of known layer sizes: at least its first masked product, 2 x 16 per row
    maf = build_model({"model": "maf", "shape": [2], "options": {"hidden": [16], "transforms": 1}})
    flops = forward_flops(maf, (torch.randn(8, 2),), 8)
    assert flops is not None and 2 * 8 * 2 * 16 < flops < 2 * 8 * 10_000


def test_forward_flops_leaves_the_model_and_the_random_state_alone() -> None:
    torch.manual_seed(0)
    glow = build_model(
        {"model": "glow", "shape": [1, 8, 8], "options": {"levels": 1, "depth": 1, "hidden": 8}}
    )
    before = {k: v.clone() for k, v in glow.state_dict().items()}
    x = torch.randn(4, 1, 8, 8)
    state = torch.random.get_rng_state()
    assert forward_flops(glow, (x,), 4) is not None
    assert torch.equal(torch.random.get_rng_state(), state)
    after = glow.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # ActNorm not initialised


def test_a_run_records_its_threads_and_where_its_time_went(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    runs.train_run(
        model="maf", data="moons", steps=30, n=512, out=tmp_path / "run", progress=False,
        options={"hidden": [16], "transforms": 2}, plots=True, threads=1,
    )  # fmt: skip
    assert torch.get_num_threads() == threads  # restored afterwards
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert stored["threads"] == 1 and stored["threads_reason"] == "asked for"
    t = stored["timing"]
    assert set(t) == {"torch_import", "setup", "training", "final_evaluation", "plots", "other",
                      "total", "overhead_fraction"}  # fmt: skip
    parts = [t["torch_import"], t["setup"], t["training"], t["final_evaluation"], t["plots"],
             t["other"]]  # fmt: skip
    assert min(parts) >= 0 and sum(parts) == pytest.approx(t["total"], abs=5e-3)
    assert 0.0 < t["overhead_fraction"] < 1.0
    assert 0.0 <= stored["validation_seconds"] <= t["training"]
    assert 0.0 < stored["step_seconds"] <= t["training"]
    share = 1 - stored["step_seconds"] / (t["total"] - t["torch_import"])
    assert t["overhead_fraction"] == pytest.approx(share, abs=2e-3)
    assert "plots" not in stored  # the plot list is printed, not stored


def test_cli_threads_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--steps", "5", "--threads", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--threads: expected an int >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert main(["train", "--steps", "5", "--threads", "1", "--train-size", "300", "--out",
                 str(tmp_path / "b"), "-o", "hidden=[8]"]) == 0  # fmt: skip
    assert "threads: 1 (asked for)" in capsys.readouterr().out


def test_forward_flops_agrees_with_torchs_operator_count() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    cases = [
        ({"model": "maf", "shape": [2], "options": {"hidden": [32]}}, torch.randn(64, 2)),
        ({"model": "gan", "shape": [1, 28, 28], "options": {}}, torch.rand(16, 1, 28, 28)),
        ({"model": "glow", "shape": [1, 8, 8], "options": {"levels": 1, "depth": 2,
          "hidden": 8}}, torch.randn(16, 1, 8, 8)),  # fmt: skip
    ]
    for config, x in cases:
        net = build_model(config)
        ours = forward_flops(net, (x,), x.shape[0])
        twin = __import__("copy").deepcopy(net)
        with FlopCounterMode(display=False) as reference:
            twin.loss(x[:8])
        expected = reference.get_total_flops() * x.shape[0] / 8
        assert ours == pytest.approx(expected, rel=0.05), config["model"]


def test_batched_products_count_each_batch_once() -> None:
    from tractable.runs.threads import _ProductCounter

    a, b = torch.randn(3, 4, 5), torch.randn(3, 5, 6)
    with _ProductCounter() as counter:
        torch.bmm(a, b)
        a @ b
        torch.nn.functional.linear(torch.randn(7, 5), torch.randn(2, 5))
    assert counter.flops == 2 * (2 * 3 * 4 * 5 * 6) + 2 * 7 * 5 * 2


def test_torch_optim_imports_its_compiler_which_a_run_times_as_an_import() -> None:
    # The premise of timing.torch_import: a torch.optim optimiser imports torch._dynamo by
    # itself (checked in a fresh interpreter); torch_optim_import does it once and times it.
    code = """
import sys, torch
p = torch.nn.Parameter(torch.zeros(2))
assert "torch._dynamo" not in sys.modules
torch.optim.Adam([p]).step()
assert "torch._dynamo" in sys.modules, "torch.optim no longer imports torch._dynamo"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = """
import sys, torch
from tractable.runs.training import torch_optim_import
assert "torch._dynamo" not in sys.modules
first = torch_optim_import()
assert "torch._dynamo" in sys.modules and first > 0.0
assert torch_optim_import() == 0.0
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

"""Two CPU processes under torchrun (gloo) give the same run as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from tractable.train import DistContext, TrainConfig, fit, setup_distributed

from .helpers import Toy, dequantize, gaussian_data, params_of

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="needs torch.distributed")

# Validation data off-centre (3.5 against 3), so that early stopping triggers mid-run (at step
# 27 of 120, best at 18) and every rank has to agree on when.
CFG = TrainConfig(
    steps=120, batch_size=16, lr=0.02, eval_every=3, patience=3, checkpoint_every=5, log_every=1,
    grad_clip=5.0,
)  # fmt: skip


def _data() -> tuple:
    x, c = gaussian_data(70, shift=3.0), gaussian_data(70, 3, seed=3)
    val = (gaussian_data(25, seed=4, shift=3.5), gaussian_data(25, 3, seed=5))
    return (x, c), val


SCRIPT = """
import json, os, sys
sys.path.insert(0, {repo!r})
import torch
torch.set_default_dtype(torch.float64)
from safetensors.torch import save_file
from tractable.train import TrainConfig, fit
from tests.train.helpers import Toy, dequantize, gaussian_data
from tests.train.test_distributed import _data

run_dir, out_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = Toy(context=3, data_init=False)
train, val = _data()
out = fit(model, train, val, TrainConfig.from_dict({config!r}), run_dir,
          batch_transform=dequantize, progress=False)
rank = os.environ["RANK"]
state = {{k: v.contiguous() for k, v in model.state_dict().items()}}
save_file(state, os.path.join(out_dir, f"params-{{rank}}.safetensors"))
with open(os.path.join(out_dir, f"summary-{{rank}}.json"), "w") as f:
    json.dump(out, f)
"""


def test_single_process_context_without_torchrun(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distributed() == DistContext()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path: Path) -> None:
    repo = str(Path(__file__).parents[2])  # so that the script can import tests.train
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(repo=repo, config=CFG.to_dict()))
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        # --standalone: torchrun binds its own free port at once, so a test server that picks
        # a port at the same moment (the human-eval tests, in the other worker) cannot take it
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(run_dir), str(out_dir),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # One run directory, written once (by rank 0).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp_train.py", "out", "run"]
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        ".lock", "MANIFEST.json", "best.safetensors", "checkpoints", "config.json", "log.jsonl",
        "metrics.json", "model.safetensors",
    ]  # fmt: skip
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    summaries = [json.loads((out_dir / f"summary-{r}.json").read_text()) for r in (0, 1)]
    # wall times differ between the ranks (and rank 1 writes no checkpoints); the rest must not
    summaries = [{k: v for k, v in s.items() if not k.endswith("seconds")} for s in summaries]
    assert summaries[0] == summaries[1]
    assert summaries[0]["best_step"] > 10
    assert summaries[0]["stop_reason"] == "early_stopping"
    assert steps == list(range(1, summaries[0]["steps"] + 1))  # each step logged exactly once

    # Both ranks end with the same weights, which match a single process on the same batches.
    ranks = [load_file(str(out_dir / f"params-{r}.safetensors")) for r in (0, 1)]
    torch.manual_seed(0)
    model = Toy(context=3, data_init=False)
    train, val = _data()
    single = fit(model, train, val, CFG, batch_transform=dequantize, progress=False)
    assert single["steps"] == summaries[0]["steps"]
    assert single["best_step"] == summaries[0]["best_step"]
    assert single["best_val_loss"] == pytest.approx(summaries[0]["best_val_loss"], abs=1e-12)
    expected = params_of(model)
    for got in ranks:
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k].dtype == torch.float64 or not got[k].is_floating_point()
            torch.testing.assert_close(got[k], expected[k], rtol=0.0, atol=1e-10)
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in expected)
    saved = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(saved[k], ranks[0][k]) for k in expected)

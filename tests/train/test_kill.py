"""A run killed with SIGKILL in the middle of writing a checkpoint file resumes bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tractable.train import TrainConfig, fit, load_latest_checkpoint, resume

from .helpers import Toy, assert_bitwise_equal, dequantize, gaussian_data, params_of

# A fresh interpreter must import torch (20-40 s on the shared 2-core machine): slow.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"),
        reason="needs POSIX fork and signals",
    ),
]

CFG = TrainConfig(steps=20, batch_size=16, lr=0.05, eval_every=3, checkpoint_every=4, log_every=2)

# One fresh interpreter imports torch once, then forks a child per scenario; each child trains
# and SIGKILLs itself while the chosen file is half written.
SCRIPT = """
import json, os, signal, sys, traceback
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
torch.set_default_dtype(torch.float64)
import tractable.train.serialization as ser
from tractable.train import TrainConfig, fit
from tests.train.helpers import Toy, dequantize, gaussian_data

root, config = Path(sys.argv[1]), TrainConfig.from_dict({config!r})
torch.optim.Adam(torch.nn.Linear(1, 1).parameters())  # warm torch's lazy imports before forking
ser._CHUNK = 64  # small chunks, so that the kill lands with part of the file written


def train_and_die(run_dir, target, occurrence):
    seen = {{"n": 0}}

    def hook(path, written):
        if path.relative_to(run_dir).as_posix() == target and written == 64:
            seen["n"] += 1
            if seen["n"] == occurrence:
                os.kill(os.getpid(), signal.SIGKILL)

    ser._fault_hook = hook
    torch.manual_seed(0)
    fit(Toy(noisy=True), gaussian_data(), gaussian_data(40, seed=2), config, run_dir,
        batch_transform=dequantize, progress=False)


codes = {{}}
for name, (target, occurrence) in json.loads(sys.argv[2]).items():
    pid = os.fork()
    if pid == 0:
        try:
            train_and_die(root / name, target, occurrence)
            os._exit(3)  # finished without being killed
        except BaseException:
            traceback.print_exc()
            os._exit(4)
    codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(codes))
"""

# (file being written when the process dies, which occurrence of that write)
SCENARIOS = {
    "model-in-checkpoint": ("checkpoints/step-000000008.1/model.safetensors", 1),
    "state-in-checkpoint": ("checkpoints/step-000000008.1/state.json", 1),
    "manifest": ("checkpoints/step-000000008.1/MANIFEST.json", 1),
    "best-weights": ("best.safetensors", 3),
}


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("killed")
    script = root / "train_and_die.py"
    repo = str(Path(__file__).parents[2])  # so that the script can import tests.train
    script.write_text(SCRIPT.format(repo=repo, config=CFG.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(root), json.dumps(SCENARIOS)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = Toy(noisy=True)
    fit(model, gaussian_data(), gaussian_data(40, seed=2), CFG, batch_transform=dequantize,
        progress=False)  # fmt: skip
    return params_of(model)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sigkill_mid_write_then_resume_is_bitwise_identical(
    killed_runs: dict, reference: dict, scenario: str
) -> None:
    root, codes = killed_runs
    run = root / scenario
    assert codes[scenario] == -signal.SIGKILL
    target = run / SCENARIOS[scenario][0]
    # The kill happened with a partial temporary file next to the target, never renamed.
    partial = list(target.parent.glob(f".{target.name}.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size == 64
    # The newest complete checkpoint is intact and verifies.
    expected = 4 if scenario != "best-weights" else 8
    assert load_latest_checkpoint(run)[0] == expected
    if (run / "best.safetensors").exists():
        assert load_file(str(run / "best.safetensors"))  # the previous version, complete

    torch.manual_seed(999)  # anything; the checkpoint supplies the RNG states
    model = Toy(noisy=True)
    out = resume(run, model, gaussian_data(), gaussian_data(40, seed=2),
                 batch_transform=dequantize, progress=False)  # fmt: skip
    assert out["steps"] == CFG.steps
    assert_bitwise_equal(params_of(model), reference)
    # no leftovers: one committed checkpoint, no temporary files
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000020.1"]
    assert not list(run.rglob("*.tmp"))

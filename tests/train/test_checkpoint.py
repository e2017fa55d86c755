from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tractable.train import (
    CheckpointError,
    has_checkpoint,
    load_latest_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _weights(value: float) -> dict[str, dict[str, torch.Tensor]]:
    return {"model": {"w": torch.full((3,), value), "flag": torch.tensor(True)}}


def _state(step: int) -> dict:
    return {"counters": {"step": step, "best": float("inf")}, "buf": torch.arange(step + 1)}


def _dirs(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 4, _weights(1.5), _state(4))
    assert path.name == "step-000000004.1"
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["step"] == 4
    assert sorted(manifest["files"]) == ["model.safetensors", "state.json", "state.safetensors"]
    step, weights, state = read_checkpoint(path)
    assert step == 4 and torch.equal(weights["model"]["w"], torch.full((3,), 1.5))
    assert weights["model"]["flag"].dtype == torch.bool
    assert state["counters"] == {"step": 4, "best": float("inf")}
    assert torch.equal(state["buf"], torch.arange(5))
    assert has_checkpoint(tmp_path)


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, _weights(step), _state(step), keep=2)
    assert _dirs(tmp_path) == ["step-000000004.1", "step-000000006.1"]
    assert load_latest_checkpoint(tmp_path)[0] == 6


def test_rewriting_a_step_uses_a_new_directory(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 4, _weights(1.0), _state(4), keep=1)
    save_checkpoint(tmp_path, 4, _weights(2.0), _state(4), keep=1)
    assert _dirs(tmp_path) == ["step-000000004.2"]
    assert float(load_latest_checkpoint(tmp_path)[1]["model"]["w"][0]) == 2.0


def test_incomplete_checkpoint_is_ignored_then_removed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 2, _weights(2.0), _state(2))
    partial = tmp_path / "checkpoints" / "step-000000004.1"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half a file")
    assert load_latest_checkpoint(tmp_path)[0] == 2
    save_checkpoint(tmp_path, 6, _weights(6.0), _state(6))
    assert _dirs(tmp_path) == ["step-000000006.1"]


def test_corrupted_checkpoint_falls_back_with_a_warning(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 2, _weights(2.0), _state(2), keep=2)
    newest = save_checkpoint(tmp_path, 4, _weights(4.0), _state(4), keep=2)
    blob = bytearray((newest / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping a damaged checkpoint"):
        step, weights, _ = load_latest_checkpoint(tmp_path)
    assert step == 2 and float(weights["model"]["w"][0]) == 2.0


def test_no_checkpoint_is_an_error(tmp_path: Path) -> None:
    assert not has_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_latest_checkpoint(tmp_path)


def test_nonfinite_state_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 2, _weights(2.0), _state(2))
    with pytest.raises(ValueError, match="refusing to write non-finite values; 'w'"):
        save_checkpoint(tmp_path, 4, _weights(float("nan")), _state(4))
    bad_state = {"opt": {"exp_avg": torch.tensor([1.0, float("inf")])}}
    with pytest.raises(ValueError, match="checkpoint trainer state"):
        save_checkpoint(tmp_path, 4, _weights(4.0), bad_state)
    assert _dirs(tmp_path) == ["step-000000002.1"]
    assert load_latest_checkpoint(tmp_path)[0] == 2


def test_every_file_and_the_set_are_durable_before_the_commit_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The order of durability that makes a crash safe at any moment: each file's contents and
    # the set's directory (listing them) are synced before the manifest is written.
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace " + os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = save_checkpoint(tmp_path, 3, _weights(2.0), _state(3))
    manifest = events.index("replace MANIFEST.json")
    before = events[:manifest]
    for name in ("model.safetensors", "state.safetensors", "state.json"):
        put = before.index(f"replace {name}")
        assert any(e.startswith(f"fsync .{name}.") for e in before[:put]), events
    # the set's directory is synced after its last file was put in place
    last_put = max(i for i, e in enumerate(before) if e.startswith("replace "))
    assert f"fsync {path.name}" in before[last_put:], events
    assert f"fsync {path.name}" in events[manifest:]  # and again for the manifest itself

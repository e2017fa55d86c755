from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import tractable.train.serialization as ser
from tractable.train import CheckpointError, load_model, load_state, save_model

from .helpers import Toy, assert_bitwise_equal, params_of


class Opaque:
    """A class that a weights-only unpickler refuses."""

    def __init__(self, value: int) -> None:
        self.value = value


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    digest = ser.atomic_write_bytes(target, b"old")
    ser.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert len(digest) == 64


def test_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f.bin"
    ser.atomic_write_bytes(target, b"old")

    def boom(path: Path, written: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ser, "_fault_hook", boom)
    with pytest.raises(KeyboardInterrupt):
        ser.atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # the temp file is gone


def test_atomic_json_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ser.atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_encode_decode_round_trips_optimizer_state() -> None:
    model = torch.nn.Linear(3, 2)
    for opt in (
        torch.optim.Adam(model.parameters(), lr=0.1),
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    ):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        tensors: dict[str, torch.Tensor] = {}
        tree = ser.encode_state(opt.state_dict(), tensors)
        tree = json.loads(json.dumps(tree, allow_nan=False))  # strictly JSON
        back = ser.decode_state(tree, tensors)
        ref = opt.state_dict()
        assert back["param_groups"] == ref["param_groups"]
        assert back["state"].keys() == ref["state"].keys()
        for k, entry in ref["state"].items():
            for name, value in entry.items():
                assert torch.equal(back["state"][k][name], value), name


def test_encode_keeps_tuples_ints_and_nonfinite_floats() -> None:
    tensors: dict[str, torch.Tensor] = {}
    obj = {"a": (1, 2.5), 3: [float("-inf"), None, "s"], "b": {"c": torch.arange(3)}}
    tree = json.loads(json.dumps(ser.encode_state(obj, tensors), allow_nan=False))
    back = ser.decode_state(tree, tensors)
    assert back["a"] == (1, 2.5) and back[3] == [float("-inf"), None, "s"]
    assert torch.equal(back["b"]["c"], torch.arange(3))
    with pytest.raises(TypeError, match="without pickle"):
        ser.encode_state({"x": object()}, {})
    with pytest.raises(ValueError, match="two tensors would be stored under the name 's.a.b'"):
        ser.encode_state({"a.b": torch.ones(1), "a": {"b": torch.ones(1)}}, {})


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt", ".bin"])
def test_load_state_refuses_pickles(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle .* arbitrary code"):
        load_state(path)
    out = load_state(path, trust_pickle=True)
    assert torch.equal(out["w"], torch.ones(2))


def test_load_state_sniffs_a_disguised_pickle(tmp_path: Path) -> None:
    path = tmp_path / "weights.data"
    path.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_state(path)
    fake = tmp_path / "weights.safetensors"
    torch.save({"w": torch.ones(1)}, fake)  # a torch zip with a safetensors name
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_state(fake)


def test_trusted_pickle_needing_code_warns_then_loads(tmp_path: Path) -> None:
    path = tmp_path / "obj.pkl"
    torch.save({"o": Opaque(7)}, path)
    with pytest.warns(UserWarning, match="weights_only=False because trust_pickle=True"):
        out = load_state(path, trust_pickle=True)
    assert out["o"].value == 7


def test_load_state_reads_safetensors_and_json_and_rejects_others(tmp_path: Path) -> None:
    save_file({"w": torch.arange(4.0)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_state(tmp_path / "w.safetensors")["w"], torch.arange(4.0))
    (tmp_path / "c.json").write_text('{"a": 1}')
    assert load_state(tmp_path / "c.json") == {"a": 1}
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(ValueError, match="expected a .safetensors or .json file"):
        load_state(tmp_path / "x.npy")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage!garbage!")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_state(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="trust_pickle: expected a bool"):
        load_state(tmp_path / "c.json", trust_pickle="yes")  # type: ignore[arg-type]


def test_save_and_load_model_round_trip_with_buffers(tmp_path: Path) -> None:
    model = Toy(features=3, context=2)
    with torch.no_grad():
        model.loc.normal_()
    model.loss((torch.randn(5, 3), torch.randn(5, 2)))  # sets the data-dependent buffers
    assert bool(model.initialized)
    save_model(tmp_path, model, {"features": 3, "context": 2})
    assert json.loads((tmp_path / "config.json").read_text())["model"] == {
        "features": 3,
        "context": 2,
    }
    rebuilt = load_model(tmp_path, lambda c: Toy(**c))
    assert_bitwise_equal(params_of(rebuilt), params_of(model))
    assert bool(rebuilt.initialized) and not rebuilt.training


def test_save_model_keeps_other_config_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"train": {"steps": 3}, "model": None}))
    save_model(tmp_path, Toy(), {"features": 2})
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == {"train": {"steps": 3}, "model": {"features": 2}}


def test_save_model_refuses_nonfinite_weights(tmp_path: Path) -> None:
    model = Toy()
    with torch.no_grad():
        model.loc[0] = float("nan")
    with pytest.raises(ValueError, match="refusing to write non-finite values; 'loc'"):
        save_model(tmp_path, model, {})
    assert not (tmp_path / "model.safetensors").exists()


def test_load_model_refuses_nonfinite_weights(tmp_path: Path) -> None:
    save_model(tmp_path, Toy(), {})
    save_file({"loc": torch.tensor([float("inf"), 0.0])}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_model(tmp_path, lambda c: Toy(), strict=False)
    (tmp_path / "MANIFEST.json").unlink()  # a folder written before manifests existed
    with pytest.raises(ValueError, match="refusing to load non-finite values"):
        load_model(tmp_path, lambda c: Toy(), strict=False)


def test_load_model_verifies_the_weights_checksum(tmp_path: Path) -> None:
    # a changed int64 buffer (like a MADE order) loads silently without the run's manifest
    save_model(tmp_path, Toy(), {})
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors'?: does not match its checksum"):
        load_model(tmp_path, lambda c: Toy())


def test_load_model_refuses_links_outside_the_run(tmp_path: Path) -> None:
    save_model(tmp_path / "other", Toy(), {})
    run = tmp_path / "run"
    save_model(run, Toy(), {})
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to(tmp_path / "other" / "model.safetensors")
    with pytest.raises(CheckpointError, match="points outside the run directory"):
        load_model(run, lambda c: Toy())


def test_load_model_config_mismatch_is_one_line(tmp_path: Path) -> None:
    save_model(tmp_path, Toy(features=3), {})
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path, lambda c: Toy(features=2))
    message = str(info.value)
    assert "do not match the model described in config.json" in message
    assert "3 tensor(s) of another shape" in message and "\n" not in message


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path, lambda c: Toy())
    save_model(tmp_path, Toy(), {})
    with pytest.raises(ValueError, match="weights: expected 'model' or 'best'"):
        load_model(tmp_path, lambda c: Toy(), weights="last")
    with pytest.raises(TypeError, match="build_fn: expected it to return an nn.Module"):
        load_model(tmp_path, lambda c: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="config: expected a JSON-serialisable dict"):
        save_model(tmp_path, Toy(), {"f": object()})


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(
    tmp_path,
) -> None:
    """Regression: a header of 128 bytes makes the file's first byte 0x80, a pickle's opcode."""
    import struct

    from tractable.train import load_state

    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    header = header + b" " * (128 - len(header))
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", 128) + header + struct.pack("<f", 1.5))
    assert path.read_bytes()[0] == 0x80
    assert load_state(path)["w"].tolist() == [1.5]

"""The feature classifier of the image metrics: training, caching, loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import tractable as tr
from tractable.cli import main
from tractable.evaluation import features


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("features")
    info = features.train_extractor("digits", root=root, steps=120, progress=False)
    return root, info


def test_feature_net_shapes_and_loss() -> None:
    net = features.FeatureNet((1, 28, 28), classes=10, width=4, features=12)
    x = torch.rand(5, 1, 28, 28)
    assert net.embed(x).shape == (5, 12) and net(x).shape == (5, 10)
    loss = net.loss((x, torch.arange(5)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match=r"shape: expected \(C, H, W\)"):
        features.FeatureNet((28, 28))


def test_shift_translates_by_at_most_one_pixel() -> None:
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 4, 3] = 1.0
    out = features.shift_transform(1)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(64))
    rows, cols = torch.nonzero(out[:, 0], as_tuple=True)[1:]
    assert set(rows.tolist()) == {3, 4, 5} and set(cols.tolist()) == {2, 3, 4}


@pytest.mark.slow
def test_train_caches_and_loads(trained: tuple[Path, dict]) -> None:
    root, info = trained
    folder = root / "digits"
    assert info["path"] == str(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    saved = json.loads((folder / "config.json").read_text())
    assert saved["format"] == "tractable-features/2" and saved["name"] == "classifier:digits"
    assert saved["model"] == {"shape": [1, 8, 8], "classes": 10, "width": 32, "features": 64}
    assert info["test_accuracy"] > 0.7  # ten classes: chance is 0.1
    ex = features.load("digits-binary", root=root)  # binary variants share the classifier
    assert ex.name == "classifier:digits" and ex.info["test_accuracy"] == info["test_accuracy"]
    ds = tr.data.load("digits")
    x = features.intensities(ds.test, ds)
    f_flat, f_img = ex.features(x), ex.features(x.reshape(-1, 1, 8, 8))
    assert f_flat.shape == (179, 64) and f_flat.dtype == np.float64
    np.testing.assert_allclose(f_flat, f_img)
    p = ex.probs(x.numpy())
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    accuracy = float((p.argmax(1) == ds.test_labels.numpy()).mean())
    assert accuracy == pytest.approx(info["test_accuracy"])
    with pytest.raises(ValueError, match=r"x: expected images \(N, 1, 8, 8\) or \(N, 64\)"):
        ex.features(torch.rand(3, 65))
    with pytest.raises(ValueError, match="finite"):
        ex.features(torch.full((2, 64), float("nan")))


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(features.ENV_VAR, str(tmp_path))
    assert features.cache_dir() == tmp_path
    assert features.extractor_dir("mnist5k-binary-fixed") == tmp_path / "mnist5k"
    with pytest.raises(FileNotFoundError, match="tractable features train --data mnist5k"):
        features.load("mnist5k")
    monkeypatch.delenv(features.ENV_VAR)
    assert features.cache_dir() == Path.home() / ".cache" / "tractable" / "features"


def test_non_image_data_is_refused() -> None:
    with pytest.raises(ValueError, match="feature classifiers exist for the image datasets"):
        features.base_name("moons")
    with pytest.raises(TypeError, match="data: expected a dataset name"):
        features.base_name(3)


def test_raw_extractor_flattens() -> None:
    ex = features.raw((1, 2, 2))
    out = ex.features(torch.arange(8.0).reshape(2, 1, 2, 2))
    assert out.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="has no classifier"):
        ex.probs(torch.zeros(2, 4))


def test_inception_needs_torch_fidelity_and_local_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv(features.INCEPTION_ENV_VAR, raising=False)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch_fidelity" else real(n, *a)
    )
    with pytest.raises(ImportError, match="needs torch-fidelity"):
        features.inception((1, 28, 28))
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: object() if n == "torch_fidelity" else real(n, *a),
    )
    with pytest.raises(FileNotFoundError, match="no InceptionV3 weights on disk"):
        features.inception((1, 28, 28))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    monkeypatch.setenv(features.INCEPTION_ENV_VAR, str(weights))
    assert features.inception_weights() == weights
    with pytest.raises(ValueError, match="1 or 3 channels"):
        features.inception((2, 8, 8))


def test_cli_train_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cls"
    argv = ["features", "train", "--data", "digits", "--steps", "10", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(out) and 0 <= info["test_accuracy"] <= 1
    assert main(["features", "show", "--data", "digits", "--out", str(out)]) == 0
    assert "classifier:digits" in capsys.readouterr().out
    assert main(["features", "train", "--data", "moons"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tractable: error: data: feature classifiers exist")
    assert main(["features", "show", "--data", "digits", "--out", str(tmp_path / "none")]) == 2
    assert "tractable features train --data digits" in capsys.readouterr().err


def _check_pair(folder: Path) -> float:
    """The accuracy that ``folder``'s config.json claims, after checking that its weights are
    the ones it was written with (they give the same test accuracy)."""
    ex = features.load("digits", path=folder)
    ds = tr.data.load("digits")
    p = ex.probs(features.intensities(ds.test, ds))
    accuracy = float((p.argmax(1) == ds.test_labels.numpy()).mean())
    assert accuracy == pytest.approx(ex.info["test_accuracy"])
    return ex.info["test_accuracy"]


@pytest.mark.parametrize("crash_at", ["write 1", "write 2", "rename"])
def test_a_crash_while_caching_never_pairs_weights_and_metadata_of_two_trainings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    # issue 18, 9: the cache used to be written in two steps (metadata, then weights)
    from tractable.train import serialization

    folder = tmp_path / "cls"
    first = features.train_extractor("digits", out=folder, steps=3, seed=0, progress=False)
    assert _check_pair(folder) == first["test_accuracy"]
    writes = []

    def crash(path: Path, written: int) -> None:
        writes.append(path)
        if crash_at == f"write {len(writes)}":
            raise KeyboardInterrupt  # the process dies in the middle of a file write

    real_replace = os.replace

    def crash_on_commit(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if str(src).endswith(".tmp") and Path(src).is_dir():
            raise KeyboardInterrupt  # dies with the old folder moved away, the new not in
        real_replace(src, dst)

    monkeypatch.setattr(serialization, "_fault_hook", crash)
    if crash_at == "rename":
        monkeypatch.setattr(os, "replace", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        features.train_extractor("digits", out=folder, steps=40, seed=1, progress=False)
    monkeypatch.undo()
    assert _check_pair(folder) == first["test_accuracy"]  # the first extractor, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls"]  # nothing left over
    second = features.train_extractor("digits", out=folder, steps=40, seed=1, progress=False)
    assert _check_pair(folder) == second["test_accuracy"] != first["test_accuracy"]


def test_weights_that_do_not_match_the_metadata_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cls"
    features.train_extractor("digits", out=folder, steps=2, progress=False)
    other = tmp_path / "other"
    features.train_extractor("digits", out=other, steps=2, seed=3, progress=False)
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="weights that do not match its config.json"):
        features.load("digits", path=folder)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="out: .* holds other files"):
        features.train_extractor("digits", out=other, steps=2, progress=False)
    assert (other / "notes.txt").read_text() == "mine"

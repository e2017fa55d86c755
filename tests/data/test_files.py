"""User data from CSV, NPY and NPZ files, and the errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tractable as tr


def _table(n: int = 50, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * [1.0, 10.0, 0.1][:d] + 5.0


def _all_rows(ds) -> np.ndarray:
    x = np.concatenate([ds.split(s).numpy() for s in ("train", "val", "test")])
    return x[np.lexsort(x.T[::-1])]


def _sorted(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def test_csv_with_header_and_label_column(tmp_path: Path) -> None:
    x = _table()
    labels = np.arange(50) % 3
    path = tmp_path / "points.csv"
    np.savetxt(path, np.column_stack([x[:, :1], labels, x[:, 1:]]), delimiter=",",
               header="a,cls,b,c", comments="")  # fmt: skip
    ds = tr.data.load(str(path), label_column="cls")
    assert ds.name == "points.csv" and ds.shape == (3,) and ds.kind == "continuous"
    assert ds.sizes() == {"train": 40, "val": 5, "test": 5}
    assert np.allclose(_all_rows(ds), _sorted(x))
    # labels follow their rows through the shuffle
    for split in ("train", "val", "test"):
        rows = ds.split(split).numpy()
        idx = [int(np.argmin(np.abs(x - r).sum(1))) for r in rows]
        assert ds.labels(split).tolist() == labels[idx].tolist()
    assert ds.to_dict()["source"] == str(path)
    by_index = tr.data.load(path, label_column=1)
    assert torch.equal(by_index.train, ds.train)


def test_csv_without_header_and_whitespace_text(tmp_path: Path) -> None:
    x = _table()
    np.savetxt(tmp_path / "a.csv", x, delimiter=",")
    np.savetxt(tmp_path / "b.txt", x)
    a, b = tr.data.load(tmp_path / "a.csv"), tr.data.load(tmp_path / "b.txt")
    assert np.allclose(_all_rows(a), _sorted(x)) and np.allclose(_all_rows(b), _sorted(x))


def test_user_data_is_standardised_with_training_statistics(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _table(200))
    ds = tr.data.load(tmp_path / "x.npy")
    y, ladj = ds.preprocess.eval(ds.train)
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-10)
    assert torch.allclose(ladj, -torch.log(ds.train.std(0, unbiased=False)).sum().expand(160))
    raw = tr.data.load(tmp_path / "x.npy", standardize=False)
    assert raw.preprocess.mean is None and torch.equal(raw.train, ds.train)


def test_splits_are_seeded_disjoint_and_n_caps_training(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _table(100))
    a, b = tr.data.load(tmp_path / "x.npy"), tr.data.load(tmp_path / "x.npy")
    c = tr.data.load(tmp_path / "x.npy", seed=1)
    assert torch.equal(a.test, b.test) and not torch.equal(a.test, c.test)
    keys = {s: {r.tobytes() for r in a.split(s).numpy()} for s in ("train", "val", "test")}
    assert sum(map(len, keys.values())) == 100
    small = tr.data.load(tmp_path / "x.npy", n=10)
    assert small.train.shape == (10, 3) and torch.equal(small.test, a.test)
    other = tr.data.load(tmp_path / "x.npy", val_fraction=0.2, test_fraction=0.3)
    assert other.sizes() == {"train": 50, "val": 20, "test": 30}


def test_npy_images_keep_their_shape(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 4, (30, 1, 3, 3))
    np.save(tmp_path / "img.npy", x)
    ds = tr.data.load(tmp_path / "img.npy", levels=4, logit=0.05)
    assert ds.shape == (1, 3, 3) and ds.kind == "discrete" and ds.levels == 4
    assert ds.preprocess.logit == 0.05
    with pytest.raises(ValueError, match="integers in 0..1"):
        tr.data.load(tmp_path / "img.npy", binary=True)
    binary = (x > 1).astype(np.uint8)
    np.save(tmp_path / "bin.npy", binary)
    assert tr.data.load(tmp_path / "bin.npy", binary=True).kind == "binary"


def test_npz_with_splits_and_with_one_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tr_, va, te = rng.normal(size=(20, 2)), rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    labels = {"train_labels": np.zeros(20), "validation_labels": np.ones(5)}
    np.savez(
        tmp_path / "s.npz", train=tr_, validation=va, test=te, test_labels=np.ones(6), **labels
    )
    ds = tr.data.load(tmp_path / "s.npz", standardize=False)
    assert np.array_equal(ds.train.numpy(), tr_) and np.array_equal(ds.val.numpy(), va)
    assert ds.test_labels.tolist() == [1] * 6
    np.savez(tmp_path / "one.npz", data=rng.normal(size=(40, 2)), y=np.arange(40) % 2, z=np.ones(3))
    with pytest.raises(ValueError, match="key="):
        tr.data.load(tmp_path / "one.npz")
    one = tr.data.load(tmp_path / "one.npz", key="data", labels_key="y")
    assert one.sizes() == {"train": 32, "val": 4, "test": 4} and one.train_labels is not None
    with pytest.raises(ValueError, match="labels_key"):
        tr.data.load(tmp_path / "one.npz", key="data", labels_key="nope")


# ---------------------------------------------------------------- bad files


def test_non_numeric_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"bad\.csv: expected a numeric table.*oops"):
        tr.data.load(path)


def test_nan_and_infinity_are_refused(tmp_path: Path) -> None:
    (tmp_path / "nan.csv").write_text("1,2\n3,nan\n4,5\n")
    with pytest.raises(ValueError, match=r"1 NaN and 0 infinite.*row 1"):
        tr.data.load(tmp_path / "nan.csv")
    x = _table()
    x[7, 0] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(ValueError, match="0 NaN and 1 infinite"):
        tr.data.load(tmp_path / "inf.npy")


def test_wrong_rank_and_dtype(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with pytest.raises(ValueError, match=r"got \(10,\); for one feature.*\(N, 1\)"):
        tr.data.load(tmp_path / "flat.npy")
    np.save(tmp_path / "scalar.npy", np.float64(3.0))
    with pytest.raises(ValueError, match="expected shape"):
        tr.data.load(tmp_path / "scalar.npy")
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="numeric"):
        tr.data.load(tmp_path / "str.npy")
    np.save(tmp_path / "obj.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle|numeric"):
        tr.data.load(tmp_path / "obj.npy")


def test_other_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        tr.data.load(tmp_path / "empty.csv")
    np.save(tmp_path / "few.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="too few"):
        tr.data.load(tmp_path / "few.npy")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="unsupported file type"):
        tr.data.load(tmp_path / "x.json")
    np.save(tmp_path / "x.npy", _table())
    with pytest.raises(ValueError, match="levels"):
        tr.data.load(tmp_path / "x.npy", levels=1)
    with pytest.raises(ValueError, match="logit"):
        tr.data.load(tmp_path / "x.npy", logit=0.05)
    with pytest.raises(ValueError, match="label_column"):
        tr.data.load(tmp_path / "x.npy", label_column=0)
    np.savetxt(tmp_path / "x.csv", _table(), delimiter=",")
    with pytest.raises(ValueError, match="label_column: no column named 'cls'"):
        tr.data.load(tmp_path / "x.csv", label_column="cls")
    with pytest.raises(ValueError, match=r"label_column: expected an index in \[-3, 3\)"):
        tr.data.load(tmp_path / "x.csv", label_column=5)
    with pytest.raises(ValueError, match="integer class labels"):
        tr.data.load(tmp_path / "x.csv", label_column=0)


def test_values_that_overflow_float32_name_the_file(tmp_path: Path) -> None:
    # issue 18, 11: 1e308 used to end in "mean: expected finite values"
    rows = "\n".join(f"{i},{i + 1}" for i in range(20))
    path = tmp_path / "big.csv"
    path.write_text(f"a,b\n1e308,1\n{rows}\n")
    with pytest.raises(ValueError, match=r"big\.csv: the value 1e\+308 \(data row 0\) overflows"):
        tr.data.load(str(path), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"big\.csv: cannot standardise"):
        tr.data.load(str(path), dtype=torch.float64)
    ds = tr.data.load(str(path), dtype=torch.float64, standardize=False)
    assert bool(torch.isfinite(ds.train).all())
    npz = tmp_path / "big.npz"
    ok = np.ones((4, 2))
    np.savez(npz, train=np.full((4, 2), -1e300), val=ok, test=ok)
    with pytest.raises(ValueError, match=r"big\.npz\[train\]: the value -1e\+300 .* overflows"):
        tr.data.load(str(npz), dtype=torch.float32)


def test_a_directory_is_not_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "folder").mkdir()
    for name in (str(tmp_path / "folder"), str(tmp_path / "folder") + "/"):
        with pytest.raises(ValueError, match="is a directory, not a data file"):
            tr.data.load(name)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="'folder' is a directory"):
        tr.data.load("folder")
    with pytest.raises(ValueError, match="is a directory"):
        tr.data.files.load_file(tmp_path / "folder", seed=0, n=None)


def test_split_fractions_are_named(tmp_path: Path) -> None:
    # found by the fuzz suite: the error named an internal "fractions"
    path = tmp_path / "t.csv"
    path.write_text("\n".join(f"{i},{i}" for i in range(20)) + "\n")
    with pytest.raises(ValueError, match=r"val_fraction: expected a float in \[0, 1\)"):
        tr.data.load(str(path), val_fraction=1.5)
    with pytest.raises(ValueError, match="val_fraction, test_fraction: expected a sum < 1"):
        tr.data.load(str(path), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(TypeError, match="test_fraction: expected a float"):
        tr.data.load(str(path), test_fraction="0.1")

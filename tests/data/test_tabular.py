"""MAF benchmarks from small fixture files written in the original formats."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tractable as tr


def _np(t: torch.Tensor) -> np.ndarray:
    return t.double().numpy()


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


# ---------------------------------------------------------------- POWER


def _power_reference(raw: np.ndarray) -> tuple[np.ndarray, ...]:
    # MAF's recipe, step by step: shuffle with RandomState(42); drop columns 3 then 1; noise
    # drawn in the order voltage (x0.01), global reactive power (x0.001), 3 sub-meterings (x1);
    # tail splits; z-score with train+val statistics
    rs = np.random.RandomState(42)
    data = raw.copy()
    rs.shuffle(data)
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    n = len(data)
    voltage_noise = 0.01 * rs.rand(n, 1)
    gap_noise = 0.001 * rs.rand(n, 1)
    sm_noise = rs.rand(n, 3)
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, np.zeros((n, 1))))
    n_test = int(0.1 * n)
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * len(rest))
    val, train = rest[-n_val:], rest[:-n_val]
    both = np.vstack((train, val))
    mu, s = both.mean(axis=0), both.std(axis=0)
    return (train - mu) / s, (val - mu) / s, (test - mu) / s


def test_power(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = np.round(rng.normal(size=(200, 8)) * 10, 1)  # rounded like the real measurements
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", raw)
    ds = tr.data.load("power", data_root=tmp_path)
    assert ds.shape == (6,) and ds.kind == "continuous"
    assert ds.sizes() == {"train": 162, "val": 18, "test": 20}
    for got, expected in zip((ds.train, ds.val, ds.test), _power_reference(raw), strict=True):
        assert np.allclose(_np(got), expected, atol=1e-12)
    both = np.concatenate([_np(ds.train), _np(ds.val)])
    assert np.allclose(both.mean(0), 0, atol=1e-12) and np.allclose(both.std(0), 1)
    # the preprocessing is the identity: the published numbers are in this normalised space
    y, ladj = ds.preprocess.eval(ds.test)
    assert torch.equal(y, ds.test) and torch.equal(ladj, torch.zeros(20))
    assert tr.data.load("power", data_root=tmp_path, n=50).train.shape == (50, 6)


def test_power_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((20, 7)))
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        tr.data.load("power", data_root=tmp_path)


# ---------------------------------------------------------------- GAS


def _gas_columns(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    sensors = rng.normal(size=(n, 16)) * rng.uniform(1, 5, 16) + rng.uniform(-3, 3, 16)
    sensors[:, 5] = sensors[:, 2] + 0.01 * rng.normal(size=n)
    sensors[:, 6] = 2 * sensors[:, 2] + 0.01 * rng.normal(size=n)
    # 2, 5 and 6 are correlated: greedy removal drops 2, then 5, and keeps 6
    keep = [j for j in range(16) if j not in (2, 5)]
    head = np.column_stack([np.arange(n) * 0.01, rng.uniform(0, 600, n), rng.uniform(0, 20, n)])
    return np.hstack([head, sensors]), keep


def _zscore_sample(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0, ddof=1)


def test_gas_from_the_uci_text_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table, keep = _gas_columns(300, rng)
    (tmp_path / "gas").mkdir()
    header = "Time (seconds), CO conc (ppm), Ethylene conc (ppm), Sensor readings (16 channels)"
    np.savetxt(tmp_path / "gas" / "ethylene_CO.txt", table, header=header, comments="", fmt="%.10g")
    ds = tr.data.load("gas", data_root=tmp_path, subsample=1.0)
    assert ds.shape == (14,)
    assert ds.sizes() == {"train": 243, "val": 27, "test": 30}
    got = np.concatenate([_np(ds.train), _np(ds.val), _np(ds.test)])
    table = np.loadtxt(tmp_path / "gas" / "ethylene_CO.txt", skiprows=1)
    expected = _zscore_sample(table[:, 3:][:, keep])
    assert np.allclose(_sorted_rows(got), _sorted_rows(expected), atol=1e-10)
    assert not np.allclose(got, expected)  # shuffled, because the UCI file is a time series
    corr = np.corrcoef(got, rowvar=False) - np.eye(14)
    assert corr.max() <= 0.98
    # the default keeps a seeded 25% of the rows, as MAF's (unseeded) subsample did
    quarter = tr.data.load("gas", data_root=tmp_path)
    assert sum(quarter.sizes().values()) == 75
    assert torch.equal(quarter.test, tr.data.load("gas", data_root=tmp_path).test)
    assert not torch.equal(quarter.test, tr.data.load("gas", data_root=tmp_path, seed=1).test)
    # an .npy of the same table gives the same dataset
    np.save(tmp_path / "gas" / "ethylene_CO.npy", table)
    assert torch.equal(tr.data.load("gas", data_root=tmp_path).test, quarter.test)
    with pytest.raises(ValueError, match="subsample"):
        tr.data.load("gas", data_root=tmp_path, subsample=0.0)
    with pytest.raises(ValueError, match="only the 'gas'"):
        tr.data.load("power", data_root=tmp_path, trust_pickle=True)


def test_gas_pickle_needs_trust(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    table, keep = _gas_columns(200, rng)
    names = ["Time", "Meth", "Eth"] + [f"S{j}" for j in range(16)]
    (tmp_path / "gas").mkdir()
    pd.DataFrame(table, columns=names).to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    with pytest.raises(ValueError, match="trust_pickle=True"):
        tr.data.load("gas", data_root=tmp_path)
    ds = tr.data.load("gas", data_root=tmp_path, trust_pickle=True)
    # MAF's pickle is used as stored: no subsampling, no shuffling
    expected = _zscore_sample(table[:, 3:][:, keep])
    assert ds.sizes() == {"train": 162, "val": 18, "test": 20}
    assert np.allclose(_np(ds.train), expected[:162], atol=1e-10)
    assert np.allclose(_np(ds.test), expected[-20:], atol=1e-10)
    assert ds.to_dict()["options"]["trust_pickle"] is True


def test_gas_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ethylene_CO.txt"):
        tr.data.load("gas", data_root=tmp_path)


# ---------------------------------------------------------------- HEPMASS


def _hepmass_files(folder: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    def table(n: int, extra: bool) -> np.ndarray:
        label = rng.integers(0, 2, n).astype(float)
        f = rng.normal(size=(n, 4))
        f[:3, 1] = f[:, 1].min() - 1.0  # the smallest value occurs 3 times: kept
        mass = rng.choice([500.0, 750.0, 1000.0, 1250.0, 1500.0], n)  # repeats: dropped
        cols = [label[:, None], f, mass[:, None]]
        if extra:
            cols.append(np.zeros((n, 1)))
        return np.hstack(cols)

    train, test = table(120, False), table(40, True)
    header = "# label,f0,f1,f2,f3,mass"
    np.savetxt(folder / "1000_train.csv", train, delimiter=",", header=header, comments="")
    np.savetxt(folder / "1000_test.csv", test, delimiter=",", header=header + ",", comments="")
    return train, test


def test_hepmass(tmp_path: Path) -> None:
    folder = tmp_path / "hepmass"
    folder.mkdir()
    train, test = _hepmass_files(folder, np.random.default_rng(3))
    ds = tr.data.load("hepmass", data_root=tmp_path)
    sig_train = train[train[:, 0] == 1, 1:]
    sig_test = test[test[:, 0] == 1, 1:-1]
    mu, s = sig_train.mean(0), sig_train.std(0, ddof=1)
    expected_train = ((sig_train - mu) / s)[:, :4]  # mass dropped
    expected_test = ((sig_test - mu) / s)[:, :4]
    n_val = int(0.1 * len(sig_train))
    assert ds.shape == (4,)
    assert np.allclose(_np(ds.train), expected_train[: len(sig_train) - n_val], atol=1e-12)
    assert np.allclose(_np(ds.val), expected_train[len(sig_train) - n_val :], atol=1e-12)
    assert np.allclose(_np(ds.test), expected_test, atol=1e-12)


def test_hepmass_column_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "hepmass"
    folder.mkdir()
    np.savetxt(folder / "1000_train.csv", np.ones((10, 6)), delimiter=",")
    np.savetxt(folder / "1000_test.csv", np.ones((10, 9)), delimiter=",")
    with pytest.raises(ValueError, match="matching columns"):
        tr.data.load("hepmass", data_root=tmp_path)


# ---------------------------------------------------------------- MINIBOONE


def test_miniboone(tmp_path: Path) -> None:
    raw = np.random.default_rng(4).normal(size=(100, 5)) * 3 + 1
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    ds = tr.data.load("miniboone", data_root=tmp_path)
    assert ds.sizes() == {"train": 81, "val": 9, "test": 10}
    both = raw[:90]
    mu, s = both.mean(0), both.std(0)
    assert np.allclose(_np(ds.test), (raw[90:] - mu) / s, atol=1e-12)
    assert np.allclose(_np(ds.val), (raw[81:90] - mu) / s, atol=1e-12)
    std = tr.data.load("miniboone", data_root=tmp_path, standardize=True)
    assert std.preprocess.mean is not None
    with pytest.raises(FileNotFoundError, match="miniboone"):
        tr.data.load("miniboone", data_root=tmp_path / "elsewhere")


# ---------------------------------------------------------------- BSDS300


def _bsds_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {k: rng.uniform(-0.5, 0.5, (n, 63)) for k, n in
            (("train", 20), ("validation", 5), ("test", 6))}  # fmt: skip


def test_bsds300_from_hdf5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    arrays = _bsds_arrays()
    (tmp_path / "BSDS300").mkdir()
    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    ds = tr.data.load("bsds300", data_root=tmp_path)
    assert ds.shape == (63,)
    assert np.array_equal(_np(ds.train), arrays["train"])
    assert np.array_equal(_np(ds.val), arrays["validation"])
    assert np.array_equal(_np(ds.test), arrays["test"])


def test_bsds300_without_h5py_and_from_npz(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "BSDS300").mkdir()
    (tmp_path / "BSDS300" / "BSDS300.hdf5").write_bytes(b"not really hdf5")
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(ImportError, match="pip install h5py"):
        tr.data.load("bsds300", data_root=tmp_path)
    arrays = _bsds_arrays()
    np.savez(tmp_path / "BSDS300" / "BSDS300.npz", **arrays)
    ds = tr.data.load("bsds300", data_root=tmp_path)
    assert np.array_equal(_np(ds.val), arrays["validation"])

r"""The tabular density-estimation benchmarks of MAF (Papamakarios et al. 2017).

POWER, GAS, HEPMASS, MINIBOONE and BSDS300 are read from local files under ``data_root``, laid
out as in the archive that MAF, FFJORD and NSF point to (Zenodo record 1161203), and prepared
as in MAF's ``datasets/*.py`` so that test log-likelihoods compare with the published tables.
The returned splits are already normalised the way MAF normalised them; the published numbers
are densities of that normalised data, so the default preprocessing is the identity.

* POWER ``power/data.npy`` ``(N, 8)``: rows shuffled with ``RandomState(42)``; columns 3 then 1
  dropped; uniform tie-breaking noise scaled by (0.001, 0.01, 1, 1, 1, 0) added per column
  (drawn in MAF's order: the 0.01 column, the 0.001 column, then the three unit columns); the
  last 10% is test and the last 10% of the rest validation; z-scored with the train+val mean
  and (population) standard deviation. 6 dimensions.
* GAS: the columns Meth, Eth and Time are dropped, then, repeatedly, the first column whose
  Pearson correlation with another column exceeds 0.98; the rest is z-scored (sample standard
  deviation) over all rows and split 80/10/10 in row order (last 10% test, last 10% of the rest
  validation). MAF's ``gas/ethylene_CO.pickle`` (a pandas pickle of a random 25% subsample,
  already shuffled) is only read with ``trust_pickle=True``. Otherwise the UCI file
  ``gas/ethylene_CO.txt`` (or ``ethylene_CO.npy`` holding the same 19 columns, or just the 16
  sensor columns) is used: a fraction ``subsample`` (default 0.25) of its rows is drawn without
  replacement with ``seed``, in random order. MAF's subsample was not seeded, so the numbers are
  comparable in distribution but not row for row. 8 dimensions.
* HEPMASS ``hepmass/1000_{train,test}.csv``: signal rows (label 1) only, label dropped, and the
  test file's extra last column dropped; z-scored with the train file's mean and sample standard
  deviation; features whose smallest value occurs more than 5 times in train are dropped; the
  last 10% of train is validation. 21 dimensions.
* MINIBOONE ``miniboone/data.npy``: already cleaned; last 10% test, last 10% of the rest
  validation; z-scored with train+val statistics (population std). 43 dimensions.
* BSDS300 ``BSDS300/BSDS300.hdf5`` (datasets ``train``, ``validation``, ``test``; needs h5py) or
  ``BSDS300/BSDS300.npz`` with the same keys: used as stored. 63 dimensions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset, seeded_rng, to_tensor
from .files import read_table
from .preprocess import Preprocessor, fit_standardizer

__all__ = ["TABULAR", "load_tabular"]

TABULAR: dict[str, str] = {
    "power": "UCI household power consumption, 6D, MAF preprocessing; power/data.npy.",
    "gas": "UCI gas sensors (ethylene + CO), 8D, MAF preprocessing; gas/ethylene_CO.{txt,npy}.",
    "hepmass": "UCI HEPMASS signal events, 21D, MAF preprocessing; hepmass/1000_{train,test}.csv.",
    "miniboone": "UCI MiniBooNE particle identification, 43D, MAF split; miniboone/data.npy.",
    "bsds300": "BSDS300 8x8 natural-image patches minus one pixel, 63D; BSDS300/BSDS300.hdf5.",
}

Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def _need(path: Path, name: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{name}: expected the file {path}; get the MAF data archive "
            f"(tractable.data.download('maf', data_root) fetches and unpacks it) or pass "
            "data_root=... pointing at the folder that holds it"
        )
    return path


def _tail_splits(x: np.ndarray) -> Splits:
    # the last 10% is test, the last 10% of the rest is validation
    n_test = int(0.1 * len(x))
    rest, test = x[: len(x) - n_test], x[len(x) - n_test :]
    n_val = int(0.1 * len(rest))
    return rest[: len(rest) - n_val], rest[len(rest) - n_val :], test


def _zscore_train_val(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Splits:
    both = np.concatenate([train, val])
    mu, s = both.mean(axis=0), both.std(axis=0)
    return (train - mu) / s, (val - mu) / s, (test - mu) / s


def _load_npy(path: Path, name: str, columns: int | None = None) -> np.ndarray:
    x = np.load(_need(path, name), allow_pickle=False)
    if x.ndim != 2 or (columns is not None and x.shape[1] != columns):
        want = f"(N, {columns})" if columns else "(N, D)"
        raise ValueError(f"{path}: expected an array of shape {want}, got {x.shape}")
    return np.asarray(x, dtype=np.float64)


def _power(root: Path) -> Splits:
    x = _load_npy(root / "power" / "data.npy", "power", columns=8)
    rng = np.random.RandomState(42)  # MAF's seed: reproduces the published split
    rng.shuffle(x)
    x = np.delete(np.delete(x, 3, axis=1), 1, axis=1)
    n = len(x)
    voltage = 0.01 * rng.rand(n, 1)
    gap = 0.001 * rng.rand(n, 1)
    sub_metering = rng.rand(n, 3)
    x = x + np.hstack([gap, voltage, sub_metering, np.zeros((n, 1))])
    return _zscore_train_val(*_tail_splits(x))


def _drop_correlated(x: np.ndarray, threshold: float = 0.98) -> np.ndarray:
    while True:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(x, rowvar=False)
        count = (c > threshold).sum(axis=1)  # the diagonal counts once
        over = np.flatnonzero(count > 1)
        if len(over) == 0:
            return x
        x = np.delete(x, over[0], axis=1)


def _gas_raw(root: Path, seed: int, subsample: float) -> np.ndarray:
    folder = root / "gas"
    npy, txt = folder / "ethylene_CO.npy", folder / "ethylene_CO.txt"
    if npy.is_file():
        x = _load_npy(npy, "gas")
    elif txt.is_file():
        x = read_table(txt, delimiter=None)[0]
    elif (folder / "ethylene_CO.pickle").is_file():
        raise ValueError(
            f"gas: found only {folder / 'ethylene_CO.pickle'}, a pandas pickle, which can run "
            "arbitrary code when loaded; pass trust_pickle=True if you trust its origin, or put "
            "the UCI file ethylene_CO.txt (or an ethylene_CO.npy of it) in the same folder"
        )
    else:
        _need(txt, "gas")
    if x.shape[1] == 19:
        x = x[:, 3:]  # drop time, CO and ethylene concentrations
    elif x.shape[1] != 16:
        raise ValueError(f"gas: expected 19 UCI columns or 16 sensor columns, got {x.shape[1]}")
    if not 0 < subsample <= 1:
        raise ValueError(f"subsample: expected a fraction in (0, 1], got {subsample!r}")
    rng = seeded_rng(seed, "gas", "subsample")
    return x[rng.permutation(len(x))[: int(round(subsample * len(x)))]]


def _gas_pickle(path: Path) -> np.ndarray:
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover - pandas ships with mlxtend
        raise ImportError(
            "gas: reading ethylene_CO.pickle needs pandas (pip install pandas)"
        ) from err
    frame = pd.read_pickle(path)
    missing = {"Meth", "Eth", "Time"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: expected columns Meth, Eth and Time, missing {sorted(missing)}")
    return frame.drop(columns=["Meth", "Eth", "Time"]).to_numpy(dtype=np.float64)


def _gas(root: Path, seed: int, trust_pickle: bool, subsample: float | None) -> Splits:
    pickle_path = root / "gas" / "ethylene_CO.pickle"
    if trust_pickle and pickle_path.is_file():
        if subsample is not None:
            raise ValueError("subsample: MAF's pickle is already a 25% subsample")
        x = _gas_pickle(pickle_path)
    else:
        x = _gas_raw(root, seed, 0.25 if subsample is None else subsample)
    x = _drop_correlated(x)
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    return _tail_splits(x)


def _hepmass(root: Path) -> Splits:
    folder = root / "hepmass"
    train = read_table(_need(folder / "1000_train.csv", "hepmass"), delimiter=",")[0]
    test = read_table(_need(folder / "1000_test.csv", "hepmass"), delimiter=",")[0]
    train = train[train[:, 0] == 1, 1:]
    test = test[test[:, 0] == 1, 1:]
    if test.shape[1] == train.shape[1] + 1:
        test = test[:, :-1]  # the test file carries one extra trailing column
    if test.shape[1] != train.shape[1] or len(train) < 2 or len(test) == 0:
        raise ValueError(
            f"hepmass: expected signal rows with matching columns, got train {train.shape} and "
            f"test {test.shape}"
        )
    mu, s = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mu) / s, (test - mu) / s
    # drop features whose smallest value repeats more than 5 times (MAF's rule)
    keep = [j for j in range(train.shape[1]) if (train[:, j] == train[:, j].min()).sum() <= 5]
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * len(train))
    return train[: len(train) - n_val], train[len(train) - n_val :], test


def _miniboone(root: Path) -> Splits:
    return _zscore_train_val(*_tail_splits(_load_npy(root / "miniboone" / "data.npy", "miniboone")))


def _bsds300(root: Path) -> Splits:
    folder = root / "BSDS300"
    keys = ("train", "validation", "test")
    npz = folder / "BSDS300.npz"
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as f:
            missing = set(keys) - set(f.files)
            if missing:
                raise ValueError(f"{npz}: missing arrays {sorted(missing)}")
            return tuple(np.asarray(f[k], dtype=np.float64) for k in keys)
    path = _need(folder / "BSDS300.hdf5", "bsds300")
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"bsds300: reading {path} needs h5py, which tractable does not install; run "
            "`pip install h5py`, or convert the file once to BSDS300.npz with arrays 'train', "
            "'validation' and 'test'"
        ) from err
    with h5py.File(path, "r") as f:
        missing = set(keys) - set(f.keys())
        if missing:
            raise ValueError(f"{path}: missing datasets {sorted(missing)}")
        return tuple(np.asarray(f[k][:], dtype=np.float64) for k in keys)


def load_tabular(
    name: str,
    *,
    seed: int,
    n: int | None,
    data_root: Path,
    dtype: torch.dtype | None = None,
    standardize: bool = False,
    trust_pickle: bool = False,
    subsample: float | None = None,
) -> Dataset:
    r"""A MAF benchmark :class:`Dataset` (see the module docstring).

    ``trust_pickle`` and ``subsample`` apply to GAS only. ``standardize=True`` adds a
    training-statistics standardisation (rarely useful: the data are already z-scored).
    """
    if name != "gas" and (trust_pickle or subsample is not None):
        raise ValueError(
            f"trust_pickle, subsample: only the 'gas' dataset takes them, not {name!r}"
        )
    if name == "power":
        parts = _power(data_root)
    elif name == "gas":
        parts = _gas(data_root, seed, trust_pickle, subsample)
    elif name == "hepmass":
        parts = _hepmass(data_root)
    elif name == "miniboone":
        parts = _miniboone(data_root)
    else:
        parts = _bsds300(data_root)
    train, val, test = parts
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(train):
            raise ValueError(f"n: expected an int in 1..{len(train)} for {name}, got {n!r}")
        train = train[:n]
    for split, x in (("train", train), ("val", val), ("test", test)):
        if x.ndim != 2 or x.shape[1] != train.shape[1] or not np.isfinite(x).all():
            raise ValueError(f"{name}: the {split} split has shape {x.shape} or non-finite values")
    tensors = [to_tensor(x, dtype) for x in (train, val, test)]
    shape = (train.shape[1],)
    prep = fit_standardizer(tensors[0]) if standardize else Preprocessor(shape)
    options: dict[str, object] = {"standardize": standardize}
    if name == "gas":
        options.update(trust_pickle=trust_pickle, subsample=subsample)
    return Dataset(
        name=name,
        train=tensors[0],
        val=tensors[1],
        test=tensors[2],
        shape=shape,
        kind="continuous",
        levels=None,
        preprocess=prep,
        seed=seed,
        n=n,
        options=options,
        info=TABULAR[name],
    )

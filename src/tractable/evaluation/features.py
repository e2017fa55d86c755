r"""Feature extractors for the sample metrics of images (FID, KID, precision/recall, IS).

The standard FID and Inception Score embed images with an InceptionV3 network trained on
ImageNet (Heusel et al. 2017; Salimans et al. 2016), whose weights cannot be downloaded here and
which says little about 8x8 digits anyway. Instead, :func:`train_extractor` trains a small CNN
classifier on the dataset itself (the "domain-specific classifier" of the FID literature, e.g.
the LeNet features used for MNIST by Binkowski et al. 2018, "Demystifying MMD GANs") and caches
it as ``model.safetensors`` + ``config.json`` under :func:`cache_dir`. Its penultimate layer is
the embedding for FID, KID and precision/recall; its softmax gives :math:`p(y \mid x)` for the
Inception Score. Numbers computed with it are comparable only with numbers computed with the
same cached classifier (the report names it and its test accuracy), never with published FIDs.

When torch-fidelity is installed and its InceptionV3 weights file is on disk, :func:`inception`
wraps it (pool3 features and the 1008-way softmax), without any download.

Every extractor takes **intensities** in :math:`[0, 1]`, shape ``(N, C, H, W)`` or flattened
``(N, C*H*W)``: raw discrete data ``x`` with ``L`` levels are ``x / (L - 1)``
(:func:`intensities`).

Example:
    >>> import tempfile, tractable.evaluation.features as tf
    >>> root = tempfile.mkdtemp()
    >>> info = tf.train_extractor("digits", root=root, steps=5, progress=False)
    >>> ex = tf.load("digits", root=root)
    >>> ds = __import__("tractable").data.load("digits")
    >>> ex.features(tf.intensities(ds.test[:5], ds)).shape, ex.probs(ds.test[:5] / 16).shape
    ((5, 64), (5, 10))
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.classifier import FeatureNet

__all__ = [
    "ENV_VAR",
    "FeatureExtractor",
    "FeatureNet",
    "cache_dir",
    "extractor_dir",
    "inception",
    "intensities",
    "load",
    "raw",
    "train_extractor",
]

ENV_VAR = "TRACTABLE_FEATURES"
INCEPTION_ENV_VAR = "TRACTABLE_INCEPTION_WEIGHTS"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
# version 2: the weights' SHA-256 in config.json, the folder written as one unit
FORMAT = "tractable-features/2"
CACHE_FILES = ("config.json", "model.safetensors")
# base image datasets a classifier can be trained on, with their default embedding width
SUPPORTED = {"digits": 64, "mnist5k": 128, "mnist": 128, "cifar10": 128}
# default training steps (batch 128): ~6 epochs of mnist5k, ~9 of digits
DEFAULT_STEPS = {"digits": 1000, "mnist5k": 1500, "mnist": 3000, "cifar10": 4000}


def cache_dir() -> Path:
    r"""Where extractors are cached: ``$TRACTABLE_FEATURES`` or ``~/.cache/tractable/features``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tractable" / "features"


def base_name(data: str) -> str:
    r"""The image dataset a classifier for ``data`` is trained on: ``digits-binary`` and
    ``digits-binary-fixed`` share ``digits``'s.

    Example:
        >>> base_name("mnist5k-binary")
        'mnist5k'
    """
    if not isinstance(data, str):
        raise TypeError(f"data: expected a dataset name (str), got {type(data).__name__}")
    base = data.strip().lower().split("-")[0]
    if base not in SUPPORTED:
        raise ValueError(
            f"data: feature classifiers exist for the image datasets {', '.join(SUPPORTED)} "
            f"(and their -binary variants), got {data!r}"
        )
    return base


def extractor_dir(data: str, root: str | Path | None = None) -> Path:
    r"""The folder of ``data``'s classifier: ``root / base_name(data)`` (``root`` defaults to
    :func:`cache_dir`)."""
    return (Path(root).expanduser() if root is not None else cache_dir()) / base_name(data)


def intensities(x: Tensor, ds: Any) -> Tensor:
    r"""Raw data of dataset ``ds`` as intensities in :math:`[0, 1]`: ``x / (levels - 1)`` for
    discrete data, unchanged for binary data (0/1 values or pixel probabilities)."""
    return ds.preprocess.intensities(x)


@dataclass
class FeatureExtractor:
    r"""An embedding of images for the sample metrics, with class probabilities when it has them.

    Attributes:
        name: what the report prints, e.g. ``"classifier:mnist5k"``, ``"inception-v3"``,
            ``"raw"``.
        image_shape: ``(C, H, W)`` of its inputs, or ``None`` for any shape (``raw``).
        info: JSON facts worth reporting (path, test accuracy, feature width, ...).
    """

    name: str
    image_shape: tuple[int, int, int] | None
    info: dict[str, Any] = field(default_factory=dict)
    net: nn.Module | None = None
    batch_size: int = 500

    def _images(self, x: Tensor | np.ndarray) -> Tensor:
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        if self.image_shape is None:
            return x.reshape(x.shape[0], -1)
        size = math.prod(self.image_shape)
        if x.dim() < 2 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"x: expected images (N, {', '.join(map(str, self.image_shape))}) or (N, {size}) "
                f"for extractor {self.name!r}, got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x: expected finite intensities, found NaN or infinity")
        return x.reshape(x.shape[0], *self.image_shape)

    def _batched(self, fn: Any, x: Tensor) -> np.ndarray:
        out = []
        with torch.no_grad():
            for chunk in x.split(self.batch_size):
                out.append(fn(chunk).detach().to(torch.float64).cpu())
        return torch.cat(out).numpy()

    def features(self, x: Tensor | np.ndarray) -> np.ndarray:
        r"""Embedding ``(N, F)`` (float64) of intensities ``x`` ``(N, C, H, W)`` or ``(N, D)``."""
        images = self._images(x)
        if self.net is None:
            return images.reshape(images.shape[0], -1).to(torch.float64).numpy()
        return self._batched(self.net.embed, images)

    def probs(self, x: Tensor | np.ndarray) -> np.ndarray:
        r"""Class probabilities ``(N, K)`` (float64, rows sum to 1) for the Inception Score."""
        if self.net is None:
            raise ValueError(f"extractor: {self.name!r} has no classifier for class probabilities")
        return self._batched(lambda t: torch.softmax(self.net(t).double(), dim=1), self._images(x))


def raw(image_shape: tuple[int, int, int] | None = None) -> FeatureExtractor:
    r"""The identity embedding: flattened values (pixels, or the data's own coordinates)."""
    return FeatureExtractor("raw", image_shape, {"name": "raw", "features": "the values"})


def shift_transform(max_shift: int):  # noqa: ANN202 - a batch transform for fit()
    def transform(x: Tensor, generator: torch.Generator) -> Tensor:
        # translate each image by up to max_shift pixels (zero fill): cheap augmentation
        n, _, h, w = x.shape
        pad = F.pad(x, (max_shift,) * 4)
        dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None]).reshape(n, 1, h, 1)
        cols = (dx[:, None] + torch.arange(w)[None]).reshape(n, 1, 1, w)
        index = torch.arange(n).reshape(n, 1, 1, 1)
        return pad[index, torch.arange(x.shape[1]).reshape(1, -1, 1, 1), rows, cols]

    return transform


def _accuracy(net: FeatureNet, x: Tensor, labels: Tensor) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(chunk).argmax(1) for chunk in x.split(500)])
    return float((pred == labels).double().mean())


def train_extractor(
    data: str,
    *,
    root: str | Path | None = None,
    out: str | Path | None = None,
    steps: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 32,
    features: int | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    r"""Train a :class:`FeatureNet` on ``data``'s training split (data seed 0) with the project's
    trainer (Adam, best validation weights kept, random shifts of up to 1 pixel for images
    under 16 pixels, 2 above) and cache it in ``out`` (default :func:`extractor_dir`).

    Returns the saved ``config.json`` dict, with ``val_accuracy`` and ``test_accuracy``.
    """
    from .. import data as tdata
    from ..train import TrainConfig, fit

    base = base_name(data)
    steps = DEFAULT_STEPS[base] if steps is None else steps
    features = SUPPORTED[base] if features is None else features
    ds = tdata.load(base, data_root=data_root, image=True)
    if ds.train_labels is None:
        raise ValueError(f"data: {base!r} has no class labels to train a classifier on")
    split = {s: (intensities(ds.split(s), ds).float(), ds.labels(s)) for s in ("train", "val")}
    classes = int(ds.train_labels.max()) + 1
    arch = {
        "shape": list(ds.shape),
        "classes": classes,
        "width": width,
        "features": features,
    }
    torch.manual_seed(seed)
    net = FeatureNet(**arch).float()  # float32 whatever torch's default dtype
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        eval_every=max(1, min(100, steps // 10)),
        schedule="cosine",
    )
    summary = fit(
        net,
        split["train"],
        split["val"],
        cfg,
        batch_transform=shift_transform(1 if ds.shape[-1] < 16 else 2),
        progress=progress,
    )
    folder = Path(out).expanduser() if out is not None else extractor_dir(base, root)
    info = {
        "format": FORMAT,
        "name": f"classifier:{base}",
        "data": base,
        "data_seed": 0,
        "image_shape": list(ds.shape),
        "levels": ds.levels,
        "classes": classes,
        "features": features,
        "train": cfg.to_dict(),
        "train_seconds": summary.get("seconds"),
        "val_accuracy": _accuracy(net, *split["val"]),
        "test_accuracy": _accuracy(net, intensities(ds.test, ds).float(), ds.test_labels),
    }
    saved = write_cache(folder, net, {**info, "model": arch})
    return {**saved, "path": str(folder)}


def write_cache(folder: Path, net: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    r"""Write ``net``'s weights and ``info`` (with the weights' SHA-256 added) as the extractor
    folder ``folder``, as one unit: both files go to a fresh temporary folder beside it, which
    then replaces ``folder`` by renames. A crash at any moment leaves either the previous
    extractor, whole, or the new one (or, between the two renames, none, which :func:`load`
    reports), never the weights of one training with the metadata of another; :func:`load`
    verifies the checksum. A ``folder`` holding other files than an extractor's is refused.
    Returns the ``config.json`` dict written.
    """
    from ..train import atomic_write_bytes, atomic_write_json
    from ..train.serialization import fsync_dir, model_state, tensors_to_bytes

    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in CACHE_FILES)
        if foreign:
            raise ValueError(
                f"out: {str(folder)!r} holds other files than a feature extractor's "
                f"({', '.join(foreign[:5])}); choose an empty or new folder"
            )
    elif folder.exists():
        raise ValueError(f"out: {str(folder)!r} exists and is not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    state = model_state(net)
    if not all(bool(torch.isfinite(t).all()) for t in state.values()):
        raise ValueError("net: refusing to cache a feature classifier with non-finite weights")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    old = tmp.with_suffix(".old")
    try:
        sha = atomic_write_bytes(tmp / "model.safetensors", tensors_to_bytes(state))
        info = {**info, "weights_sha256": sha}
        atomic_write_json(tmp / "config.json", info)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not folder.exists():
            os.replace(old, folder)  # put the previous extractor back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return info


def load(
    data: str, root: str | Path | None = None, path: str | Path | None = None
) -> FeatureExtractor:
    r"""The cached classifier of ``data`` (from ``path``, or :func:`extractor_dir`) as a
    :class:`FeatureExtractor` in ``eval()`` mode."""
    from ..train import load_state, read_json

    folder = Path(path).expanduser() if path is not None else extractor_dir(data, root)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        base = base_name(data)
        raise FileNotFoundError(
            f"features: no feature classifier for {base!r} in {str(folder)!r}; train one with "
            f"'tractable features train --data {base}' (or set ${ENV_VAR})"
        )
    info = read_json(folder / "config.json")
    if not isinstance(info, dict) or info.get("format") != FORMAT or "model" not in info:
        raise ValueError(
            f"features: {str(folder)!r} does not hold a {FORMAT} extractor (one cached by an "
            "older version must be trained again)"
        )
    weights = (folder / "model.safetensors").read_bytes()
    if hashlib.sha256(weights).hexdigest() != info.get("weights_sha256"):
        raise ValueError(
            f"features: {str(folder)!r} holds weights that do not match its config.json "
            "(checksum); train the classifier again"
        )
    state = load_state(folder / "model.safetensors")
    if not all(bool(torch.isfinite(t).all()) for t in state.values()):
        raise ValueError(f"features: {str(folder)!r} holds non-finite weights")
    net = FeatureNet(**info["model"]).float()
    net.load_state_dict(state, strict=True)
    net.eval()
    facts = {k: info.get(k) for k in ("name", "data", "features", "classes", "test_accuracy")}
    facts["path"] = str(folder)
    return FeatureExtractor(info["name"], tuple(info["image_shape"]), facts, _FloatInput(net))


class _FloatInput(nn.Module):
    r"""Feed a float32 network whatever float dtype the caller has."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def embed(self, x: Tensor) -> Tensor:
        return self.net.embed(x.float())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.float())


def inception_weights() -> Path | None:
    r"""The torch-fidelity InceptionV3 weights on disk: ``$TRACTABLE_INCEPTION_WEIGHTS``, or
    ``weights-inception-2015-12-05-6726825d.pth`` in torch hub's checkpoint folder; ``None``
    when neither exists."""
    env = os.environ.get(INCEPTION_ENV_VAR)
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE)
    return next((p for p in candidates if p.is_file()), None)


class _Inception(nn.Module):
    r"""torch-fidelity's InceptionV3 on intensities: grey images are repeated to 3 channels and
    quantised to uint8, its expected input."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], str(path)
        )

    def _both(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(torch.round(x.clamp(0, 1) * 255).to(torch.uint8))

    def embed(self, x: Tensor) -> Tensor:
        return self._both(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self._both(x)[1]


def inception(image_shape: tuple[int, int, int]) -> FeatureExtractor:
    r"""torch-fidelity's InceptionV3 (pool3 features, 2048; softmax of the 1008 unbiased
    logits for IS) on images of ``image_shape`` with 1 or 3 channels, if installed with weights
    on disk; otherwise an error that says how to provide them. Nothing is downloaded."""
    if image_shape[0] not in (1, 3):
        raise ValueError(f"image_shape: InceptionV3 takes 1 or 3 channels, got {image_shape}")
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ImportError(
            "extractor: 'inception' needs torch-fidelity (pip install torch-fidelity) and its "
            f"InceptionV3 weights file {INCEPTION_FILE} in {torch.hub.get_dir()}/checkpoints or "
            f"at ${INCEPTION_ENV_VAR}; or use the default classifier extractor"
        )
    path = inception_weights()
    if path is None:
        raise FileNotFoundError(
            f"extractor: no InceptionV3 weights on disk; copy {INCEPTION_FILE} (from the "
            f"torch-fidelity release page) to {torch.hub.get_dir()}/checkpoints/ or point "
            f"${INCEPTION_ENV_VAR} at it; nothing is downloaded at run time"
        )
    facts = {"name": "inception-v3", "path": str(path), "features": 2048, "classes": 1008}
    return FeatureExtractor("inception-v3", tuple(image_shape), facts, _Inception(path), 100)

r"""The state one sample-based evaluation shares: the samples, the reference split and the
floor split (the other held-out split), their features, and notes on what was skipped.

Built from samples and a dataset alone (no run, no model), so that any family's samples, and
data that a person brings, are evaluated the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import Dataset
from ..data.images import IMAGES
from ..plots import image_shape_of
from . import features as tfeatures

EXTRACTORS = ("auto", "classifier", "inception", "raw")


class Comparison:
    r"""Samples ``(n, *ds.shape)`` in the raw space of dataset ``ds`` against its ``split``.

    Args:
        samples: the samples; non-finite rows are dropped with a note.
        ds: the dataset the samples imitate.
        split: the reference split, ``"test"`` or ``"val"``; the other is the floor.
        seed: seeds every random choice of the metrics.
        out_dir: where metrics that draw a figure put it (``None``: no figures).
        log_likelihood: the model's data-space log-likelihood of ``(M, *ds.shape)`` points,
            for metrics that need a density (``None`` when the model has none).
        labels: ``(n,)`` the class each sample was drawn for (a class-conditional model), for
            metrics per class; ``None`` for unconditional samples.
    """

    def __init__(
        self,
        samples: Tensor,
        ds: Dataset,
        split: str,
        seed: int,
        out_dir: Path | None = None,
        log_likelihood: Callable[[Tensor], Tensor] | None = None,
        labels: Tensor | None = None,
    ) -> None:
        self.ds, self.split, self.seed = ds, split, seed
        self.out_dir, self.log_likelihood = out_dir, log_likelihood
        self.other = "val" if split == "test" else "test"
        self.ref = ds.split(split)
        self.floor = ds.split(self.other)
        self.image = ds.name in IMAGES
        self.image_shape = tuple(ds.shape) if len(ds.shape) == 3 else None
        if self.image and self.image_shape is None:
            self.image_shape = image_shape_of(ds.shape, ds.name)
        self.notes: list[str] = []
        n = samples.shape[0]
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (n,) or labels.is_floating_point() or labels.is_complex():
                raise ValueError(
                    f"labels: expected ({n},) integer classes of the samples, got "
                    f"{tuple(labels.shape)} {labels.dtype}"
                )
        finite = torch.isfinite(samples.reshape(n, -1)).all(dim=1)
        if not bool(finite.all()):
            self.notes.append(f"dropped {int((~finite).sum())} non-finite samples of {n}")
            samples = samples[finite]
            labels = None if labels is None else labels[finite]
        if samples.shape[0] < 10:
            raise ValueError(f"n: only {samples.shape[0]} finite samples; need at least 10")
        self.samples = samples
        self.labels = labels
        self.extractor: tfeatures.FeatureExtractor | None = None
        self.feats: dict[str, np.ndarray] = {}

    def pixels(self, x: Tensor) -> np.ndarray:
        r"""Raw values ``(N, D)`` (intensities for images) as float64."""
        if self.image:
            x = tfeatures.intensities(x, self.ds)
        return x.reshape(x.shape[0], -1).double().numpy()

    def set_extractor(
        self, choice: str | tfeatures.FeatureExtractor, root: str | Path | None
    ) -> None:
        r"""Embed the samples and both splits with ``choice``: a name from :data:`EXTRACTORS`
        or a :class:`~tractable.evaluation.features.FeatureExtractor` of one's own."""
        if isinstance(choice, tfeatures.FeatureExtractor):
            self.extractor = choice
            self.embed()
            return
        if choice not in EXTRACTORS:
            raise ValueError(f"extractor: expected one of {', '.join(EXTRACTORS)}, got {choice!r}")
        if not self.image:
            if choice not in ("auto", "raw"):
                raise ValueError(
                    f"extractor: {choice!r} embeds images; {self.ds.name!r} is not an image "
                    "dataset (its metrics use the raw coordinates: --extractor raw)"
                )
            self.extractor = tfeatures.raw()
        elif choice == "raw":
            self.extractor = tfeatures.raw(self.image_shape)
        elif choice == "inception":
            self.extractor = tfeatures.inception(self.image_shape)
        else:
            self.extractor = tfeatures.load(self.ds.name, root=root)
        self.embed()

    def embed(self) -> None:
        r"""Features (and class probabilities, when the extractor has a classifier) of the
        samples and of both splits, into :attr:`feats`."""
        ex = self.extractor
        inputs = {"samples": self.samples, "ref": self.ref, "floor": self.floor}
        for key, x in inputs.items():
            values = tfeatures.intensities(x, self.ds) if self.image else x
            self.feats[key] = ex.features(values)
            if ex.net is not None:
                self.feats[f"{key}_probs"] = ex.probs(values)


__all__ = ["EXTRACTORS", "Comparison"]

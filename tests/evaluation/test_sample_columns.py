"""The sample metrics behind the comparison report's newer columns: class coverage KL against
uniform, the birthday-paradox support size, the PCA plane and pluralistic diversity, through
:func:`tractable.evaluation.evaluate_samples` on known samplers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tractable import data as tdata
from tractable import metrics as tm
from tractable.evaluation import evaluate_samples, summary_lines
from tractable.evaluation.features import FeatureExtractor
from tractable.evaluation.functions import PLANE_FILE, kl_uniform


class BrightestPixel(nn.Module):
    r"""A classifier with a known rule: the class of an image is which of its first ten pixels
    is the brightest; the embedding is the pixels."""

    def forward(self, x: Tensor) -> Tensor:
        return 100.0 * x.reshape(x.shape[0], -1)[:, :10]

    def embed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def digits() -> tdata.Dataset:
    return tdata.load("digits")


def rule() -> FeatureExtractor:
    return FeatureExtractor("classifier:rule", (1, 8, 8), {"name": "rule"}, BrightestPixel())


def lit(classes: list[int]) -> Tensor:
    r"""Digits-space images (levels 0..16), image ``i`` with only pixel ``classes[i]`` lit."""
    x = torch.zeros(len(classes), 64)
    x[torch.arange(len(classes)), torch.tensor(classes)] = 16.0
    return x


def test_class_kl_against_uniform(digits: tdata.Dataset) -> None:
    result = evaluate_samples(lit([0] * 200), digits, "modes", extractor=rule())
    one = result["modes"]
    assert one["classes_covered"] == 1 and one["n_classes"] == 10
    assert one["kl_uniform"] == pytest.approx(math.log(10), abs=1e-12)
    balanced = evaluate_samples(lit(list(range(10)) * 20), digits, "modes", extractor=rule())
    assert balanced["modes"]["classes_covered"] == 10
    assert abs(balanced["modes"]["kl_uniform"]) < 1e-12
    # two classes in equal parts: log 10 - log 2
    two = evaluate_samples(lit([3, 7] * 50), digits, "modes", extractor=rule())["modes"]
    assert two["kl_uniform"] == pytest.approx(math.log(5), abs=1e-12)
    assert 0 <= two["data_kl_uniform"] <= math.log(10)  # held-out digits under the same rule
    assert kl_uniform(np.array([0.5, 0.5, 0.0, 0.0])) == pytest.approx(math.log(2))
    assert "KL(class histogram || uniform) 2.3026" in "\n".join(summary_lines(result))


def test_birthday_support_of_a_sampler_with_few_images(digits: tdata.Dataset) -> None:
    # a sampler that only ever returns one of 100 training images: about 100 images of support
    # (the data's closest pair is far above 0, so copies are its only near-duplicates)
    g = torch.Generator().manual_seed(0)
    atoms = digits.train[torch.randperm(digits.train.shape[0], generator=g)[:100]]
    samples = atoms[torch.randint(0, 100, (1000,), generator=g)]
    b = evaluate_samples(samples, digits, "birthday")["birthday"]
    assert b["threshold"] > 0 and b["batch"] == 179  # the test split's size
    assert not b["support"]["lower_bound"] and 50 <= b["support"]["estimate"] <= 200
    assert b["support"]["estimate"] == b["support"]["batch_size"] ** 2
    # held-out data at the same threshold: no batch of 179 holds a near-duplicate half the time
    floor = b["support_floor"]
    assert floor["estimate"] >= 80 * 80 and floor["estimate"] > 10 * b["support"]["estimate"]
    assert b["support"]["draws"] == 200 and b["support"]["pool"] == 1000  # every sample
    assert b["support_floor"]["pool"] == 179  # the val split


def test_pca_plane_of_a_perfect_sampler_is_its_floor(tmp_path: Path) -> None:
    ds = tdata.load("8gaussians", n_val=500, n_test=500)
    result = evaluate_samples(ds.val.clone(), ds, "pca", out_dir=tmp_path)
    plane = result["pca"]["plane"]
    assert plane["space"] == "raw" and plane["frechet"] == pytest.approx(plane["floor"])
    assert plane["frechet"] == pytest.approx(tm.pca_frechet(ds.test, ds.val), rel=1e-12)
    stored = json.loads((tmp_path / PLANE_FILE).read_text())
    assert stored["space"] == "raw" and len(stored["data"]) == len(stored["samples"]) == 500
    d2, _ = tm.pca_projection(ds.test, ds.val)
    np.testing.assert_allclose(np.sort(np.array(stored["data"])[:, 0]), np.sort(d2[:, 0]),
                               atol=1e-5)  # fmt: skip
    # a sampler that shrinks the data by half: its distance is far above the floor
    half = evaluate_samples(0.5 * ds.val, ds, "pca")["pca"]["plane"]
    assert half["frechet"] > 20 * max(half["floor"], 1e-3)


def test_pca_plane_of_images_is_in_the_extractors_space(digits: tdata.Dataset) -> None:
    result = evaluate_samples(digits.val.clone(), digits, "pca", extractor=rule())
    assert result["pca"]["plane"]["space"] == "classifier:rule"
    # no cached classifier and extractor auto: pixels, with a note
    auto = evaluate_samples(
        digits.val.clone(), digits, "pca", features_root=Path("/nonexistent/features")
    )
    assert auto["pca"]["plane"]["space"] == "raw"
    assert any(n.startswith("pca, pluralistic: in pixel space") for n in auto["notes"])


def test_pluralistic_per_class(digits: tdata.Dataset) -> None:
    g = torch.Generator().manual_seed(1)
    samples = digits.train[torch.randperm(digits.train.shape[0], generator=g)[:300]]
    labels = torch.arange(10).repeat_interleave(30)
    out = evaluate_samples(samples, digits, "pluralistic", extractor="raw", labels=labels)
    p = out["pluralistic"]
    m = int(digits.test_labels.bincount().min())  # 17: the reference split's smallest class
    assert p["m"] == m and p["classes"] == 10 and p["space"] == "raw"
    x = samples.reshape(10, 30, 64)[:, :m] / 16.0  # intensities
    assert p["value"] == pytest.approx(tm.pluralistic_diversity(x.numpy()), rel=1e-12)
    assert p["per_class"]["3"] == pytest.approx(tm.pluralistic_diversity([x[3].numpy()]))
    assert 0 < p["data"]
    # a sampler that gives one image per class has no diversity at all
    same = samples[::30].repeat_interleave(30, dim=0)
    flat = evaluate_samples(same, digits, "pluralistic", labels=labels)["pluralistic"]
    assert flat["value"] == 0.0 and flat["data"] > 0
    none = evaluate_samples(samples, digits, "pluralistic")
    assert "pluralistic" not in none
    assert any("class-conditional runs only" in n for n in none["notes"])
    with pytest.raises(ValueError, match=r"labels: expected \(300,\) integer classes"):
        evaluate_samples(samples, digits, "pluralistic", labels=labels.double())

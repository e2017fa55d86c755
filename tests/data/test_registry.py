"""The registry: names, descriptions, errors, options, to_dict/load_from_dict, Dataset checks."""

from __future__ import annotations

import json

import pytest
import torch

import tractable as tr
from tractable.data import Dataset, Preprocessor

EXPECTED = {
    "swissroll", "circles", "rings", "moons", "8gaussians", "pinwheel", "2spirals",
    "checkerboard", "grid25", "digits", "digits-binary", "digits-binary-fixed", "mnist5k",
    "mnist5k-binary", "mnist5k-binary-fixed", "mnist", "mnist-binary", "mnist-binary-fixed",
    "cifar10", "power", "gas", "hepmass", "miniboone", "bsds300",
}  # fmt: skip


def test_names_and_descriptions() -> None:
    names = tr.data.names()
    assert set(names) == EXPECTED and names == sorted(names)
    for name in names:
        text = tr.data.describe(name)
        assert text.startswith(f"{name} [") and len(text) > 30
    assert "data_root" in tr.data.describe("power")
    assert "data_root" not in tr.data.describe("moons")


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        tr.data.load("mooons")
    message = str(info.value)
    assert "mooons" in message and "moons" in message and "mnist5k-binary" in message
    assert "path" in message and "csv" in message
    with pytest.raises(ValueError, match="unknown dataset"):
        tr.data.describe("nope")


def test_names_are_case_insensitive_and_aliased() -> None:
    a = tr.data.load("MOONS", n=10, n_val=5, n_test=5)
    assert a.name == "moons"
    assert tr.data.load("swiss_roll", n=10, n_val=5, n_test=5).name == "swissroll"


def test_missing_file_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        tr.data.load(str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        tr.data.load(tmp_path / "sub" / "data.npy")


def test_unknown_options_name_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="unknown option.*'colour'.*n_val"):
        tr.data.load("moons", colour="red")
    with pytest.raises(TypeError, match="image"):
        tr.data.load("digits", n_val=3)


def test_bad_seed_n_and_dtype() -> None:
    with pytest.raises(ValueError, match="seed"):
        tr.data.load("moons", seed=-1)
    with pytest.raises(ValueError, match="seed"):
        tr.data.load("moons", seed=1.5)
    with pytest.raises(ValueError, match="n:"):
        tr.data.load("moons", n=0)
    with pytest.raises(ValueError, match="n:"):
        tr.data.load("digits", n=100000)
    with pytest.raises(ValueError, match="dtype"):
        tr.data.load("moons", dtype="int8")


def test_dtype_option() -> None:
    assert tr.data.load("moons", n=10, dtype="float32").train.dtype == torch.float32
    assert tr.data.load("digits", dtype=torch.float32).test.dtype == torch.float32
    assert tr.data.load("moons", n=10).train.dtype == torch.get_default_dtype()
    assert "dtype" not in tr.data.load("moons", n=10, dtype="float32").to_dict()["options"]


@pytest.mark.parametrize(
    ("name", "options"),
    [("moons", {"n_val": 50}), ("digits", {"image": True, "logit": 0.05}), ("mnist5k-binary", {})],
)
def test_to_dict_is_json_and_rebuilds_the_same_dataset(name: str, options: dict) -> None:
    ds = tr.data.load(name, seed=2, n=300, **options)
    d = json.loads(json.dumps(ds.to_dict()))
    assert d["name"] == name and d["seed"] == 2 and d["n"] == 300
    assert d["sizes"]["train"] == 300 and d["shape"] == list(ds.shape)
    again = tr.data.load_from_dict(d)
    for split in ("train", "val", "test"):
        assert torch.equal(again.split(split), ds.split(split))
    assert again.preprocess.to_dict() == ds.preprocess.to_dict()
    with pytest.raises(ValueError, match="source"):
        tr.data.load_from_dict({"name": "moons"})


def test_dataset_validates_its_fields() -> None:
    x = torch.zeros(4, 2)
    prep = Preprocessor((2,))
    kwargs = dict(name="t", train=x, val=x, test=x, shape=(2,), kind="continuous", levels=None)
    Dataset(**kwargs, preprocess=prep)
    with pytest.raises(ValueError, match="val"):
        Dataset(**{**kwargs, "val": torch.zeros(4, 3)}, preprocess=prep)
    with pytest.raises(ValueError, match="train_labels"):
        Dataset(**kwargs, preprocess=prep, train_labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="preprocess"):
        Dataset(**kwargs, preprocess=Preprocessor((3,)))
    with pytest.raises(TypeError, match="floating"):
        Dataset(**{**kwargs, "test": torch.zeros(4, 2, dtype=torch.long)}, preprocess=prep)
    with pytest.raises(ValueError, match="empty"):
        Dataset(**{**kwargs, "test": torch.zeros(0, 2)}, preprocess=prep)
    ds = Dataset(**kwargs, preprocess=prep)
    assert "train=4" in repr(ds) and ds.dims == 2 and ds.labels("val") is None
    with pytest.raises(ValueError, match="split"):
        ds.split("validation")

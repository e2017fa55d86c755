"""The smoke matrix: every registered model on every kind of built-in data.

Each pairing either trains two steps through :func:`tractable.runs.train_run`, is evaluated and
sampled from its run directory alone (:meth:`tractable.runs.Run.load`), or refuses up front with
a one-line ``ValueError`` saying why the pairing is not defined. The refusals are listed in
:data:`REFUSED`, so that a new one (or one that goes away) is noticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tractable.registry import MODELS
from tractable.runs import Run, train_run

# tiny options per model; the data decide the rest (e.g. a VAE's decoder)
OPTIONS: dict[str, dict[str, Any]] = {
    "maf": {"transforms": 1, "hidden": [8]},
    "iaf": {"transforms": 1, "hidden": [8]},
    "realnvp": {"transforms": 2, "hidden": [8]},
    "nice": {"transforms": 2, "hidden": [8]},
    "nsf": {"transforms": 1, "hidden": [8], "bins": 4},
    "planar": {"transforms": 2},
    "radial": {"transforms": 2},
    "gaussian": {},
    "mixture": {"components": 3},
    "ffjord": {"hidden": [8], "solver": "rk4", "steps": 2, "adjoint": False},
    "glow": {"depth": 1, "hidden": 4, "levels": 1},
    "multiscale-realnvp": {"depth": 1, "hidden": 4, "blocks": 1},
    "vae": {"latent": 2, "hidden": [8]},
    "gan": {"hidden": [8], "width": 4, "noise": 4},
    "flow-matching": {"hidden": [8], "solver": "rk4", "steps": 2},
    "ddpm": {"hidden": [8], "steps": 4, "solver": "rk4", "ode_steps": 2},
}

# the kinds of data: a toy, a user table, binary, discrete and continuous images (a user
# .npy of shape (N, 1, 8, 8): the file loader keeps image shapes, so image models take it)
DATA = ("toy", "tabular", "binary-image", "discrete-image", "continuous-image")

# pairings that are not defined, written out so that a new refusal (or a lifted one) is
# noticed: image models on data without an image shape
REFUSED: set[tuple[str, str]] = {
    ("glow", "toy"),
    ("glow", "tabular"),
    ("multiscale-realnvp", "toy"),
    ("multiscale-realnvp", "tabular"),
}


def test_every_registered_model_is_in_the_matrix() -> None:
    assert set(OPTIONS) == set(MODELS)
    assert {m for m, _ in REFUSED} <= set(MODELS) and {d for _, d in REFUSED} <= set(DATA)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("smoke-data")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(60, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0, 0, 1]])
    csv = root / "table.csv"
    np.savetxt(csv, table, delimiter=",", header="a,b,c", comments="")
    images = root / "images.npy"
    np.save(images, rng.normal(size=(60, 1, 8, 8)))
    return {"tabular": str(csv), "continuous-image": str(images)}


def _data(kind: str, files: dict[str, str]) -> tuple[str, dict[str, Any]]:
    r"""The ``data`` argument and the keyword arguments of :func:`train_run` for ``kind``."""
    if kind == "toy":
        return "moons", {"n": 64, "data_options": {"n_val": 32, "n_test": 32}}
    if kind == "binary-image":
        return "digits-binary", {"n": 64}
    if kind == "discrete-image":
        return "digits", {"n": 64}
    return files[kind], {}


# the whole matrix takes about 20 s on one thread, so none of it is marked slow
PAIRINGS = [pytest.param(m, d, id=f"{m}-{d}") for m in MODELS for d in DATA]


@pytest.mark.parametrize(("model", "data"), PAIRINGS)
def test_train_evaluate_sample(
    model: str, data: str, files: dict[str, str], tmp_path: Path
) -> None:
    name, kwargs = _data(data, files)
    out = tmp_path / "run"
    common = {
        "model": model,
        "data": name,
        "steps": 2,
        "batch_size": 16,
        "out": out,
        "options": OPTIONS[model],
        "progress": False,
        "plots": False,
        **kwargs,
    }
    if (model, data) in REFUSED:
        with pytest.raises(ValueError) as err:
            train_run(**common)
        message = str(err.value)
        assert "\n" not in message and message.strip()
        assert not out.exists()  # refused up front: nothing written
        return
    metrics = train_run(**common)
    assert metrics["steps"] == 2
    run = Run.load(out)
    assert run.likelihood == MODELS[model].likelihood
    if run.likelihood != "none":
        test = run.estimate("test")
        assert np.isfinite(test["test_nll"]) and np.isfinite(test["test_nll_se"])
        assert test["test_nll"] == pytest.approx(metrics["test_nll"], rel=1e-12)
    samples = run.sample(3)
    assert samples.shape[0] == 3 and torch.isfinite(samples).all()
    assert tuple(samples.shape[1:]) == run.data_shape

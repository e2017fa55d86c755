"""2D toys: FFJORD's recipes, determinism, independence from global RNG state, mode centres."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.stats
import torch

import tractable as tr
from tractable.data import sample_toy, toy_modes

TOYS = [
    "swissroll", "circles", "rings", "moons", "8gaussians", "pinwheel", "2spirals",
    "checkerboard", "grid25",
]  # fmt: skip


@pytest.mark.parametrize("name", TOYS)
def test_toy_is_deterministic_and_leaves_global_state_alone(name: str) -> None:
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking the global state
    torch_state = torch.get_rng_state()
    a = tr.data.load(name, seed=3, n=500, n_val=100, n_test=100)
    b = tr.data.load(name, seed=3, n=500, n_val=100, n_test=100)
    c = tr.data.load(name, seed=4, n=500, n_val=100, n_test=100)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split), b.split(split))
        assert not torch.equal(a.split(split), c.split(split))
        assert torch.isfinite(a.split(split)).all()
    assert a.train.shape == (500, 2) and a.val.shape == (100, 2) and a.test.shape == (100, 2)
    # the three splits are independent draws, not copies of one another
    assert not torch.equal(a.val, a.test)
    assert a.kind == "continuous" and a.levels is None and a.shape == (2,)


def test_default_sizes_and_fast_loading() -> None:
    start = time.perf_counter()
    ds = tr.data.load("moons")
    elapsed = time.perf_counter() - start
    assert ds.sizes() == {"train": 20000, "val": 5000, "test": 5000}
    assert elapsed < 1.0  # 0.01 s on an idle core; generous for a shared machine


def test_test_split_does_not_depend_on_training_size() -> None:
    small = tr.data.load("pinwheel", n=100)
    large = tr.data.load("pinwheel", n=3000)
    assert torch.equal(small.test, large.test) and torch.equal(small.val, large.val)


def test_exactly_n_points_for_odd_sizes() -> None:
    rng = np.random.default_rng(0)
    for name in TOYS:
        for n in (1, 7, 13):
            assert sample_toy(name, n, rng).shape == (n, 2)


# ------------------------------------------------------------ recipe statistics


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)


@pytest.mark.parametrize(
    ("name", "k", "std"), [("8gaussians", 8, 0.5 / 1.414), ("grid25", 25, 0.05)]
)
def test_mixture_toys_weights_and_widths(name: str, k: int, std: float) -> None:
    x = sample_toy(name, 20000, np.random.default_rng(1))
    centres = toy_modes(name)
    assert centres.shape == (k, 2)
    idx = _nearest(x, centres)
    counts = np.bincount(idx, minlength=k) / len(x)
    assert np.all(np.abs(counts - 1 / k) < 4 * math.sqrt((1 / k) / len(x)) + 1e-3)
    resid = x - centres[idx]
    assert np.allclose(resid.std(axis=0), std, rtol=0.05)
    assert np.allclose(resid.mean(axis=0), 0.0, atol=0.02)


def test_grid25_std_option_and_modes() -> None:
    ds = tr.data.load("grid25", n=5000, std=0.2)
    resid = ds.train.numpy() - toy_modes("grid25")[_nearest(ds.train.numpy(), toy_modes("grid25"))]
    assert resid.std() == pytest.approx(0.2, rel=0.05)
    assert ds.to_dict()["options"]["std"] == 0.2
    assert sorted(set(toy_modes("grid25")[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="std"):
        sample_toy("moons", 10, np.random.default_rng(0), std=0.1)
    with pytest.raises(ValueError, match="no point modes"):
        toy_modes("rings")
    with pytest.raises(ValueError, match="8gaussians"):
        toy_modes("nope")


def test_8gaussians_modes_lie_on_a_circle() -> None:
    r = np.linalg.norm(toy_modes("8gaussians"), axis=1)
    assert np.allclose(r, 4 / 1.414)


def test_rings_and_circles_radii() -> None:
    rng = np.random.default_rng(2)
    r = np.linalg.norm(sample_toy("rings", 4000, rng), axis=1)
    for radius in (3.0, 2.25, 1.5, 0.75):
        near = np.abs(r - radius) < 0.35
        assert abs(near.mean() - 0.25) < 0.03
    r = np.linalg.norm(sample_toy("circles", 4000, rng), axis=1)
    assert abs((r > 2.25).mean() - 0.5) < 0.01


def test_checkerboard_occupies_the_black_squares_only() -> None:
    x = sample_toy("checkerboard", 10000, np.random.default_rng(3))
    assert np.all((x >= -4) & (x <= 4))
    cell = np.floor(x / 2).astype(int)
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)
    counts = np.unique(cell, axis=0, return_counts=True)[1]
    assert len(counts) == 8 and counts.min() > 1100


def _ks_same(a: np.ndarray, b: np.ndarray) -> None:
    for j in range(2):
        assert scipy.stats.ks_2samp(a[:, j], b[:, j]).pvalue > 1e-3, f"coordinate {j}"
    # also along a diagonal, which sees the joint structure
    assert scipy.stats.ks_2samp(a.sum(1), b.sum(1)).pvalue > 1e-3


def test_sklearn_recipes_match_sklearn() -> None:
    from sklearn.datasets import make_circles, make_moons, make_swiss_roll

    n, rng = 10000, np.random.default_rng(4)
    ref = {
        "swissroll": make_swiss_roll(n, noise=1.0, random_state=0)[0][:, [0, 2]] / 5,
        "circles": make_circles(n, factor=0.5, noise=0.08, random_state=0)[0] * 3,
        "moons": make_moons(n, noise=0.1, random_state=0)[0] * 2 + np.array([-1, -0.2]),
    }
    for name, expected in ref.items():
        _ks_same(sample_toy(name, n, rng), expected)


def _reference(name: str, n: int, rs: np.random.RandomState) -> np.ndarray:
    # FFJORD's recipes as published, written loop by loop with a legacy RandomState
    if name == "8gaussians":
        c = [(1, 0), (-1, 0), (0, 1), (0, -1)]
        c += [(a / math.sqrt(2), b / math.sqrt(2)) for a in (1, -1) for b in (1, -1)]
        pts = [rs.randn(2) * 0.5 + 4 * np.array(c[rs.randint(8)]) for _ in range(n)]
        return np.array(pts) / 1.414
    if name == "pinwheel":
        per = n // 5
        rads = np.linspace(0, 2 * np.pi, 5, endpoint=False)
        f = rs.randn(5 * per, 2) * np.array([0.3, 0.1])
        f[:, 0] += 1.0
        labels = np.repeat(np.arange(5), per)
        angles = rads[labels] + 0.25 * np.exp(f[:, 0])
        rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
        rot = rot.T.reshape(-1, 2, 2)
        return 2 * np.einsum("ti,tij->tj", f, rot)
    if name == "2spirals":
        t = np.sqrt(rs.rand(n // 2, 1)) * 540 * (2 * np.pi) / 360
        d1x = -np.cos(t) * t + rs.rand(n // 2, 1) * 0.5
        d1y = np.sin(t) * t + rs.rand(n // 2, 1) * 0.5
        x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
        return x + rs.randn(*x.shape) * 0.1
    if name == "checkerboard":
        x1 = rs.rand(n) * 4 - 2
        x2 = rs.rand(n) - rs.randint(0, 2, n) * 2 + np.floor(x1) % 2
        return np.stack([x1, x2], 1) * 2
    # rings
    q = n // 4
    circles = []
    for count, radius in ((q, 1.0), (q, 0.75), (q, 0.5), (n - 3 * q, 0.25)):
        a = np.linspace(0, 2 * np.pi, count, endpoint=False)
        circles.append(np.stack([np.cos(a), np.sin(a)], 1) * radius)
    x = np.concatenate(circles) * 3.0
    x = x[rs.permutation(n)]
    return x + rs.normal(scale=0.08, size=x.shape)


@pytest.mark.parametrize("name", ["8gaussians", "pinwheel", "2spirals", "checkerboard", "rings"])
def test_ffjord_recipes_match_the_published_ones(name: str) -> None:
    n = 10000
    _ks_same(
        sample_toy(name, n, np.random.default_rng(5)), _reference(name, n, np.random.RandomState(0))
    )


def test_standardize_option_on_a_toy() -> None:
    ds = tr.data.load("8gaussians", n=2000, standardize=True)
    y, ladj = ds.preprocess.eval(ds.train)
    assert torch.allclose(y.mean(0), torch.zeros(2), atol=1e-10)
    assert torch.allclose(ladj, -torch.log(ds.train.std(0, unbiased=False)).sum().expand(2000))


def test_bad_toy_arguments() -> None:
    with pytest.raises(ValueError, match="n_val"):
        tr.data.load("moons", n_val=0)
    with pytest.raises(ValueError, match="n:"):
        sample_toy("moons", 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        sample_toy("moons", 5, 0)

"""Fixtures of the human-evaluation tests: a small image pool whose sources a scripted rater can
tell apart by brightness (real digits and model 'alpha' are dark strokes, model 'beta' is bright,
noise is grey), so that the expected results are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tractable.humaneval import create_pool


def strokes(rng: np.random.Generator, n: int, on: float) -> np.ndarray:
    r"""``n`` 8x8 binary images with a fraction ``on`` of lit pixels, ``(n, 1, 8, 8)``."""
    return (rng.uniform(size=(n, 1, 8, 8)) < on).astype(np.float64)


def make_pool(db: Path, turing: int = 2, pairs: int = 2, checks: int = 2) -> Path:
    rng = np.random.default_rng(0)
    generated = {"alpha": strokes(rng, 6, 0.2), "beta": strokes(rng, 6, 0.8)}
    create_pool(db, generated, strokes(rng, 8, 0.2), noise=4, turing=turing, pairs=pairs,
                checks=checks)  # fmt: skip
    return db


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return make_pool(tmp_path / "he.sqlite")

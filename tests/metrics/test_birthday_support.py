"""Birthday-paradox support size: uniform distributions over a known number of atoms, a pool
with one duplicate pair (exact duplicate probabilities), and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tractable.metrics import BirthdaySupport, birthday_support


def _uniform(n_atoms: int, pool: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_atoms, 6)) * 3.0 + 50.0  # an offset stresses the round-off
    return atoms[rng.integers(0, n_atoms, size=pool)]


@pytest.mark.parametrize("n_atoms", [400, 6000])
def test_uniform_support_within_a_factor_two(n_atoms: int) -> None:
    # a batch of s iid uniform draws over S atoms holds a duplicate with probability
    # 1 - prod_{k<s}(1 - k/S); the s where that crosses 1/2 satisfies s^2 ~ 2 ln 2 S
    out = birthday_support(_uniform(n_atoms, 3000, seed=n_atoms), draws=400, seed=1)
    assert isinstance(out, BirthdaySupport) and not out.lower_bound
    assert n_atoms / 2 < out.estimate < 2 * n_atoms
    exact = next(
        s for s in range(2, 10**4)
        if 1 - math.prod(1 - k / n_atoms for k in range(s)) >= 0.5
    )  # fmt: skip
    assert abs(out.batch_size - exact) <= 0.12 * exact  # the median of 400 first collisions
    assert out.duplicate_rate >= 0.5 and out.estimate == out.batch_size**2


def test_one_duplicate_pair_has_the_exact_probability() -> None:
    # with one duplicate pair among n rows, a random prefix of length s holds both with
    # probability s(s-1) / (n(n-1)): the median first collision is where that reaches 1/2
    n = 60
    x = np.random.default_rng(0).normal(size=(n, 3))
    x[41] = x[7]
    out = birthday_support(torch.from_numpy(x), draws=4000, seed=0, chunk_size=16)
    exact = next(s for s in range(2, n + 1) if s * (s - 1) >= n * (n - 1) / 2)
    assert abs(out.batch_size - exact) <= 1
    assert out.duplicate_rate == pytest.approx(exact * (exact - 1) / (n * (n - 1)), abs=0.05)


def test_threshold_counts_pairs_at_the_distance() -> None:
    x = np.zeros((50, 2)) + 100.0
    x[:, 0] += np.arange(50) * 10.0  # rows 10 apart: no pair within 9.99
    x[30] = x[29] + np.array([0.0, 0.5])  # one pair at distance 0.5 exactly (x is exact)
    assert birthday_support(x, threshold=0.49).lower_bound
    assert not birthday_support(x, threshold=0.5, draws=400).lower_bound
    everything = birthday_support(x, threshold=1e9)  # every pair: any batch of 2 collides
    assert everything.batch_size == 2 and everything.estimate == 4.0


def test_no_duplicate_is_a_lower_bound() -> None:
    x = np.random.default_rng(3).random((200, 5))
    out = birthday_support(x, draws=50)
    assert out.lower_bound and out.batch_size is None
    assert out.estimate == 200.0**2 and out.duplicate_rate == 0.0


def test_seeded_and_bad_input() -> None:
    x = _uniform(300, 500, seed=0)
    assert birthday_support(x, seed=5) == birthday_support(x, seed=5)
    with pytest.raises(ValueError, match="threshold: expected a float >= 0"):
        birthday_support(x, threshold=-1.0)
    with pytest.raises(ValueError, match="draws: expected an int >= 1"):
        birthday_support(x, draws=0)
    with pytest.raises(TypeError, match="seed: expected an int"):
        birthday_support(x, seed=1.5)
    with pytest.raises(ValueError, match="samples: expected at least 2 rows"):
        birthday_support(x[:1])

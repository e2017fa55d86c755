r"""Two-dimensional toy densities.

The recipes are those of FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py``), which itself
uses scikit-learn's ``make_swiss_roll``, ``make_circles`` and ``make_moons`` for three of them;
here every recipe is written out with a seeded :class:`numpy.random.Generator`, so a toy never
reads or advances numpy's global state. Two deliberate departures: every sampler returns
exactly ``n`` points (FFJORD's ``pinwheel`` and ``2spirals`` round ``n`` down), and the
samples whose recipe orders them by component (``2spirals``) are shuffled.

``grid25`` is the 5 x 5 grid of Gaussians at :math:`\{-4, -2, 0, 2, 4\}^2` with standard
deviation 0.05 used to measure mode collapse (Srivastava et al. 2017, VEEGAN; Lin et al. 2018,
PacGAN).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .dataset import Dataset, seeded_rng, to_tensor
from .preprocess import Preprocessor, fit_standardizer

__all__ = ["TOYS", "load_toy", "sample_toy", "toy_modes"]

Sampler = Callable[[int, np.random.Generator], np.ndarray]


def _swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    # make_swiss_roll(n, noise=1.0)[:, [0, 2]] / 5
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return (x + rng.standard_normal((n, 2))) / 5.0


def _shuffled_with_noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    x = x[rng.permutation(len(x))]
    return x + std * rng.standard_normal(x.shape)


def _circle(n: int, radius: float) -> np.ndarray:
    a = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    # make_circles(n, factor=0.5, noise=0.08) * 3
    n_out = n // 2
    x = np.concatenate([_circle(n_out, 1.0), _circle(n - n_out, 0.5)])
    return 3.0 * _shuffled_with_noise(x, 0.08, rng)


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    # four rings of radius 3, 2.25, 1.5, 0.75; the innermost takes the remainder of n / 4
    q = n // 4
    x = np.concatenate(
        [_circle(q, 1.0), _circle(q, 0.75), _circle(q, 0.5), _circle(n - 3 * q, 0.25)]
    )
    x = 3.0 * x[rng.permutation(n)]
    return x + 0.08 * rng.standard_normal(x.shape)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    # make_moons(n, noise=0.1) * 2 + [-1, -0.2]
    n_out = n // 2
    a_out = np.linspace(0.0, math.pi, n_out)
    a_in = np.linspace(0.0, math.pi, n - n_out)
    outer = np.stack([np.cos(a_out), np.sin(a_out)], axis=1)
    inner = np.stack([1.0 - np.cos(a_in), 1.0 - np.sin(a_in) - 0.5], axis=1)
    x = _shuffled_with_noise(np.concatenate([outer, inner]), 0.1, rng)
    return 2.0 * x + np.array([-1.0, -0.2])


_EIGHT = np.array(
    [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)]
    + [(sx / math.sqrt(2.0), sy / math.sqrt(2.0)) for sx in (1, -1) for sy in (1, -1)]
)


def _8gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    # centre 4 (cos k pi/4, sin k pi/4) plus 0.5 N(0, I), all divided by 1.414
    centres = 4.0 * _EIGHT[rng.integers(0, 8, size=n)]
    return (centres + 0.5 * rng.standard_normal((n, 2))) / 1.414


def _pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    # 5 arms; f ~ N((1, 0), diag(0.3^2, 0.1^2)) rotated by 2 pi c / 5 + 0.25 exp(f_0), times 2
    arm = np.arange(n) % 5
    f = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    f[:, 0] += 1.0
    a = 2.0 * math.pi * arm / 5.0 + 0.25 * np.exp(f[:, 0])
    c, s = np.cos(a), np.sin(a)
    x = np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], axis=1)
    return 2.0 * x[rng.permutation(n)]


def _2spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    # t = sqrt(U) 3 pi; (-t cos t, t sin t) + U/2 and its negation; / 3; + 0.1 N(0, I)
    m = (n + 1) // 2
    t = np.sqrt(rng.random(m)) * 3.0 * math.pi
    arm = np.stack(
        [-np.cos(t) * t + 0.5 * rng.random(m), np.sin(t) * t + 0.5 * rng.random(m)], axis=1
    )
    x = np.concatenate([arm, -arm])[:n] / 3.0
    x = x + 0.1 * rng.standard_normal(x.shape)
    return x[rng.permutation(n)]


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = 4.0 * rng.random(n) - 2.0
    x2 = rng.random(n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


_GRID = np.array([(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)])


def _grid25(n: int, rng: np.random.Generator, std: float = 0.05) -> np.ndarray:
    return _GRID[rng.integers(0, 25, size=n)] + std * rng.standard_normal((n, 2))


_SAMPLERS: dict[str, Sampler] = {
    "swissroll": _swissroll,
    "circles": _circles,
    "rings": _rings,
    "moons": _moons,
    "8gaussians": _8gaussians,
    "pinwheel": _pinwheel,
    "2spirals": _2spirals,
    "checkerboard": _checkerboard,
    "grid25": _grid25,
}

TOYS: dict[str, str] = {
    "swissroll": "2D swiss roll, make_swiss_roll(noise=1) on (x, z), scaled by 1/5 (FFJORD).",
    "circles": "2D two concentric circles of radius 3 and 1.5 with N(0, 0.24^2) noise (FFJORD).",
    "rings": "2D four concentric rings of radius 3, 2.25, 1.5, 0.75, noise 0.08 (FFJORD).",
    "moons": "2D two interleaving half-moons, make_moons(noise=0.1) * 2 + (-1, -0.2) (FFJORD).",
    "8gaussians": "2D eight Gaussians on a circle of radius 2.83, std 0.35 (FFJORD).",
    "pinwheel": "2D pinwheel with five curved arms (FFJORD).",
    "2spirals": "2D two interleaved spirals (FFJORD).",
    "checkerboard": "2D checkerboard of eight uniform squares in [-4, 4]^2 (FFJORD).",
    "grid25": "2D 5x5 grid of Gaussians at {-4,-2,0,2,4}^2, std 0.05 (option std) (VEEGAN).",
}


def sample_toy(
    name: str, n: int, rng: np.random.Generator, *, std: float | None = None
) -> np.ndarray:
    r"""``n`` samples ``(n, 2)`` (float64) of toy ``name``, drawn from ``rng`` only.

    ``std`` sets the width of the ``grid25`` components (default 0.05).

    Example:
        >>> import numpy as np
        >>> x = sample_toy("8gaussians", 1000, np.random.default_rng(0))
        >>> x.shape, bool(np.abs(np.linalg.norm(x, axis=1).mean() - 2.83) < 0.1)
        ((1000, 2), True)
    """
    if name not in _SAMPLERS:
        raise ValueError(f"name: expected one of {sorted(_SAMPLERS)}, got {name!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if std is not None and name != "grid25":
        raise ValueError(f"std: only grid25 takes a std, not {name!r}")
    if name == "grid25" and std is not None:
        if not isinstance(std, int | float) or isinstance(std, bool) or not std > 0:
            raise ValueError(f"std: expected a float > 0, got {std!r}")
        return _grid25(n, rng, float(std))
    return _SAMPLERS[name](n, rng)


def toy_modes(name: str) -> np.ndarray:
    r"""Centres ``(K, 2)`` of the components of a mixture toy (``8gaussians``: 8, ``grid25``: 25).

    Example:
        >>> toy_modes("grid25").shape, toy_modes("8gaussians").shape
        ((25, 2), (8, 2))
    """
    if name == "8gaussians":
        return 4.0 * _EIGHT / 1.414
    if name == "grid25":
        return _GRID.copy()
    if name in _SAMPLERS:
        raise ValueError(
            f"name: {name!r} has no point modes (only '8gaussians' and 'grid25' are mixtures "
            "of Gaussians with known centres)"
        )
    raise ValueError(f"name: expected '8gaussians' or 'grid25', got {name!r}")


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return value


def load_toy(
    name: str,
    *,
    seed: int,
    n: int | None,
    dtype: torch.dtype | None = None,
    n_val: int = 5000,
    n_test: int = 5000,
    standardize: bool = False,
    std: float | None = None,
) -> Dataset:
    r"""A toy :class:`Dataset`: ``n`` (default 20,000) training points and ``n_val``/``n_test``
    (default 5,000) validation/test points, each split drawn from its own seeded stream."""
    n_train = 20_000 if n is None else _check_size(n, "n")
    sizes = {
        "train": n_train,
        "val": _check_size(n_val, "n_val"),
        "test": _check_size(n_test, "n_test"),
    }
    x = {
        split: to_tensor(sample_toy(name, size, seeded_rng(seed, name, split), std=std), dtype)
        for split, size in sizes.items()
    }
    prep = fit_standardizer(x["train"]) if standardize else Preprocessor((2,), "continuous")
    options: dict[str, object] = {"n_val": n_val, "n_test": n_test, "standardize": standardize}
    if std is not None:
        options["std"] = std
    return Dataset(
        name=name,
        train=x["train"],
        val=x["val"],
        test=x["test"],
        shape=(2,),
        kind="continuous",
        levels=None,
        preprocess=prep,
        seed=seed,
        n=n,
        options=options,
        info=TOYS[name],
    )

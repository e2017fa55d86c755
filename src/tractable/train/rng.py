r"""Seeding and capturing the global random number generators, without pickle.

Models may draw noise inside ``loss`` (a VAE's reparameterised sample, a CNF's Hutchinson
probe) from torch's global generator, so the trainer seeds it and stores its state in every
checkpoint; Python's ``random`` and NumPy's global generator are seeded and stored too, in case
user code draws from them. States are plain tensors, ints and lists, ready for
:func:`~tractable.train.serialization.encode_state`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .batches import derive_seed


def seed_globals(seed: int, rank: int = 0) -> None:
    r"""Seed torch (CPU and CUDA), NumPy and Python ``random`` with streams derived from
    ``(seed, rank)``, so that ranks draw different noise.

    Example:
        >>> seed_globals(3); a = torch.rand(1)
        >>> seed_globals(3); bool(torch.rand(1) == a)
        True
    """
    torch.manual_seed(derive_seed(seed, "torch", rank))
    np.random.seed(derive_seed(seed, "numpy", rank) % (1 << 32))  # noqa: NPY002
    random.seed(derive_seed(seed, "python", rank))


def capture_globals() -> dict[str, Any]:
    r"""The current states of the global generators, as tensors and JSON-ready values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_globals(state: dict[str, Any]) -> None:
    r"""Inverse of :func:`capture_globals`."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    legacy = (npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


__all__ = ["capture_globals", "restore_globals", "seed_globals"]

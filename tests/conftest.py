"""Test-wide settings: float64 by default, fixed seeds, one thread (CI has 2 cores)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

torch.set_default_dtype(torch.float64)


@pytest.fixture(autouse=True)
def _seed_and_dtype() -> None:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - code under test may still use the legacy global state
    random.seed(0)

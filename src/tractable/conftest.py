"""Doctest settings: the examples run in float32 with a fixed seed."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_env(doctest_namespace: dict) -> Iterator[None]:
    # restored afterwards: a module-scoped fixture of the next test file (set up before that
    # file's own autouse fixtures) must not inherit float32 from a doctest
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    doctest_namespace["math"] = math
    doctest_namespace["torch"] = torch
    yield
    torch.set_default_dtype(previous)

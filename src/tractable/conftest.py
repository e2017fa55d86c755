"""Doctest settings: the examples run in float32 with a fixed seed."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_env(doctest_namespace: dict) -> None:
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    doctest_namespace["math"] = math
    doctest_namespace["torch"] = torch

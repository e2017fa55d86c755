"""The dynamics networks: shapes, time and context dependence, argument checks."""

from __future__ import annotations

import pytest
import torch

from tractable.nn import ODEMLP, ConcatLinear, ConcatSquashLinear


@pytest.mark.parametrize("layer", ["concatsquash", "concat"])
def test_odemlp_shapes_and_time_dependence(layer: str) -> None:
    f = ODEMLP(3, context=2, hidden=(8, 8), layer=layer)
    z, c = torch.randn(5, 3), torch.randn(5, 2)
    out0 = f(torch.tensor(0.0), z, c)
    out1 = f(torch.tensor(1.0), z, c)
    assert out0.shape == (5, 3)
    assert (out0 - out1).abs().max() > 1e-3  # time is an input
    assert (out0 - f(torch.tensor(0.0), z, c + 1.0)).abs().max() > 1e-3  # so is the context


def test_odemlp_rows_are_independent() -> None:
    f = ODEMLP(2, hidden=(8,))
    z = torch.randn(6, 2)
    full = f(torch.tensor(0.3), z)
    single = torch.cat([f(torch.tensor(0.3), z[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(full, single)


@pytest.mark.parametrize("cls", [ConcatLinear, ConcatSquashLinear])
def test_layers_accept_python_float_time(cls: type) -> None:
    layer = cls(2, 3, context=1)
    out = layer(0.5, torch.zeros(4, 2), torch.ones(4, 1))
    assert out.shape == (4, 3)


def test_odemlp_context_checks() -> None:
    with pytest.raises(ValueError, match="context"):
        ODEMLP(2)(torch.tensor(0.0), torch.zeros(1, 2), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="context"):
        ODEMLP(2, context=1)(torch.tensor(0.0), torch.zeros(1, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"features": 0}, ValueError, "features"),
        ({"features": 2, "hidden": 8}, TypeError, "hidden"),
        ({"features": 2, "hidden": (8, 0)}, ValueError, r"hidden\[1\]"),
        ({"features": 2, "layer": "dense"}, ValueError, "layer"),
        ({"features": 2, "activation": "relu"}, ValueError, "activation"),
        ({"features": 2, "context": -1}, ValueError, "context"),
    ],
)
def test_odemlp_bad_arguments(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        ODEMLP(**kwargs)

r"""Building blocks shared by every network of :mod:`tractable.nn`: activations by name.

Example:
    >>> activation("tanh")
    Tanh()
    >>> activation_factory("relu")()
    ReLU()
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def activation_factory(activation: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    r"""A factory of activation modules: a name from :data:`ACTIVATIONS`, or a callable that
    returns a fresh module (passed through)."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"activation: expected a name or a module factory, got {activation!r}")
    return activation


def activation(name: str) -> nn.Module:
    r"""A fresh activation module by name (one of :data:`ACTIVATIONS`)."""
    return activation_factory(name)()


__all__ = ["ACTIVATIONS", "activation", "activation_factory"]

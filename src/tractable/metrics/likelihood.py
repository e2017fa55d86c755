r"""Likelihood summaries: mean negative log-likelihood with its standard error, and bits/dim.

For discrete data with ``levels`` values per dimension, dequantized to :math:`u = (x + U)/L`
and then mapped by a preprocessing :math:`y = g(u)` (e.g. the logit transform), the model's
density :math:`p_Y` gives a lower bound on the discrete log-probability
(Theis et al. 2016, "A note on the evaluation of generative models"):

.. math:: \log P(x) \ge \mathbb{E}_U\left[\log p_Y(g(u)) + \log|\det J_g(u)|\right] - D \log L,

so bits/dim is :math:`\left(\text{NLL}_Y - \log|\det J_g| + D \log L\right) / (D \ln 2)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mean_and_se(values: Tensor) -> tuple[float, float]:
    r"""The mean of ``values`` (N,) and its standard error :math:`s / \sqrt{N}`.

    Example:
        >>> import torch
        >>> mean_and_se(torch.tensor([1.0, 2.0, 3.0]))
        (2.0, 0.5773502691896258)
    """
    if not isinstance(values, Tensor):
        raise TypeError(f"values: expected a torch.Tensor, got {type(values).__name__}")
    values = values.detach().reshape(-1).double()
    if values.numel() == 0:
        raise ValueError("values: expected at least one value, got an empty tensor")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("values: expected finite values, found NaN or infinity")
    n = values.numel()
    se = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.nan
    return float(values.mean()), se


def data_space_nll(nll_model: Tensor, ladj_preprocess: Tensor) -> Tensor:
    r"""Per-example NLL in the space before preprocessing:
    :math:`-\log p_X(u) = -\log p_Y(g(u)) - \log|\det J_g(u)|`."""
    return nll_model - ladj_preprocess


def bits_per_dim(nll_nats: Tensor | float, dims: int, levels: int | None = None) -> Tensor | float:
    r"""Convert an NLL in nats (of data scaled to :math:`[0, 1]`) to bits per dimension.

    With ``levels`` given, the NLL is that of the dequantized density on :math:`[0,1]^D` and the
    bin width :math:`1/L` is added back: :math:`(\text{NLL} + D \log L) / (D \ln 2)`.

    Example:
        >>> # a uniform density on [0, 1]^D of 256-level data is exactly 8 bits/dim
        >>> bits_per_dim(0.0, dims=784, levels=256)
        8.0
    """
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims: expected an int >= 1, got {dims!r}")
    if levels is not None and (
        isinstance(levels, bool) or not isinstance(levels, int) or levels < 2
    ):
        raise ValueError(f"levels: expected an int >= 2 or None, got {levels!r}")
    offset = dims * math.log(levels) if levels is not None else 0.0
    return (nll_nats + offset) / (dims * math.log(2))

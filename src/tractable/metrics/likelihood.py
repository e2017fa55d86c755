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

from ..checks import warn_undefined_se


def mean_and_se(values: Tensor) -> tuple[float, float | None]:
    r"""The mean of ``values`` (N,) and its standard error :math:`s / \sqrt{N}`.

    The standard error of a single value is undefined: it is returned as ``None`` (JSON
    ``null``), never NaN, with an :class:`~tractable.checks.UndefinedStandardErrorWarning`.

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
    if n == 1:
        warn_undefined_se("values")
        return float(values[0]), None
    mean, std = float(values.mean()), float(values.std(unbiased=True))
    if not (math.isfinite(mean) and math.isfinite(std)):
        # values near the float64 limit overflow the sums: scale by the largest magnitude
        scale = float(values.abs().max())
        unit = values / scale
        mean, std = scale * float(unit.mean()), scale * float(unit.std(unbiased=True))
    return mean, std / math.sqrt(n)


def _check_vector(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 1:
        raise ValueError(f"{name}: expected shape (N,), got {tuple(value.shape)}")
    if value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    if not bool(torch.isfinite(value).all()):
        raise ValueError(
            f"{name}: expected finite values, found {int(torch.isnan(value).sum())} NaN and "
            f"{int(torch.isinf(value).sum())} infinite entries"
        )
    return value


def data_space_nll(nll_model: Tensor, ladj_preprocess: Tensor) -> Tensor:
    r"""Per-example NLL in the space before preprocessing:
    :math:`-\log p_X(u) = -\log p_Y(g(u)) - \log|\det J_g(u)|`.

    Both arguments are finite ``(N,)`` tensors of the same length.

    Example:
        >>> import torch
        >>> data_space_nll(torch.tensor([2.0, 3.0]), torch.tensor([0.5, -1.0]))
        tensor([1.5000, 4.0000])
    """
    nll_model = _check_vector(nll_model, "nll_model")
    ladj_preprocess = _check_vector(ladj_preprocess, "ladj_preprocess")
    if nll_model.shape != ladj_preprocess.shape:
        raise ValueError(
            f"ladj_preprocess: expected shape {tuple(nll_model.shape)} to match nll_model, got "
            f"{tuple(ladj_preprocess.shape)}"
        )
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
    if isinstance(nll_nats, Tensor):
        if nll_nats.is_complex() or nll_nats.dtype == torch.bool:
            raise TypeError(f"nll_nats: expected a real tensor, got dtype {nll_nats.dtype}")
        finite = bool(torch.isfinite(nll_nats).all())
    elif isinstance(nll_nats, (int, float)) and not isinstance(nll_nats, bool):
        finite = math.isfinite(nll_nats)
    else:
        raise TypeError(f"nll_nats: expected a float or a tensor, got {type(nll_nats).__name__}")
    if not finite:
        raise ValueError(f"nll_nats: expected finite values, got {nll_nats!r}")
    offset = dims * math.log(levels) if levels is not None else 0.0
    return (nll_nats + offset) / (dims * math.log(2))

r"""Conditioner networks: a plain MLP and MADE (masked autoencoder for distribution estimation).

Both end in a zero-initialised linear layer by default, so a flow built from them starts at the
identity map, which keeps deep flows stable at the start of training (Kingma and Dhariwal 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def _hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
    ):
        raise ValueError(f"hidden: expected a sequence of positive ints, got {hidden!r}")
    return tuple(hidden)


def _activation(activation: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    table = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU}
    if isinstance(activation, str):
        if activation not in table:
            raise ValueError(f"activation: expected one of {sorted(table)}, got {activation!r}")
        return table[activation]
    if not callable(activation):
        raise TypeError(f"activation: expected a name or a module factory, got {activation!r}")
    return activation


class MLP(nn.Sequential):
    r"""A multilayer perceptron ``in_features -> hidden... -> out_features``.

    Example:
        >>> import torch, tractable as tr
        >>> net = tr.nn.MLP(3, 2, hidden=(16, 16))
        >>> net(torch.randn(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | Callable[[], nn.Module] = "relu",
        zero_init: bool = False,
    ) -> None:
        act = _activation(activation)
        sizes = (in_features, *_hidden(hidden), out_features)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(act())
        super().__init__(*layers)
        if zero_init:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed binary mask (a buffer)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al. 2015).

    Output :math:`k` of feature :math:`i` depends only on the inputs that come before :math:`i` in
    ``order`` (and on the context, which is connected to every hidden unit). Returns
    ``(N, features, params)``.

    Hidden degrees are assigned cyclically in :math:`[1, D-1]` (deterministic, no RNG), as in
    the MAF paper's "sequential" degree assignment (Papamakarios et al. 2017).

    Example:
        >>> import torch, tractable as tr
        >>> made = tr.nn.MADE(3, params=2, hidden=(8,))
        >>> x = torch.randn(1, 3, requires_grad=True)
        >>> made(x)[0, 0].sum().backward()   # the first output sees no input
        >>> x.grad.abs().sum().item()
        0.0
    """

    def __init__(
        self,
        features: int,
        params: int,
        hidden: Sequence[int] = (64, 64),
        context: int = 0,
        order: Tensor | None = None,
        activation: str | Callable[[], nn.Module] = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        hidden = _hidden(hidden)
        D = features
        if order is None:
            order = torch.arange(D)
        order = torch.as_tensor(order, dtype=torch.long)
        if sorted(order.tolist()) != list(range(D)):
            raise ValueError(f"order: expected a permutation of 0..{D - 1}, got {order.tolist()}")
        self.features, self.params, self.context = D, params, context
        # degree 1..D: input i has degree order[i] + 1
        in_deg = order + 1
        degrees = [in_deg]
        for h in hidden:
            degrees.append(torch.arange(h) % max(D - 1, 1) + 1)
        layers: list[nn.Module] = []
        act = _activation(activation)
        for i, h in enumerate(hidden):
            mask = degrees[i + 1][:, None] >= degrees[i][None, :]
            if i == 0 and context:
                mask = torch.cat([mask, torch.ones(h, context, dtype=torch.bool)], 1)
            layers += [MaskedLinear(mask.shape[1], h, mask), act()]
        # output p * D units, laid out as (params, D) so a view gives (N, params, D)
        out_deg = in_deg.repeat(params)
        mask = out_deg[:, None] > degrees[-1][None, :]
        if not hidden and context:
            mask = torch.cat([mask, torch.ones(mask.shape[0], context, dtype=torch.bool)], 1)
        last = MaskedLinear(mask.shape[1], params * D, mask)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.register_buffer("order", order)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = x if context is None else torch.cat([x, context], dim=1)
        out = self.net(h)
        return out.view(x.shape[0], self.params, self.features).transpose(1, 2)

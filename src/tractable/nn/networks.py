r"""Conditioner networks: a plain MLP and MADE (masked autoencoder for distribution estimation).

Both end in a zero-initialised linear layer by default, so a flow built from them starts at the
identity map, which keeps deep flows stable at the start of training (Kingma and Dhariwal 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .layers import activation_factory


def _hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
    ):
        raise ValueError(f"hidden: expected a sequence of positive ints, got {hidden!r}")
    return tuple(hidden)


class MLP(nn.Sequential):
    r"""A multilayer perceptron ``in_features -> *hidden -> out_features``.

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
        act = activation_factory(activation)
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

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            # a ReLU always follows a linear layer here: in place on that fresh output (its
            # backward needs only its output), saving an activation-sized buffer per layer
            x = torch.relu_(x) if type(layer) is nn.ReLU else layer(x)
        return x


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed binary mask (a buffer)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def _refresh_seen(module: nn.Module, keys: object) -> None:
    # a module-level function (not a lambda), so that modules stay picklable
    module._find_seen()


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al. 2015).

    Output :math:`k` of feature :math:`i` depends only on the inputs that come before :math:`i` in
    ``order`` (and on the context, which is connected to every hidden unit). Returns
    ``(N, features, params)``.

    Hidden degrees are assigned cyclically in :math:`[1, D-1]` (deterministic, no RNG), as in
    the MAF paper's "sequential" degree assignment (Papamakarios et al. 2017).

    The masked weights :math:`W \odot M` are formed once per call; :meth:`prepare` forms them
    (and the context's contribution to the first layer) once for many calls with the same
    parameters and context, as in the :math:`D` passes of an autoregressive inversion. Inputs that
    no hidden unit sees (when ``hidden`` is narrower than ``features``, every input of degree
    above the largest hidden degree) are left out of the first product.

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
        act = activation_factory(activation)
        for i, h in enumerate(hidden):
            mask = degrees[i + 1][:, None] >= degrees[i][None, :]
            if i == 0 and context:
                mask = torch.cat([mask, torch.ones(h, context, dtype=torch.bool)], 1)
            layers += [MaskedLinear(mask.shape[1], h, mask), act()]
        # output p * D units, laid out as (params, D) so a view gives (N, params, D): each
        # parameter is a contiguous slice, and the maps work along the parameters with
        # contiguous rows of features (see tractable.transforms.spline)
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
        self._linears = [m for m in layers if isinstance(m, MaskedLinear)]
        self._activations = [m for m in layers if not isinstance(m, MaskedLinear)]
        self._find_seen()
        # masks are loaded with the weights: derive the skipped inputs from the loaded ones
        self.register_load_state_dict_post_hook(_refresh_seen)

    def _find_seen(self) -> None:
        # The inputs the first layer sees form a prefix 0..k-1 (in storage order) when the
        # degrees are ordered, e.g. with the default order: then the product skips the rest,
        # when that saves at least half of it (a slice costs a copy in the backward pass).
        D = self.features
        seen = self._linears[0].mask[:, :D].any(0)
        k = int(seen.sum())
        self._seen = k if 0 < k <= D // 2 and bool(seen[:k].all()) else D

    def prepare(self, context: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        r"""The masked ``(weight, bias)`` of each layer, for :meth:`forward`'s ``prepared``.

        With a context ``(N, C)``, its product with the first layer is added to that layer's
        bias, which becomes ``(N, H)``."""
        prepared = [(m.weight * m.mask, m.bias) for m in self._linears]
        if not self.context and context is not None:
            raise ValueError("context: this MADE takes no context (context=0), but one was given")
        if self.context:
            if context is None:
                raise ValueError(
                    f"context: this MADE takes a context of shape (N, {self.context}), got None"
                )
            w, b = prepared[0]
            D = self.features
            prepared[0] = (w[:, :D], torch.addmm(b, context, w[:, D:].t()))
        return prepared

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        prepared: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        if prepared is None:
            prepared = self.prepare(context)
        (w, b), k = prepared[0], self._seen
        h = x if k == self.features else x[:, :k]
        h = torch.addmm(b, h, (w if k == self.features else w[:, :k]).t())
        for act, (w, b) in zip(self._activations, prepared[1:], strict=True):
            # in place on a fresh product; ReLU's backward needs only its output
            h = torch.relu_(h) if type(act) is nn.ReLU else act(h)
            h = torch.addmm(b, h, w.t())
        return h.view(x.shape[0], self.params, self.features).transpose(1, 2)

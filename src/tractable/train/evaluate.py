r"""The mean loss of a model over a whole dataset, batched, without gradients.

.. math:: \bar L = \frac{1}{N} \sum_b n_b \, L_b

where :math:`L_b` is the mean loss of batch :math:`b` of :math:`n_b` rows, so the result does
not depend on the batch size (up to rounding). Under ``torchrun`` each rank takes a contiguous
slice of the rows and the sums are reduced over ranks, so every rank gets the same value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .batches import Batch, as_parts, take, to_batch
from .distributed import DistContext, all_reduce_sum
from .guards import check_loss, model_loss


def evaluate_loss(
    model: nn.Module,
    data: Tensor | tuple[Tensor, ...],
    batch_size: int = 256,
    loss_fn: Callable[[nn.Module, Batch], Tensor] | None = None,
    ctx: DistContext | None = None,
) -> float:
    r"""Mean of ``loss_fn(model, batch)`` over ``data`` (default ``model.loss(batch)``), with
    the model in ``eval()`` mode under ``torch.no_grad()``; its training mode is restored.

    Example:
        >>> import torch, tractable as tr
        >>> flow = tr.flows.Flow(tr.transforms.Compose(), event_shape=(1,))
        >>> x = torch.zeros(10, 1)  # the standard normal's NLL at 0 is log(2 pi) / 2
        >>> abs(evaluate_loss(flow, x, batch_size=3) - 0.5 * math.log(2 * math.pi)) < 1e-6
        True
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    parts = as_parts(data, "data")
    ctx = ctx if ctx is not None else DistContext()
    fn = loss_fn if loss_fn is not None else model_loss
    n = parts[0].shape[0]
    lo, hi = n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    device = first.device if first is not None else torch.device("cpu")
    total = torch.zeros(2, dtype=torch.float64)  # [sum of losses * rows, rows]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(lo, hi, batch_size):
                stop = min(start + batch_size, hi)
                loss = fn(model, to_batch(take(parts, slice(start, stop)), device))
                check_loss(loss, "loss_fn(model, batch)", need_grad=False)
                total[0] += float(loss.detach()) * (stop - start)
                total[1] += stop - start
    finally:
        model.train(was_training)
    total = all_reduce_sum(total, ctx)
    return float(total[0] / total[1])


__all__ = ["evaluate_loss"]

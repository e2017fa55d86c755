r"""Learned reverse variances and the objectives that train them (Nichol and Dhariwal 2021,
"Improved denoising diffusion probabilistic models").

The network outputs, beside :math:`\varepsilon_\theta`, a vector :math:`v` per dimension that
interpolates the reverse variance between DDPM's two fixed choices in the log domain:

.. math:: \Sigma_\theta(x_t, t) = \exp\bigl(v \log\beta_t + (1 - v) \log\tilde\beta_t\bigr),

with :math:`\tilde\beta_1 = 0` replaced by :math:`\tilde\beta_2` (the decoder's variance is
then learned too). :math:`v` is not constrained to :math:`[0, 1]`. :math:`L_\text{simple}`
does not see :math:`\Sigma_\theta`; the hybrid objective :math:`L_\text{hybrid} =
L_\text{simple} + \lambda L_\text{vlb}` (:math:`\lambda = 0.001`) trains it through the bound
with a stop-gradient on the mean, and the bound alone can be trained with the steps drawn by
importance: :math:`p_t \propto \sqrt{E[L_t^2]}`, from the 10 latest values of each term, and
uniform until every step has 10 (their section 3.3).

Example:
    >>> import torch
    >>> out = torch.arange(8.0).reshape(2, 4)  # (N, 2 D) for events of shape (2,)
    >>> eps, v = split_output(out, (2,))
    >>> eps.tolist(), v.tolist()
    ([[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive_int


def split_output(out: Tensor, event_shape: Sequence[int]) -> tuple[Tensor, Tensor]:
    r"""``(eps, v)``, each ``(N, *event)``, from a network output ``(N, 2 * event[0],
    *event[1:])``: the first half of dimension 1 (features, or channels of an image) is
    :math:`\varepsilon`, the second :math:`v`."""
    event = tuple(int(s) for s in event_shape)
    expected = (2 * event[0], *event[1:])
    if tuple(out.shape[1:]) != expected:
        raise ValueError(
            f"net: a learned-variance network must output (N, {', '.join(map(str, expected))}) "
            f"(epsilon and v stacked along dimension 1), got {tuple(out.shape)}"
        )
    eps, v = out.chunk(2, dim=1)
    return eps, v


def interpolated_variance(v: Tensor, beta: Tensor, beta_tilde: Tensor) -> Tensor:
    r""":math:`\exp(v \log\beta + (1 - v) \log\tilde\beta)`, elementwise with broadcasting.

    Example:
        >>> import torch
        >>> b, bt = torch.tensor(0.02), torch.tensor(0.005)
        >>> v = torch.tensor([0.0, 0.5, 1.0])
        >>> [round(x, 6) for x in interpolated_variance(v, b, bt).tolist()]
        [0.005, 0.01, 0.02]
    """
    return torch.exp(v * beta.log() + (1 - v) * beta_tilde.log())


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    r"""``(N,)``: :math:`\mathrm{KL}(\mathcal{N}(\mu_q, \sigma_q^2) \Vert \mathcal{N}(\mu_p,
    \sigma_p^2))` of diagonal Gaussians, summed over every dimension but the first:
    :math:`\tfrac12 \sum_i \bigl(\log\frac{\sigma_{p,i}^2}{\sigma_{q,i}^2} +
    \frac{\sigma_{q,i}^2 + (\mu_{q,i} - \mu_{p,i})^2}{\sigma_{p,i}^2} - 1\bigr)`. The
    variances broadcast against the means ``(N, ...)``.

    Example:
        >>> import torch
        >>> z = torch.zeros(1, 3)
        >>> float(gaussian_kl(z, torch.ones(1, 1), z + 1, torch.ones(1, 1)))  # 3 x 1/2
        1.5
    """
    ratio = var_q / var_p
    kl = 0.5 * ((mean_q - mean_p).pow(2) / var_p + ratio - 1 - ratio.log())
    return kl.reshape(kl.shape[0], -1).sum(1)


class StepSampler(nn.Module):
    r"""Importance sampling of the step :math:`t \in 1..T` for the bound's terms (Nichol and
    Dhariwal 2021, section 3.3): :math:`p_t \propto \sqrt{E[L_{t-1}^2]}` estimated from the
    ``history`` latest values of each term, uniform until every step has that many. The
    history lives in persistent buffers, so a checkpoint carries it and a resumed run draws
    the same steps.

    Example:
        >>> import torch
        >>> s = StepSampler(4, history=2)
        >>> t, w = s.draw(3, torch.float64)
        >>> t.shape, bool((w == 4).all())  # uniform: weight 1 / p_t = T
        (torch.Size([3]), True)
    """

    def __init__(self, steps: int, history: int = 10) -> None:
        super().__init__()
        self.steps = check_positive_int(steps, "steps")
        self.history = check_positive_int(history, "history")
        # a ring buffer per step; writes counts every value ever recorded
        self.register_buffer("values", torch.zeros(self.steps, self.history))
        self.register_buffer("writes", torch.zeros(self.steps, dtype=torch.long))

    def probabilities(self) -> Tensor | None:
        r""":math:`p_t` ``(T,)``, or ``None`` while the history is incomplete (uniform)."""
        if bool((self.writes < self.history).any()):
            return None
        p = self.values.double().pow(2).mean(1).sqrt()
        p = p / p.sum()
        # a floor, so that a step whose recent terms were all near 0 is still drawn
        return 0.999 * p + 0.001 / self.steps

    def draw(self, n: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        r"""``n`` steps ``(n,)`` in :math:`1..T` and their weights :math:`1 / p_t` ``(n,)``."""
        device = self.writes.device
        p = self.probabilities()
        if p is None:
            t = torch.randint(1, self.steps + 1, (n,), device=device)
            return t, torch.full((n,), float(self.steps), dtype=dtype, device=device)
        t = torch.multinomial(p, n, replacement=True) + 1
        return t, (1.0 / p[t - 1]).to(dtype)

    @torch.no_grad()
    def update(self, t: Tensor, terms: Tensor) -> None:
        r"""Record the terms ``(n,)`` of steps ``t`` ``(n,)`` in order: each step keeps its
        ``history`` latest values."""
        rows = t.reshape(-1) - 1
        order = torch.argsort(rows, stable=True)
        rows, terms = rows[order], terms.reshape(-1)[order].to(self.values.dtype)
        # the rank of each value among its step's values in this batch, in batch order
        rank = torch.arange(rows.numel(), device=rows.device) - torch.searchsorted(rows, rows)
        count = torch.bincount(rows, minlength=self.steps)
        # only a step's last `history` values of the batch survive; their slots are distinct
        keep = rank >= count[rows] - self.history
        slot = (self.writes[rows] + rank) % self.history
        self.values[rows[keep], slot[keep]] = terms[keep]
        self.writes += count


__all__ = ["StepSampler", "gaussian_kl", "interpolated_variance", "split_output"]

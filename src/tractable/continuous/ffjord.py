r"""FFJORD: a flow of CNF blocks on a standard normal base, with RNODE-regularised training.

Grathwohl et al. 2019, "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative
Models"; the regularisers are those of Finlay et al. 2020, "How to train your neural ODE: the
world of Jacobian and kinetic regularization". The training loss is

.. math:: \mathcal{L} = -\frac{1}{N}\sum_n \log p(x_n)
          + \sum_{\text{blocks}} \left(\lambda_K \, \overline{\textstyle\int \lVert f\rVert^2}
          + \lambda_J \, \overline{\textstyle\int \lVert \partial f/\partial z\rVert_F^2}\right).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_positive_int
from ..flows.base import Flow
from ..flows.builders import with_options
from ..nn.dynamics import ODEMLP
from ..transforms.base import Compose
from .cnf import CNF


def _cnfs(module: nn.Module) -> list[CNF]:
    return [m for m in module.modules() if isinstance(m, CNF)]


def total_nfe(module: nn.Module) -> dict[str, int]:
    r"""The function evaluations of every :class:`CNF` inside ``module``, summed:
    ``{"forward": ..., "backward": ...}``.

    Example:
        >>> import torch
        >>> from tractable.continuous import FFJORD, total_nfe
        >>> flow = FFJORD(2, hidden=(8,), blocks=2, solver="euler", steps=3)
        >>> _ = flow.log_prob(torch.zeros(1, 2))
        >>> total_nfe(flow)
        {'forward': 6, 'backward': 0}
    """
    counts = {"forward": 0, "backward": 0}
    for cnf in _cnfs(module):
        for key, value in cnf.nfe().items():
            counts[key] += value
    return counts


def reset_nfe(module: nn.Module) -> None:
    r"""Reset the function-evaluation counters of every :class:`CNF` inside ``module``."""
    for cnf in _cnfs(module):
        cnf.reset_nfe()


def rnode_penalty(module: nn.Module) -> Tensor:
    r"""The weighted RNODE terms of the last training-mode forward pass of every :class:`CNF`
    inside ``module``: :math:`\sum \lambda_K \overline{\int \lVert f \rVert^2} + \lambda_J
    \overline{\int \lVert J \rVert_F^2}` (a scalar tensor; 0 when no term was computed)."""
    terms = [
        getattr(cnf, name) * value
        for cnf in _cnfs(module)
        for name, value in cnf.regularization.items()
    ]
    if not terms:
        like = next(module.parameters(), None)
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        return torch.zeros((), dtype=dtype, device=like.device if like is not None else None)
    return torch.stack(terms).sum()


class ContinuousFlow(Flow):
    r"""A :class:`~tractable.flows.Flow` whose training loss adds the RNODE penalty of its CNF
    blocks, and which reports their function evaluations.

    In training mode ``loss(batch)`` resets the counters, so after ``loss(batch).backward()``
    :meth:`extra_log` gives the evaluations of that training step. In evaluation mode (a
    validation pass) it leaves the counters and RNODE values of the last training step as they
    were, so a logged step that also validated still reports its training step.

    Example:
        >>> import torch
        >>> from tractable.continuous import CNF, ContinuousFlow
        >>> from tractable.nn import ODEMLP
        >>> cnf = CNF(ODEMLP(2, hidden=(8,)), solver="rk4", steps=2, kinetic=0.1)
        >>> flow = ContinuousFlow(cnf, event_shape=(2,))
        >>> flow.loss(torch.randn(4, 2)).backward()
        >>> flow.extra_log()["nfe_forward"], flow.extra_log()["nfe_backward"]
        (8, 0)
        >>> cnf.adjoint = True  # "auto" backpropagated directly; the adjoint solves backwards
        >>> flow.loss(torch.randn(4, 2)).backward()
        >>> flow.extra_log()["nfe_backward"]
        8
    """

    def loss(self, batch: Tensor | Sequence[Tensor]) -> Tensor:
        r"""Mean negative log-likelihood plus the weighted RNODE terms of this forward pass."""
        cnfs = _cnfs(self)
        if not self.training:
            saved = [(cnf, cnf.nfe(), cnf.regularization) for cnf in cnfs]
            try:
                return super().loss(batch)
            finally:
                for cnf, counts, regularization in saved:
                    cnf._nfe, cnf.regularization = counts, regularization
        for cnf in cnfs:
            cnf.reset_nfe()
            cnf.regularization = {}
        return super().loss(batch) + rnode_penalty(self)

    def extra_log(self) -> dict[str, float]:
        r"""Numbers for the trainer's log: ``nfe_forward``, ``nfe_backward`` and the RNODE
        terms (``kinetic``, ``jacobian``, summed over blocks) when they were computed."""
        counts = total_nfe(self)
        log: dict[str, float] = {
            "nfe_forward": counts["forward"],
            "nfe_backward": counts["backward"],
        }
        for cnf in _cnfs(self):
            for name, value in cnf.regularization.items():
                log[name] = log.get(name, 0.0) + float(value.detach())
        return log


# the keyword options of CNF (all but the dynamics network), which FFJORD passes to every block
CNF_OPTIONS = tuple(inspect.signature(CNF).parameters.values())[1:]

# FFJORD's own defaults for some of them (see the builder's notes)
_FFJORD_DEFAULTS = {"train_atol": 1e-3, "train_rtol": 1e-3}


@with_options(
    dict,
    after=[
        p.replace(default=_FFJORD_DEFAULTS[p.name]) if p.name in _FFJORD_DEFAULTS else p
        for p in CNF_OPTIONS
    ],
)
def FFJORD(  # noqa: N802 (a builder named like the model it builds)
    cnf_options: dict[str, Any],
    features: int,
    context: int = 0,
    hidden: Sequence[int] = (64, 64),
    blocks: int = 1,
    layer: str = "concat",
    activation: str = "tanh",
) -> ContinuousFlow:
    r"""Build FFJORD: ``blocks`` CNFs, each with its own :class:`~tractable.nn.ODEMLP` field,
    on :math:`\mathcal{N}(0, I)`.

    .. math:: \log p(x \mid c) = \log \mathcal{N}(z; 0, I) + \sum_k \int_0^T
              \operatorname{tr} \frac{\partial f_k}{\partial z}\,\mathrm{d}t

    ``hidden``, ``layer`` and ``activation`` are those of :class:`~tractable.nn.ODEMLP`. Every
    keyword option of :class:`CNF` (``T``, ``learn_T``, ``solver``, ``atol``, ``rtol``,
    ``train_atol``, ``train_rtol``, ``steps``, ``adjoint``, ``direct_budget_mb``,
    ``divergence``, ``eval_divergence``, ``noise``, ``kinetic``, ``jacobian``, ``options``) is
    an option of this builder too, with the same meaning, and goes to every block. The defaults
    are :class:`CNF`'s except ``train_atol = train_rtol = 1e-3``: training solves at looser
    tolerances than evaluation (``atol = rtol = 1e-5``), so reported likelihoods keep their
    accuracy; pass ``None`` to train at ``atol``/``rtol``. Measured on 8gaussians (64-64-64,
    batch 256, Adam 1e-3, the same 3,000 batches): a step took 0.65-0.73x the time (37-43
    instead of 59-60 evaluations), and the test NLL at the same step was 0.000-0.003 nats above
    that of training at 1e-5, far less than what the saved time buys at equal wall time
    (``BENCHMARKS.md``, CNF section). Training mode uses ``divergence`` (``"auto"`` by default:
    exact for ``D <= 8``, Hutchinson above); evaluation mode uses ``eval_divergence`` (exact by
    default, ``D`` vector-Jacobian products per evaluation: fine for tabular data, slow for
    images).

    The default field is a ``tanh`` MLP that sees time by concatenation (``layer="concat"``;
    ``tanh`` is the activation of FFJORD's toy experiments). Measured on 8gaussians with the
    same batches and Adam loop (hidden 64-64-64, batch 256, lr 1e-3): FFJORD's gated
    ``"concatsquash"`` layer with ``softplus`` starts with a field whose Jacobian is a small
    fraction of the plain MLP's (every sigmoid gate halves a layer's gain at initialisation and
    softplus has slope 1/2 at 0); after 40 steps it had barely left the base density (test NLL
    5.76 nats, against 4.05 for an ELU ``concat`` field and 4.12 for zuko's CNF), and the exact
    divergence alone did not close the gap (5.76). After 150 steps the ``tanh``/``concat``
    default reached 3.33 against 3.92 for zuko's CNF (``benchmarks/cnf.py`` has the full run).

    For a context embedding network, assemble :class:`ContinuousFlow` directly.

    Example:
        >>> import torch
        >>> from tractable.continuous import FFJORD
        >>> flow = FFJORD(2, context=1, hidden=(8,), solver="rk4", steps=4).eval()
        >>> flow.log_prob(torch.randn(3, 2), torch.randn(3, 1)).shape
        torch.Size([3])
        >>> flow.sample(5, torch.randn(2, 1)).shape
        torch.Size([2, 5, 2])
    """
    check_positive_int(features, "features")
    check_positive_int(blocks, "blocks")
    cnfs = [
        CNF(ODEMLP(features, context, hidden, layer, activation), **cnf_options)
        for _ in range(blocks)
    ]
    return ContinuousFlow(Compose(cnfs), event_shape=(features,), context=context)


__all__ = ["CNF_OPTIONS", "FFJORD", "ContinuousFlow", "total_nfe", "reset_nfe", "rnode_penalty"]

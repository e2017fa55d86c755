r"""Models trained by several optimisers (a GAN's discriminator and generator).

A model says so through the protocol, never through its name: besides ``loss(batch)`` it has

* ``parts() -> {name: {"params": [...], "lr": float | None, "betas": (b1, b2) | None}}``:
  each part gets its own optimiser (the trainer's kind), at its own base learning rate (two
  time-scale updates, Heusel et al. 2017) and Adam betas, scaled by the run's schedule;
* ``updates(step) -> [[name, ...], ...]``: what to update at ``step`` (0-based): the groups
  run in order (alternating updates), the parts of one group are updated simultaneously
  (every gradient taken at the same parameters before any of them moves);
* ``loss(batch, part)``: the loss that part minimises.

A model without ``parts`` is one part named ``"model"`` updated at every step, exactly as
before this module existed (its checkpoints keep the single optimiser state).

Example:
    >>> import torch
    >>> from tractable.train import TrainConfig
    >>> opts = make_optimizers(torch.nn.Linear(2, 1), TrainConfig())
    >>> list(opts), plan(torch.nn.Linear(2, 1), 0)
    (['model'], [['model']])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .guards import check_loss, guarded_loss
from .schedule import clip_gradients, make_optimizer

SINGLE = "model"


def has_parts(model: nn.Module) -> bool:
    r"""Whether ``model`` is trained by several optimisers (it has ``parts``)."""
    return callable(getattr(model, "parts", None))


def _parts(model: nn.Module) -> dict[str, dict[str, Any]]:
    spec = model.parts()
    if not isinstance(spec, dict) or not spec:
        raise TypeError(f"model.parts(): expected a non-empty dict of parts, got {spec!r}")
    for name, part in spec.items():
        if not isinstance(part, dict) or "params" not in part:
            raise TypeError(f"model.parts()[{name!r}]: expected a dict with 'params'")
    return spec


def make_optimizers(model: nn.Module, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    r"""One optimiser per part (one, ``"model"``, for a model without parts)."""
    if not has_parts(model):
        return {SINGLE: make_optimizer(model.parameters(), config)}
    out = {}
    for name, part in _parts(model).items():
        overrides = {k: part[k] for k in ("lr", "betas") if part.get(k) is not None}
        cfg = TrainConfig.from_dict({**config.to_dict(), **overrides}) if overrides else config
        out[name] = make_optimizer(part["params"], cfg)
    return out


def base_rates(model: nn.Module, config: TrainConfig) -> dict[str, float]:
    r"""Each part's base learning rate (the schedule scales them all alike)."""
    if not has_parts(model):
        return {SINGLE: config.lr}
    return {
        name: float(part["lr"]) if part.get("lr") is not None else config.lr
        for name, part in _parts(model).items()
    }


def plan(model: nn.Module, step: int) -> list[list[str]]:
    r"""The update groups of ``step``: ``[["model"]]`` for a model without parts."""
    if not has_parts(model):
        return [[SINGLE]]
    groups = [list(g) for g in model.updates(step)]
    known = set(_parts(model))
    for group in groups:
        unknown = set(group) - known
        if not group or unknown:
            raise ValueError(
                f"model.updates({step}): expected groups of the parts {sorted(known)}, got "
                f"{groups!r}"
            )
    return groups


def update_parts(
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    groups: Sequence[Sequence[str]],
    batch: Any,
    rates: dict[str, float],
    grad_clip: float | None,
) -> tuple[float, float, int]:
    r"""Apply one step's update groups; returns the mean loss of the updates, the largest
    gradient norm and the number of updates skipped because their loss or gradient was not
    finite (those never reach the weights)."""
    losses, norms, skipped = [], [], 0
    for group in groups:
        for name in group:
            for g in optimizers[name].param_groups:
                g["lr"] = rates[name]
        model.zero_grad(set_to_none=True)
        pending = []
        for name in group:
            loss = guarded_loss(lambda name=name: model.loss(batch, name), batch)
            params = [p for g in optimizers[name].param_groups for p in g["params"]]
            if loss is None:  # the model's own values overflowed: a non-finite update
                pending.append((name, math.nan, params, None))
                continue
            check_loss(loss, f"model.loss(batch, {name!r})")
            grads = torch.autograd.grad(
                loss, params, retain_graph=len(group) > 1, allow_unused=True
            )
            pending.append((name, float(loss.detach()), params, grads))
        for name, value, params, grads in pending:
            if grads is None:
                skipped += 1
                norms.append(math.nan)
                continue
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            norm = clip_gradients(params, grad_clip)
            if math.isfinite(value) and math.isfinite(norm):
                optimizers[name].step()
                losses.append(value)
            else:
                skipped += 1
            norms.append(norm)
            for p in params:
                p.grad = None
    loss_value = sum(losses) / len(losses) if losses else math.nan
    return loss_value, max(norms) if norms else 0.0, skipped


def optimizer_state(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    r"""The optimiser entries of a checkpoint: ``{"optimizer": ...}`` for one optimiser (the
    format of single-part runs), ``{"optimizers": {name: ...}}`` for several."""
    if list(optimizers) == [SINGLE]:
        return {"optimizer": optimizers[SINGLE].state_dict()}
    return {"optimizers": {name: opt.state_dict() for name, opt in optimizers.items()}}


def load_optimizer_state(
    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any]
) -> None:
    r"""Restore what :func:`optimizer_state` saved."""
    if list(optimizers) == [SINGLE]:
        optimizers[SINGLE].load_state_dict(state["optimizer"])
        return
    saved = state.get("optimizers", {})
    if set(saved) != set(optimizers):
        raise ValueError(
            f"checkpoint: optimisers {sorted(saved)} do not match the model's parts "
            f"{sorted(optimizers)}"
        )
    for name, opt in optimizers.items():
        opt.load_state_dict(saved[name])


__all__ = [
    "SINGLE",
    "base_rates",
    "has_parts",
    "load_optimizer_state",
    "make_optimizers",
    "optimizer_state",
    "plan",
    "update_parts",
]

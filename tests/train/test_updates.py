"""Models with several optimisers (train.updates): the update plan, per-part learning rates,
simultaneous groups, and bitwise resume with one optimiser state per part."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tractable.train import TrainConfig, fit, load_latest_checkpoint, resume

from .helpers import assert_bitwise_equal, dequantize, gaussian_data, params_of
from .test_loop import _InterruptError, _interrupting


class TwoPart(nn.Module):
    r"""``a`` chases the batch mean, ``b`` chases ``a``: two optimisers, ``k`` updates of
    ``a`` for each of ``b`` (or both at once with ``simultaneous``). Counts optimiser steps."""

    def __init__(self, k: int = 3, simultaneous: bool = False) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(2))
        self.b = nn.Parameter(torch.zeros(2))
        self.k, self.simultaneous = k, simultaneous
        self.calls: dict[str, int] = {"a": 0, "b": 0}

    def parts(self) -> dict:
        return {"a": {"params": [self.a], "lr": 0.1}, "b": {"params": [self.b], "lr": 0.02}}

    def updates(self, step: int) -> list[list[str]]:
        if self.simultaneous:
            return [["a", "b"]]
        return [["a"]] if step % (self.k + 1) < self.k else [["b"]]

    def loss(self, batch: Tensor, part: str | None = None) -> Tensor:
        if part is not None:
            self.calls[part] += 1
        if part == "b":
            return ((self.b - self.a) ** 2).sum()
        return ((self.a - batch.mean(0)) ** 2).sum() + 0.0 * self.b.sum()


CFG = TrainConfig(steps=16, batch_size=16, lr=0.05, eval_every=4, checkpoint_every=4, log_every=2)


def test_each_part_updates_on_its_plan_at_its_own_rate(tmp_path: Path) -> None:
    model = TwoPart(k=3)
    x = gaussian_data(64, 2) + 5.0
    fit(model, x, x[:16], CFG, tmp_path / "run", progress=False)
    # 16 steps, 3 of a then 1 of b: 12 updates of a, 4 of b (validation calls loss(batch))
    assert model.calls == {"a": 12, "b": 4}
    state = load_latest_checkpoint(tmp_path / "run")[2]
    assert set(state["optimizers"]) == {"a", "b"} and "optimizer" not in state
    opts = state["optimizers"]
    assert opts["a"]["param_groups"][0]["lr"] == pytest.approx(0.1)
    assert opts["b"]["param_groups"][0]["lr"] == pytest.approx(0.02)
    assert int(opts["a"]["state"][0]["step"]) == 12 and int(opts["b"]["state"][0]["step"]) == 4


def test_simultaneous_updates_take_every_gradient_before_any_step() -> None:
    model = TwoPart(simultaneous=True)
    cfg = TrainConfig(steps=1, batch_size=8, lr=0.05, optimizer="sgd", momentum=0.0)
    x = torch.ones(8, 2)
    fit(model, x, None, cfg, progress=False)
    # both gradients at a = b = 0: a moves towards 1, b does not move (b - a = 0 there)
    torch.testing.assert_close(model.a.detach(), torch.full((2,), 0.1 * 2.0))
    torch.testing.assert_close(model.b.detach(), torch.zeros(2))


@pytest.mark.parametrize("stop_after", [6, 9])
def test_resume_with_several_optimisers_is_bitwise_identical(
    tmp_path: Path, stop_after: int
) -> None:
    x = gaussian_data(64, 2) + 5.0
    ref = TwoPart()
    fit(ref, x, x[:16], CFG, tmp_path / "ref", batch_transform=dequantize, progress=False)
    run = tmp_path / "cut"
    with pytest.raises(_InterruptError):
        fit(TwoPart(), x, x[:16], CFG, run, batch_transform=_interrupting(stop_after),
            progress=False)  # fmt: skip
    model = TwoPart()
    resume(run, model, x, x[:16], batch_transform=dequantize, progress=False)
    assert_bitwise_equal(params_of(model), params_of(ref))


def test_a_bad_plan_is_a_clear_error() -> None:
    model = TwoPart()
    model.updates = lambda step: [["c"]]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"model.updates\(0\): expected groups of the parts"):
        fit(model, torch.ones(8, 2), None, TrainConfig(steps=1, batch_size=8), progress=False)

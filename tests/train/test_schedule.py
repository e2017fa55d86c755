from __future__ import annotations

import json
import math

import pytest
import torch

from tractable.train import LRSchedule, TrainConfig, clip_gradients, fit, make_optimizer

from .helpers import Toy, gaussian_data


def test_constant_with_linear_warmup() -> None:
    s = LRSchedule(TrainConfig(steps=20, lr=0.4, warmup=4))
    assert [s.rate(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert LRSchedule(TrainConfig(steps=5, lr=0.3)).rate(0) == 0.3


def test_cosine_endpoints_midpoint_and_floor() -> None:
    cfg = TrainConfig(steps=12, lr=1.0, min_lr=0.1, schedule="cosine", warmup=2)
    s = LRSchedule(cfg)
    assert s.rate(0) == pytest.approx(0.5)  # warm-up
    assert s.rate(2) == pytest.approx(1.0)  # start of the decay
    assert s.rate(7) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the 10 decay steps
    expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 9 / 10))
    assert s.rate(11) == pytest.approx(expected)
    rates = [s.rate(t) for t in range(2, 12)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert min(rates) >= 0.1


def test_plateau_reduces_after_patience_and_respects_floor() -> None:
    cfg = TrainConfig(
        steps=10, lr=1.0, schedule="plateau", plateau_patience=2, plateau_factor=0.5, min_lr=0.2
    )
    s = LRSchedule(cfg)
    s.observe(5.0)  # first value is a new best
    s.observe(5.0)
    assert s.rate(3) == 1.0
    s.observe(6.0)  # second evaluation without improvement: reduce
    assert s.rate(3) == 0.5
    s.observe(4.0)  # improvement resets the count
    s.observe(4.5)
    assert s.rate(3) == 0.5
    for _ in range(6):
        s.observe(9.0)
    assert s.rate(3) == 0.2  # clamped at min_lr
    state = json.loads(json.dumps(s.state_dict()))
    t = LRSchedule(cfg)
    t.load_state_dict(state)
    assert t.state_dict() == s.state_dict()


def test_observe_is_ignored_by_other_schedules() -> None:
    s = LRSchedule(TrainConfig(steps=10, lr=1.0, plateau_patience=1))
    for v in (1.0, 2.0, 3.0):
        s.observe(v)
    assert s.rate(5) == 1.0


def test_clip_gradients_returns_the_norm_and_clips() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert clip_gradients([a, b], max_norm=None) == pytest.approx(5.0)
    assert a.grad.tolist() == [3.0, 0.0]  # untouched without a limit
    assert clip_gradients([a, b], max_norm=10.0) == pytest.approx(5.0)
    assert b.grad.tolist() == [4.0]  # untouched under the limit
    assert clip_gradients([a, b], max_norm=1.0) == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm()
    assert float(total) == pytest.approx(1.0, abs=1e-6)


def test_clip_gradients_mixed_dtypes_and_a_nan() -> None:
    # the fused norm serves tensors of one device and dtype; a mix takes the per-tensor path
    a = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([4.0])
    assert clip_gradients([a, b], max_norm=None) == 5.0
    b.grad = torch.tensor([float("nan")])
    assert math.isnan(clip_gradients([a, b], max_norm=1.0))
    assert a.grad.tolist() == [3.0, 0.0]


def test_clip_gradients_leaves_nonfinite_gradients_alone() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([float("inf"), 1.0])
    assert math.isinf(clip_gradients([a], max_norm=1.0))
    assert a.grad[1] == 1.0  # not multiplied by NaN


@pytest.mark.parametrize(
    ("name", "cls", "key", "value"),
    [
        ("adam", torch.optim.Adam, "betas", (0.5, 0.9)),
        ("adamw", torch.optim.AdamW, "weight_decay", 0.01),
        ("sgd", torch.optim.SGD, "momentum", 0.8),
    ],
)
def test_make_optimizer(name: str, cls: type, key: str, value: object) -> None:
    cfg = TrainConfig(
        optimizer=name, lr=0.2, betas=(0.5, 0.9), weight_decay=0.01, momentum=0.8
    )  # fmt: skip
    opt = make_optimizer(torch.nn.Linear(2, 2).parameters(), cfg)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.2
    assert opt.param_groups[0][key] == value


def test_make_optimizer_needs_trainable_parameters() -> None:
    lin = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=True"):
        make_optimizer(lin.parameters(), TrainConfig())


def test_logged_learning_rates_follow_the_schedule(tmp_path) -> None:
    cfg = TrainConfig(steps=10, batch_size=16, lr=0.1, schedule="cosine", warmup=3, log_every=1)
    fit(Toy(), gaussian_data(), None, cfg, tmp_path / "run", progress=False)
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    logged = [json.loads(line)["lr"] for line in lines]
    s = LRSchedule(cfg)
    assert logged == [s.rate(t) for t in range(10)]


def test_gradient_clipping_bounds_each_sgd_update(tmp_path) -> None:
    cfg = TrainConfig(
        steps=5, batch_size=16, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=1e-3, log_every=1
    )
    model = Toy(data_init=False)
    before = torch.cat([model.loc.detach().clone(), model.log_scale.detach().clone()])
    fit(model, gaussian_data(), None, cfg, tmp_path / "run", progress=False)
    after = torch.cat([model.loc.detach(), model.log_scale.detach()])
    # Five plain SGD steps of lr * clipped norm <= 1e-3 each.
    assert float((after - before).norm()) <= 5e-3 + 1e-12
    assert float((after - before).norm()) > 4e-3
    norms = [json.loads(line)["grad_norm"] for line in (tmp_path / "run" / "log.jsonl").open()]
    assert all(n > 1.0 for n in norms)  # the logged norm is the one before clipping

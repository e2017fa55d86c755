from __future__ import annotations

import json

import pytest

from tractable.train import TrainConfig


def test_defaults_round_trip_through_json() -> None:
    cfg = TrainConfig(
        steps=50, batch_size=8, optimizer="adamw", schedule="cosine", warmup=5, grad_clip=1.5,
        patience=3, checkpoint_every=10, eval_batch_size=32, betas=(0.8, 0.99),
    )  # fmt: skip
    text = json.dumps(cfg.to_dict(), allow_nan=False)
    back = TrainConfig.from_dict(json.loads(text))
    assert back == cfg
    assert back.betas == (0.8, 0.99) and isinstance(back.betas, tuple)
    assert back.val_batch_size == 32
    assert TrainConfig(batch_size=16).val_batch_size == 64  # no gradients: 4x the batch


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("steps", 0, ValueError, "steps: expected an int >= 1, got 0"),
        ("steps", 2.5, TypeError, "steps: expected an int, got float"),
        ("steps", True, TypeError, "steps: expected an int, got bool"),
        ("batch_size", -1, ValueError, "batch_size: expected an int >= 1, got -1"),
        ("lr", 0.0, ValueError, "lr: expected a finite float in (0.0, inf)"),
        ("lr", float("nan"), ValueError, "lr: expected a finite float"),
        ("lr", "1e-3", TypeError, "lr: expected a float, got str"),
        ("optimizer", "lbfgs", ValueError, "optimizer: expected one of 'adam', 'adamw', 'sgd'"),
        ("schedule", "linear", ValueError, "schedule: expected one of 'constant', 'cosine'"),
        ("betas", (0.9,), TypeError, "betas: expected a pair of floats"),
        ("betas", (0.9, 1.0), ValueError, "betas[1]: expected a finite float in [0.0, 1.0)"),
        ("momentum", 1.0, ValueError, "momentum: expected a finite float in [0.0, 1.0)"),
        ("weight_decay", -0.1, ValueError, "weight_decay: expected a finite float in [0.0"),
        ("warmup", -1, ValueError, "warmup: expected an int >= 0, got -1"),
        ("warmup", 1000, ValueError, "warmup: expected fewer warm-up steps than steps (1000)"),
        ("min_lr", 1.0, ValueError, "min_lr: expected a value <= lr (0.001), got 1.0"),
        ("plateau_factor", 1.0, ValueError, "plateau_factor: expected a finite float in (0.0"),
        ("grad_clip", 0.0, ValueError, "grad_clip: expected a finite float in (0.0, inf)"),
        ("grad_clip", "big", TypeError, "grad_clip: expected a float or None, got str"),
        ("eval_every", 0, ValueError, "eval_every: expected an int >= 1, got 0"),
        ("patience", 0, ValueError, "patience: expected an int >= 1, got 0"),
        ("max_consecutive_nonfinite", 0, ValueError, "max_consecutive_nonfinite: expected an int"),
        ("seed", -3, ValueError, "seed: expected an int >= 0, got -3"),
        ("checkpoint_every", 0, ValueError, "checkpoint_every: expected an int >= 1, got 0"),
        ("keep_checkpoints", 0, ValueError, "keep_checkpoints: expected an int >= 1, got 0"),
        ("restore_best", 1, TypeError, "restore_best: expected a bool, got int"),
        ("log_every", None, TypeError, "log_every: expected an int, got NoneType"),
    ],
)
def test_bad_fields_raise_naming_the_field(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        TrainConfig(**{field: value})
    assert message in str(info.value)


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['step'\]"):
        TrainConfig.from_dict({"step": 10})
    with pytest.raises(TypeError, match="values: expected a mapping"):
        TrainConfig.from_dict([("steps", 10)])  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.steps = 5  # type: ignore[misc]


@pytest.mark.parametrize("bad", [0, -1.0, "10"])
def test_max_seconds_must_be_positive(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="max_seconds"):
        TrainConfig(max_seconds=bad)

r"""The training configuration: one flat, JSON-serialisable dataclass, checked on construction.

Every field is a plain number, string, bool or ``None``, so ``TrainConfig.from_dict(
json.loads(json.dumps(cfg.to_dict())))`` gives back an equal config; the run directory stores it
in ``config.json`` next to the model's own configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "plateau")


def _int(value: object, name: str, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def _float(
    value: object,
    name: str,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a float or None" if allow_none else "a float"
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__} ({value!r})")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or below or above:
        left = "(" if low_open else "["
        right = ")" if high_open or high == math.inf else "]"
        raise ValueError(
            f"{name}: expected a finite float in {left}{low}, {high}{right}, got {value}"
        )


def _choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    r"""Everything :func:`~tractable.train.fit` needs to know besides the model and the data.

    Steps count loop iterations: one global batch each, including the rare steps skipped
    because the loss or gradient was not finite. Epochs are shuffled with a generator seeded from
    ``(seed, epoch)`` and the last incomplete batch of an epoch is dropped, so every step sees
    exactly ``batch_size`` examples.

    The learning rate at step :math:`t` (0-based, the update about to be made) with base rate
    :math:`\eta`, ``warmup`` :math:`W` and ``steps`` :math:`T` is

    .. math::

        \eta_t = \eta \, s \cdot \min\!\left(1, \frac{t + 1}{W}\right) \cdot
        \begin{cases}
            1 & \text{constant, plateau} \\
            \frac{\eta_{\min}}{\eta} + \left(1 - \frac{\eta_{\min}}{\eta}\right)
            \frac{1 + \cos(\pi \, (t - W) / (T - W))}{2} & \text{cosine},\ t \ge W
        \end{cases}

    where the plateau scale :math:`s` (1 otherwise) is multiplied by ``plateau_factor`` after
    ``plateau_patience`` evaluations in a row without a new best validation loss, never taking
    the rate below ``min_lr`` (Loshchilov and Hutter 2017, "SGDR", for the cosine decay).

    Args:
        steps: number of optimisation steps.
        batch_size: global batch size (split evenly across processes under ``torchrun``).
        lr: base learning rate.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        betas: Adam/AdamW moment decay rates.
        momentum: SGD momentum.
        weight_decay: L2 penalty (Adam, SGD) or decoupled decay (AdamW).
        schedule: ``"constant"``, ``"cosine"`` or ``"plateau"`` (needs validation data).
        warmup: number of linear warm-up steps (0 for none).
        min_lr: floor of the cosine and plateau schedules.
        plateau_factor: multiplier applied to the rate on a plateau, in (0, 1).
        plateau_patience: evaluations without improvement before the rate is reduced.
        grad_clip: maximum global gradient norm, or ``None`` for no clipping.
        eval_every: validate every this many steps (and after the last step).
        eval_batch_size: validation batch size (defaults to ``4 * batch_size``: without
            gradients a batch keeps no activations for a backward pass, and fewer, larger
            batches cost less per row; the default MAF's 5,000 validation rows take 17 ms of
            CPU in batches of 1,024 against 27 ms in batches of 256).
        patience: early stopping after this many evaluations in a row without improvement, or
            ``None`` to train for all ``steps``.
        min_delta: an evaluation improves on the best when it is lower by more than this.
        restore_best: at the end, give back the best-validation weights (when validating).
        max_consecutive_nonfinite: stop with :class:`~tractable.train.DivergenceError` after
            this many steps in a row with a non-finite loss or gradient norm.
        seed: seeds the data order, the batch-noise generator and torch's global generator.
        checkpoint_every: write a checkpoint every this many steps (``None``: only at the end).
        keep_checkpoints: complete checkpoints kept on disk (older ones are removed only after
            a newer one is written and verified).
        log_every: append a line to ``log.jsonl`` every this many steps (and at every
            evaluation).
        max_seconds: stop once this much training time (across resumes; validation
            included) has passed, with ``stop_reason`` ``"time_limit"``, after a last
            validation. For comparisons at equal wall time; the schedule still spans
            ``steps``. ``None``: no limit.

    Example:
        >>> cfg = TrainConfig(steps=100, batch_size=32, schedule="cosine", warmup=10)
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> TrainConfig(optimizer="lbfgs")
        Traceback (most recent call last):
            ...
        ValueError: optimizer: expected one of 'adam', 'adamw', 'sgd', got 'lbfgs'
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: int = 0
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    grad_clip: float | None = None
    eval_every: int = 100
    eval_batch_size: int | None = None
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    max_consecutive_nonfinite: int = 10
    seed: int = 0
    checkpoint_every: int | None = None
    keep_checkpoints: int = 1
    log_every: int = 10
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        _int(self.steps, "steps", 1)
        _int(self.batch_size, "batch_size", 1)
        _float(self.lr, "lr", 0.0, low_open=True)
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        betas = self.betas
        if isinstance(betas, list):
            betas = tuple(betas)
            object.__setattr__(self, "betas", betas)
        if not isinstance(betas, tuple) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair of floats, got {self.betas!r}")
        for i, beta in enumerate(betas):
            _float(beta, f"betas[{i}]", 0.0, 1.0, high_open=True)
        _float(self.momentum, "momentum", 0.0, 1.0, high_open=True)
        _float(self.weight_decay, "weight_decay", 0.0)
        _choice(self.schedule, "schedule", SCHEDULES)
        _int(self.warmup, "warmup", 0)
        if self.warmup >= self.steps:
            raise ValueError(
                f"warmup: expected fewer warm-up steps than steps ({self.steps}), got {self.warmup}"
            )
        _float(self.min_lr, "min_lr", 0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr: expected a value <= lr ({self.lr}), got {self.min_lr}")
        _float(self.plateau_factor, "plateau_factor", 0.0, 1.0, low_open=True, high_open=True)
        _int(self.plateau_patience, "plateau_patience", 1)
        _float(self.grad_clip, "grad_clip", 0.0, low_open=True, allow_none=True)
        _int(self.eval_every, "eval_every", 1)
        _int(self.eval_batch_size, "eval_batch_size", 1, allow_none=True)
        _int(self.patience, "patience", 1, allow_none=True)
        _float(self.min_delta, "min_delta", 0.0)
        if not isinstance(self.restore_best, bool):
            raise TypeError(
                f"restore_best: expected a bool, got {type(self.restore_best).__name__}"
            )
        _int(self.max_consecutive_nonfinite, "max_consecutive_nonfinite", 1)
        _int(self.seed, "seed", 0)
        _int(self.checkpoint_every, "checkpoint_every", 1, allow_none=True)
        _int(self.keep_checkpoints, "keep_checkpoints", 1)
        _int(self.log_every, "log_every", 1)
        _float(self.max_seconds, "max_seconds", 0.0, low_open=True, allow_none=True)

    @property
    def val_batch_size(self) -> int:
        r"""The batch size used for validation."""
        return self.eval_batch_size if self.eval_batch_size is not None else 4 * self.batch_size

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-ready dict of every field (``betas`` as a list)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        r"""Build a config from a dict, refusing unknown keys (a typo would otherwise be lost)."""
        if not isinstance(values, Mapping):
            raise TypeError(f"values: expected a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"values: unknown TrainConfig field(s) {unknown}; valid fields are {sorted(known)}"
            )
        return cls(**dict(values))


__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES"]

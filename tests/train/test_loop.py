from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_file_bytes
from safetensors.torch import load_file, save_file

from tractable.train import (
    DivergenceError,
    TrainConfig,
    evaluate_loss,
    fit,
    load_latest_checkpoint,
    load_model,
    resume,
)

from .helpers import Toy, assert_bitwise_equal, dequantize, gaussian_data, params_of

CFG = TrainConfig(steps=24, batch_size=16, lr=0.05, eval_every=6, log_every=4, checkpoint_every=8)


def _run(tmp: Path | None, cfg: TrainConfig = CFG, **model_kw) -> tuple[Toy, dict]:
    model = Toy(**model_kw)
    out = fit(model, gaussian_data(), gaussian_data(40, seed=2), cfg, tmp, progress=False)
    return model, out


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_run_directory_contents_and_summary(tmp_path: Path) -> None:
    run = tmp_path / "run"
    model = Toy()
    out = fit(
        model, gaussian_data(), gaussian_data(40, seed=2), CFG, run, progress=False,
        model_config={"features": 2}, data_config={"name": "toy"},
        log_extra=lambda m, step: {"loc0": m.loc[0].item()},
    )  # fmt: skip
    names = sorted(p.name for p in run.iterdir())
    assert names == [
        ".lock", "MANIFEST.json", "best.safetensors", "checkpoints", "config.json", "log.jsonl",
        "metrics.json", "model.safetensors",
    ]  # fmt: skip
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000024.1"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"features": 2} and config["data"] == {"name": "toy"}
    assert TrainConfig.from_dict(config["train"]) == CFG
    assert config["data_fingerprint"]["train"][0]["shape"] == [96, 2]
    assert json.loads((run / "metrics.json").read_text()) == out
    assert out["steps"] == 24 and out["stop_reason"] == "completed"
    log = _log(run)
    assert [r["step"] for r in log] == [4, 6, 8, 12, 16, 18, 20, 24]
    evals = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12, 18, 24]
    assert all("loc0" in r for r in evals) and "loc0" not in log[0]
    assert all(r["calls"] > 0 for r in log)  # model.extra_log()
    assert out["best_val_loss"] == min(r["val_loss"] for r in evals)
    # the final weights are the best ones, and load back through load_model
    rebuilt = load_model(run, lambda c: Toy(**c))
    assert_bitwise_equal(params_of(rebuilt), params_of(model))
    assert_bitwise_equal(load_file(str(run / "best.safetensors")), params_of(model))


def test_same_seed_is_bitwise_deterministic_and_seeds_differ() -> None:
    cfg = TrainConfig(steps=15, batch_size=16, lr=0.05, eval_every=5)
    kw = {"noisy": True}
    a, out_a = _run(None, cfg, **kw)
    b, out_b = _run(None, cfg, **kw)
    assert_bitwise_equal(params_of(a), params_of(b))
    assert out_a["best_val_loss"] == out_b["best_val_loss"]
    c, _ = _run(None, TrainConfig(steps=15, batch_size=16, lr=0.05, eval_every=5, seed=1), **kw)
    assert not torch.equal(a.loc, c.loc)


class _InterruptError(Exception):
    pass


def _interrupting(after_calls: int):
    calls = {"n": 0}

    def transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise _InterruptError
        return dequantize(x, gen)

    return transform


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("stop_after", [11, 16])
def test_resume_is_bitwise_identical(tmp_path: Path, optimizer: str, stop_after: int) -> None:
    """Stopped at step 11 (between checkpoints) or 16 (right after one), then resumed."""
    cfg = TrainConfig(
        steps=26, batch_size=16, lr=0.05, optimizer=optimizer, schedule="plateau",
        plateau_patience=1, eval_every=3, checkpoint_every=4, log_every=2, warmup=3,
    )  # fmt: skip
    x, c = gaussian_data(100, 2), gaussian_data(100, 3, seed=5)  # 6 batches/epoch, remainder 4
    val = (gaussian_data(30, seed=7), gaussian_data(30, 3, seed=8))
    kw = {"context": 3, "noisy": True}

    torch.manual_seed(0)
    ref = Toy(**kw)
    ref_out = fit(ref, (x, c), val, cfg, tmp_path / "ref", batch_transform=dequantize,
                  progress=False)  # fmt: skip

    run = tmp_path / "cut"
    torch.manual_seed(0)  # the same initial weights as the reference
    with pytest.raises(_InterruptError):
        fit(Toy(**kw), (x, c), val, cfg, run, batch_transform=_interrupting(stop_after),
            progress=False)  # fmt: skip
    assert load_latest_checkpoint(run)[0] == 4 * (stop_after // 4)

    torch.manual_seed(123)  # the global RNG state must come from the checkpoint, not from here
    model = Toy(**kw)
    out = resume(run, model, (x, c), val, batch_transform=dequantize, progress=False)
    assert_bitwise_equal(params_of(model), params_of(ref))
    assert {k: v for k, v in out.items() if not k.endswith("seconds") and k != "run_dir"} == {
        k: v for k, v in ref_out.items() if not k.endswith("seconds") and k != "run_dir"
    }
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _log(run)]
    ref_log = [{k: v for k, v in r.items() if k != "seconds"} for r in _log(tmp_path / "ref")]
    assert [r["step"] for r in strip] == [r["step"] for r in ref_log]
    for got, want in zip(strip, ref_log, strict=True):
        assert {k: v for k, v in got.items() if k != "calls"} == {
            k: v for k, v in want.items() if k != "calls"
        }


def test_resume_of_a_finished_run_does_not_train(tmp_path: Path) -> None:
    model, out = _run(tmp_path / "run")
    best = tmp_path / "run" / "best.safetensors"
    original = best.read_bytes()
    save_file({"loc": torch.zeros(2)}, str(best))  # as if written after the checkpoint
    again = Toy()
    out2 = resume(tmp_path / "run", again, gaussian_data(), gaussian_data(40, seed=2),
                  progress=False)  # fmt: skip
    assert again.calls == 0
    assert_bitwise_equal(params_of(again), params_of(model))
    assert out2["steps"] == out["steps"] and out2["best_val_loss"] == out["best_val_loss"]
    assert_bitwise_equal(load_file(str(best)), load_file_bytes(original))


def test_resume_refuses_different_data(tmp_path: Path) -> None:
    _run(tmp_path / "run")
    with pytest.raises(ValueError, match="train_data: differs from the data"):
        resume(tmp_path / "run", Toy(), gaussian_data(seed=9), gaussian_data(40, seed=2))
    with pytest.raises(ValueError, match="val_data: differs from the data"):
        resume(tmp_path / "run", Toy(), gaussian_data(), None)


def test_fit_refuses_an_existing_run(tmp_path: Path) -> None:
    _run(tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run; continue it with"):
        _run(tmp_path / "run")


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    # Training data centred at 3, validation at 0.6: moving from 0 towards 3 first helps the
    # validation loss, then hurts it.
    train, val = gaussian_data(64, shift=3.0), gaussian_data(64, seed=4, shift=0.6)
    cfg = TrainConfig(steps=400, batch_size=16, lr=0.05, eval_every=2, patience=3)
    model = Toy(data_init=False)
    out = fit(model, train, val, cfg, tmp_path / "run", progress=False)
    assert out["stop_reason"] == "early_stopping" and out["restored_best"]
    evals = [r for r in _log(tmp_path / "run") if "val_loss" in r]
    best = min(evals, key=lambda r: r["val_loss"])
    assert out["best_step"] == best["step"] and out["steps"] == best["step"] + 3 * 2
    assert [r["val_loss"] > best["val_loss"] for r in evals[-3:]] == [True] * 3
    assert out["best_val_loss"] == best["val_loss"]
    # the returned model is the best one: its validation loss is the best value
    with torch.no_grad():
        assert float(model.eval().loss(val)) == pytest.approx(best["val_loss"], rel=1e-12)
    assert_bitwise_equal(load_file(str(tmp_path / "run" / "model.safetensors")), params_of(model))


def test_without_restore_best_the_last_weights_are_kept() -> None:
    train, val = gaussian_data(64, shift=3.0), gaussian_data(64, seed=4, shift=0.6)
    cfg = TrainConfig(steps=40, batch_size=16, lr=0.05, eval_every=2, restore_best=False)
    model = Toy(data_init=False)
    out = fit(model, train, val, cfg, progress=False)
    assert not out["restored_best"] and out["best_step"] < 40
    with torch.no_grad():
        assert float(model.eval().loss(val)) > out["best_val_loss"]


def test_a_nonfinite_step_is_skipped_and_counted(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=8, batch_size=16, lr=0.05, log_every=1)
    model = Toy()
    model.nan_at = {3}
    model.nan_grad_at = {6}
    out = fit(model, gaussian_data(), None, cfg, tmp_path / "run", progress=False)
    assert out["nonfinite_steps"] == 2 and out["steps"] == 8
    log = _log(tmp_path / "run")
    assert [r["nonfinite_steps"] for r in log] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert log[2]["loss"] is None and log[2]["grad_norm"] is None  # NaN is logged as null
    assert log[5]["grad_norm"] is None  # a finite loss with a NaN gradient is skipped too
    assert all(torch.isfinite(v).all() for v in params_of(model).values())


def test_skipped_step_leaves_the_weights_unchanged() -> None:
    cfg = TrainConfig(steps=3, batch_size=16, lr=0.05)
    a = Toy(data_init=False)
    fit(a, gaussian_data(), None, TrainConfig(steps=2, batch_size=16, lr=0.05), progress=False)
    b = Toy(data_init=False)
    b.nan_at = {3}
    out = fit(b, gaussian_data(), None, cfg, progress=False)
    assert out["nonfinite_steps"] == 1
    assert_bitwise_equal(params_of(a), params_of(b))


def test_divergence_error_after_consecutive_nonfinite_steps(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=30, batch_size=16, lr=0.05, checkpoint_every=5,
                      max_consecutive_nonfinite=4)  # fmt: skip
    model = Toy()
    model.nan_at = {3, 8, 9, 10, 11, 12, 13}
    with pytest.raises(DivergenceError, match="non-finite for 4 steps in a row") as info:
        fit(model, gaussian_data(), None, cfg, tmp_path / "run", progress=False)
    assert (info.value.step, info.value.consecutive, info.value.total) == (10, 4, 5)
    assert "steps 8..11" in str(info.value) and "max_consecutive_nonfinite=4" in str(info.value)
    assert load_latest_checkpoint(tmp_path / "run")[0] == 10
    _assert_no_nonfinite_file(tmp_path / "run")


def test_nonfinite_weights_are_never_written(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=12, batch_size=16, lr=0.05, checkpoint_every=4)
    model = Toy()
    model.bad_buffer_at = {6}  # a buffer turns NaN while the loss at that call stays finite
    with pytest.raises(DivergenceError, match="weights became non-finite"):
        fit(model, gaussian_data(), None, cfg, tmp_path / "run", progress=False)
    assert load_latest_checkpoint(tmp_path / "run")[0] == 4
    assert not (tmp_path / "run" / "model.safetensors").exists()
    _assert_no_nonfinite_file(tmp_path / "run")


def _assert_no_nonfinite_file(run: Path) -> None:
    files = list(run.rglob("*.safetensors"))
    assert files
    for path in files:
        for name, t in load_file(str(path)).items():
            if t.is_floating_point():
                assert bool(torch.isfinite(t).all()), f"{path}: {name}"


def test_context_tuples_and_val_loss_fn() -> None:
    x, c = gaussian_data(64), gaussian_data(64, 3, seed=3)
    seen = []

    def val_loss(model: Toy, batch: tuple) -> torch.Tensor:
        seen.append(batch[0].shape[0])
        return model.loss(batch)

    cfg = TrainConfig(steps=4, batch_size=16, eval_every=2, eval_batch_size=7)
    fit(Toy(context=3), (x, c), (x[:20], c[:20]), cfg, val_loss_fn=val_loss, progress=False)
    assert seen == [7, 7, 6, 7, 7, 6]


def test_progress_bar_is_harmless_without_a_terminal(capsys) -> None:
    fit(Toy(), gaussian_data(), None, TrainConfig(steps=3, batch_size=16), progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": torch.nn.Linear(2, 2)}, TypeError, "model: expected a loss"),
        ({"model": "m"}, TypeError, "model: expected a torch.nn.Module"),
        ({"train_data": [1, 2]}, TypeError, "train_data[0]: expected a torch.Tensor"),
        ({"train_data": torch.full((40, 2), float("nan"))}, ValueError, "train_data: expected"),
        ({"train_data": (torch.zeros(40, 2), torch.zeros(39, 1))}, ValueError, "40 rows"),
        ({"train_data": torch.zeros(8, 2)}, ValueError, "config.batch_size: expected at most"),
        ({"config": {"steps": 3}}, TypeError, "config: expected a TrainConfig"),
        ({"config": TrainConfig(batch_size=16, patience=2)}, ValueError, "need validation"),
        ({"config": TrainConfig(batch_size=16, schedule="plateau")}, ValueError, "validation"),
        ({"model_config": {"a": object()}}, ValueError, "model_config: expected a JSON"),
        ({"batch_transform": lambda x, g: x[:3]}, ValueError, "batch_transform: expected a"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    args = {
        "model": Toy(),
        "train_data": gaussian_data(40),
        "config": TrainConfig(steps=2, batch_size=16),
        "progress": False,
    }
    args.update(kwargs)
    with pytest.raises(error) as info:
        fit(**args)
    assert message in str(info.value)


def test_loss_must_be_a_scalar_with_grad() -> None:
    class Bad(Toy):
        def loss(self, batch):  # per-example values instead of the mean
            return -self.log_prob(batch)

    with pytest.raises(ValueError, match=r"model.loss\(batch\): expected a scalar tensor"):
        fit(Bad(), gaussian_data(), None, TrainConfig(steps=2, batch_size=16), progress=False)


def test_evaluate_loss_is_a_row_weighted_mean_and_restores_the_mode() -> None:
    model = Toy(data_init=False)
    with torch.no_grad():
        model.loc.copy_(torch.tensor([0.5, -1.0]))
    x = gaussian_data(23)
    exact = -model.log_prob(x).mean().item()
    model.train()
    for size in (1, 5, 23, 100):
        assert evaluate_loss(model, x, batch_size=size) == pytest.approx(exact, rel=1e-13)
    assert model.training and model.calls == 0  # eval mode: not counted as training calls
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        evaluate_loss(model, x, batch_size=0)


def test_resume_with_more_steps_continues_a_finished_run(tmp_path) -> None:
    """`resume(..., steps=N)` extends a finished run and ends where an N-step run ends."""
    import tractable as tr
    from tractable.train import TrainConfig, fit, resume

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return tr.flows.MAF(2, transforms=1, hidden=(8,))

    x = torch.randn(256, 2)
    cfg = TrainConfig(steps=6, batch_size=32, eval_every=3, seed=3)
    short = model()
    fit(short, x, x[:64], cfg, tmp_path / "a", model_config={"m": 1}, progress=False)
    extended = model()
    resume(tmp_path / "a", extended, x, x[:64], progress=False, steps=10)
    full = model()
    fit(full, x, x[:64], TrainConfig(steps=10, batch_size=32, eval_every=3, seed=3),
        tmp_path / "b", model_config={"m": 1}, progress=False)
    for (name, a), b in zip(extended.state_dict().items(), full.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="steps: expected an int >= the run's current total"):
        resume(tmp_path / "a", model(), x, x[:64], progress=False, steps=4)


def test_without_a_terminal_progress_is_one_line_per_evaluation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # pytest's captured stderr is not a terminal: no bar, a status line at every evaluation
    fit(Toy(), gaussian_data(), gaussian_data(40, seed=2), CFG, None, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"train: step {s}/24" for s in (6, 12, 18, 24)
    ]
    assert all(" val " in line and "s/step, about " in line for line in lines)
    assert lines[-1].endswith("about 0 s left")
    fit(Toy(), gaussian_data(), gaussian_data(40, seed=2), CFG, None, progress=False)
    assert capsys.readouterr().err == ""


def test_max_seconds_stops_at_the_time_budget_after_a_last_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that advances one second per reading: the budget is reached after a known
    # number of steps, whatever the machine's speed.
    import tractable.train.loop as loop_module

    ticks = iter(range(10**6))
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: float(next(ticks)))
    train, val = gaussian_data(64, shift=3.0), gaussian_data(64, seed=4, shift=0.6)
    cfg = TrainConfig(steps=400, batch_size=16, lr=0.05, eval_every=50, max_seconds=7.0)
    out = fit(Toy(data_init=False), train, val, cfg, tmp_path / "run", progress=False)
    assert out["stop_reason"] == "time_limit"
    assert 1 <= out["steps"] < 50  # stopped long before the first scheduled validation
    evals = [r for r in _log(tmp_path / "run") if "val_loss" in r]
    assert [r["step"] for r in evals] == [out["steps"]]  # the last validation at the stop
    assert out["final_val_loss"] == evals[-1]["val_loss"]


def test_without_max_seconds_the_run_completes() -> None:
    train, val = gaussian_data(64, shift=3.0), gaussian_data(64, seed=4, shift=0.6)
    cfg = TrainConfig(steps=12, batch_size=16, lr=0.05, eval_every=4)
    out = fit(Toy(data_init=False), train, val, cfg, progress=False)
    assert out["stop_reason"] == "completed" and out["steps"] == 12


class _NoisyLoss(torch.nn.Module):
    r"""A loss that draws random numbers (as flow matching and diffusion do) and a weight
    whose gradient is zero, so the weights never change."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return 0.0 * self.w + torch.rand(batch.shape[0]).mean()


def test_validation_draws_the_same_noise_every_time(tmp_path: Path) -> None:
    x = torch.randn(64, 2)
    cfg = TrainConfig(steps=12, batch_size=16, lr=0.01, eval_every=3, log_every=1)
    out = fit(_NoisyLoss(), x, x[:32], cfg, tmp_path / "run", progress=False)
    evals = [r["val_loss"] for r in _log(tmp_path / "run") if "val_loss" in r]
    train = [r["loss"] for r in _log(tmp_path / "run") if "loss" in r]
    assert len(evals) == 4 and len(set(evals)) == 1  # unchanged weights, unchanged score
    assert len(set(train)) > 1  # training still draws fresh noise
    assert out["best_step"] == 3  # no later evaluation "improves" on noise

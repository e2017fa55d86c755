"""End-to-end tests of the command line (small budgets; the slow ones are marked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tractable.cli import main

TINY = ["-o", "hidden=[16]", "-o", "transforms=2", "--train-size", "512", "--batch-size", "64"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_eval_sample_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run(
        [
            "train",
            "--model",
            "maf",
            "--data",
            "moons",
            "--steps",
            "30",
            "--out",
            str(out),
            "--json",
            *TINY,
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads(stdout)
    for key in ("test_nll", "test_nll_se", "val_nll", "steps", "train_seconds", "params"):
        assert key in metrics, key
    assert np.isfinite(metrics["test_nll"]) and metrics["steps"] == 30
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["test_nll"] == metrics["test_nll"]
    for name in (
        "config.json",
        "model.safetensors",
        "log.jsonl",
        "training_curves.png",
        "density.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, stdout, _ = run(["eval", str(out), "--json"], capsys)
    assert code == 0 and json.loads(stdout)["test_nll"] == pytest.approx(metrics["test_nll"])

    code, stdout, _ = run(
        ["sample", str(out), "-n", "7", "--temperature", "0.5", "--out", str(tmp_path / "s.npy")],
        capsys,
    )
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (7, 2)
    (out / "density.png").unlink()
    code, stdout, _ = run(["plot", str(out)], capsys)
    assert code == 0 and (out / "density.png").is_file()


def test_resume_extends_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert run(["train", "--steps", "10", "--out", str(out), *TINY], capsys)[0] == 0
    code, _, _ = run(["train", "--resume", str(out), "--steps", "20", "--json"], capsys)
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 20


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "glowworm"], "model: unknown model 'glowworm'; expected one of"),
        (["train", "--data", "nope"], "unknown dataset 'nope'; expected one of"),
        (["train", "-o", "hiden=3"], "unknown option(s) ['hiden'] for model 'maf'"),
        (["train", "-o", "hidden"], "--option: expected KEY=VALUE"),
        (["train", "--steps", "0"], "steps"),
        (["train", "--model", "glow", "--data", "moons"], "needs images of shape (C, H, W)"),
        (["eval", "/nonexistent/run"], "holds no run"),
        (["train", "--config", "/nonexistent.yaml"], "--config: no such file"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("tractable: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: maf\nlearning_rate: 0.1\n")
    code, _, err = run(["train", "--config", str(bad)], capsys)
    assert code == 2 and "unknown key(s) ['learning_rate']" in err
    good = tmp_path / "good.yaml"
    good.write_text(
        "model: realnvp\ndata: 8gaussians\nsteps: 5\nn: 256\nbatch_size: 32\n"
        "options: {hidden: [8], transforms: 2}\ntrain: {schedule: cosine}\n"
    )
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "--config", str(good), "--out", str(out), "--json"], capsys)
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["model"] == "realnvp" and config["train"]["schedule"] == "cosine"
    assert config["data"]["dataset"]["name"] == "8gaussians"


def test_existing_run_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert run(["train", "--steps", "2", "--out", str(out), *TINY], capsys)[0] == 0
    code, _, err = run(["train", "--steps", "2", "--out", str(out), *TINY], capsys)
    assert code == 2 and "--resume" in err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["list", "--json"], capsys)
    listing = json.loads(stdout)
    assert code == 0 and {"maf", "nsf", "vae", "ffjord", "glow"} <= set(listing["models"])
    assert {"moons", "digits", "mnist5k-binary"} <= set(listing["datasets"])


def test_discrete_data_reports_bits_per_dim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run(
        [
            "train",
            "--model",
            "realnvp",
            "--data",
            "digits",
            "--steps",
            "5",
            "--out",
            str(out),
            "--json",
            "-o",
            "hidden=[8]",
            "-o",
            "transforms=2",
        ],
        capsys,
    )
    m = json.loads(stdout)
    assert code == 0 and 0 < m["test_bpd"] < 20
    assert (out / "samples.png").is_file()


def test_vae_with_estimators(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vae"
    code, _, _ = run(
        [
            "train",
            "--model",
            "vae",
            "--data",
            "digits-binary",
            "--steps",
            "5",
            "-o",
            "prior=mog",
            "-o",
            "objective=iwae",
            "-o",
            "k=3",
            "-o",
            "latent=4",
            "-o",
            "hidden=[16]",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    results = {}
    for est, k in (("elbo", 20), ("iwae", 5), ("iwae", 200)):
        code, stdout, _ = run(
            ["eval", str(out), "--estimator", est, "--k", str(k), "--json"], capsys
        )
        assert code == 0
        results[(est, k)] = json.loads(stdout)
        assert results[(est, k)]["test_nll_se"] > 0
    # bounds on log p: ELBO <= IWAE_5 <= IWAE_200 (NLL the other way), within standard errors
    nll = {key: r["test_nll"] for key, r in results.items()}
    se = max(r["test_nll_se"] for r in results.values())
    assert nll[("elbo", 20)] + se >= nll[("iwae", 5)] >= nll[("iwae", 200)] - se
    stored = json.loads((out / "metrics.json").read_text())["evaluations"]
    assert {"test:elbo-20", "test:iwae-5", "test:iwae-200"} <= set(stored)


@pytest.mark.slow
def test_image_flow_and_ffjord(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(
        [
            "train",
            "--model",
            "glow",
            "--data",
            "digits",
            "--steps",
            "3",
            "--batch-size",
            "32",
            "-o",
            "levels=1",
            "-o",
            "depth=1",
            "-o",
            "hidden=8",
            "--out",
            str(tmp_path / "g"),
            "--json",
        ],
        capsys,
    )
    assert code == 0 and np.isfinite(json.loads(stdout)["test_bpd"])
    run_dir = tmp_path / "g"
    for name in ("samples.png", "samples_t0.7.png", "interpolation.png", "training_curves.png"):
        assert (run_dir / name).is_file(), name
    # discrete images reach image flows in logit space with RealNVP's lambda by default
    stored = json.loads((run_dir / "config.json").read_text())["data"]
    assert stored["preprocess"]["logit"] == 0.05 and stored["preprocess"]["dequantize"]
    code, stdout, _ = run(
        [
            "train",
            "--model",
            "ffjord",
            "--data",
            "8gaussians",
            "--steps",
            "3",
            "--train-size",
            "256",
            "--batch-size",
            "64",
            "-o",
            "hidden=[8]",
            "--out",
            str(tmp_path / "f"),
            "--json",
        ],
        capsys,
    )
    assert code == 0 and np.isfinite(json.loads(stdout)["test_nll"])


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m tractable train ...` trains data-parallel on CPU."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        # --standalone: torchrun binds its own free port at once, so a test server that picks
        # a port at the same moment (the human-eval tests, in the other worker) cannot take it
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tractable",
        "train",
        "--steps",
        "10",
        "--out",
        str(out),
        "--json",
        *TINY,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # the start of stderr holds the failing rank's own message, the end torchrun's summary
    assert proc.returncode == 0, proc.stderr[:4000] + "\n...\n" + proc.stderr[-1500:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 10 and np.isfinite(metrics["test_nll"])
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


def test_interrupted_cli_run_keeps_its_checkpoints(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI checkpoints at every evaluation, so a run has a checkpoint mid-way."""
    out = tmp_path / "run"
    assert run(["train", "--steps", "20", "--out", str(out), *TINY], capsys)[0] == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["checkpoint_every"] == 2
    assert any((out / "checkpoints").iterdir())


def test_eval_estimator_aliases_ode_and_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # DDPM: `bound` is its elbo and `ode` its probability-flow likelihood; a MAF has neither.
    ddpm = tmp_path / "ddpm"
    argv = ["train", "--model", "ddpm", "--data", "moons", "--steps", "4", "--train-size",
            "256", "--batch-size", "64", "-o", "hidden=[8]", "-o", "steps=5", "--out", str(ddpm)]
    assert run(argv, capsys)[0] == 0  # fmt: skip
    code, stdout, _ = run(["eval", str(ddpm), "--estimator", "bound", "--rows", "8", "--json"],
                          capsys)  # fmt: skip
    assert code == 0 and json.loads(stdout)["test_estimator"].startswith("elbo")
    code, stdout, _ = run(["eval", str(ddpm), "--estimator", "ode", "--rows", "8", "--json"],
                          capsys)  # fmt: skip
    result = json.loads(stdout)
    assert code == 0 and result["test_estimate_kind"] == "exact"
    maf = tmp_path / "maf"
    argv = ["train", "--model", "maf", "--data", "moons", "--steps", "2", "--out", str(maf), *TINY]
    assert run(argv, capsys)[0] == 0
    code, _, err = run(["eval", str(maf), "--estimator", "ode"], capsys)
    assert code == 2 and "--estimator ode: model 'maf' computes no likelihood by an ODE" in err
    code, _, err = run(["eval", str(maf), "--estimator", "bound"], capsys)
    assert code == 2 and "--estimator bound: model 'maf' has no bound to report" in err


def test_commands_other_than_train_take_one_thread_on_a_busy_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr("tractable.runs.threads.available_cores", lambda: 2)
    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = torch.get_num_threads()
    assert run(["list"], capsys)[0] == 0
    assert calls == [1, before]  # one thread while it ran, the previous number restored


def test_the_program_freezes_its_imports_and_passes_on_the_exit_code() -> None:
    # the `tractable` program (console script, `python -m tractable`) freezes the objects of
    # its imports before the command and everything before exiting; main() as a function
    # freezes nothing
    probe = (
        "import gc, sys\n"
        "from tractable import cli\n"
        "assert gc.get_freeze_count() == 0\n"
        "cli.main(['list', '--json'])\n"
        "assert gc.get_freeze_count() == 0, 'main() froze the caller'\n"
        "def fake(argv=None):\n"
        "    print('frozen before the command:', gc.get_freeze_count() > 0)\n"
        "    return 3\n"
        "cli.main = fake\n"
        "cli.entry()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert out.stdout.strip().endswith("frozen before the command: True")
    listing = subprocess.run(
        [sys.executable, "-m", "tractable", "list", "--json"], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "maf" in json.loads(listing.stdout)["models"]

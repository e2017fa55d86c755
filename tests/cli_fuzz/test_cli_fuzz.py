"""Fuzzing the command line: malformed flags, data files, YAML configs and tampered run
directories, in-process.

Every case must end with exit code 0 (the input happened to be fine) or 2 with exactly one
``tractable: error:`` line (or argparse's one line); never a traceback or another code. A
failed ``train`` leaves no directory, or one that ``--resume`` can use. No case may run code
from a file (a pickle that would create a marker file) or grow the process beyond a memory
bound (the size limit is lowered for the suite). Cases are drawn with fixed seeds, so a failure
reproduces; ``CLI_FUZZ_CASES`` raises the number of random cases per group.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import resource
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tractable.cli import main
from tractable.train import has_checkpoint

N = int(os.environ.get("CLI_FUZZ_CASES", "30"))
TINY = ["-o", "hidden=[8]", "-o", "transforms=1", "--train-size", "128", "--batch-size", "32"]
MAX_RSS_GROWTH_MB = 1500
MARKER = "pwned"


class Payload:
    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {MARKER}",))


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    _, err = capsys.readouterr()
    return code, err


def check(argv: list[str], code: int, err: str) -> None:
    lines = [x for x in err.strip().splitlines() if not x.startswith("train: step")]
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("tractable"), (argv, err)
        assert ": error: " in lines[0], (argv, err)


def usable_or_absent(out: Path) -> None:
    r"""A run directory after any outcome: absent, empty, finished or resumable."""
    if not out.exists():
        return
    names = {p.name for p in out.iterdir()} - {".lock"}
    if not names:
        return
    assert (out / "model.safetensors").exists() or has_checkpoint(out), sorted(names)


@pytest.fixture(autouse=True)
def _bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACTABLE_MAX_PARAMS", "2000000")
    monkeypatch.setenv("TRACTABLE_MAX_MODULES", "2000")
    monkeypatch.chdir(tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown < MAX_RSS_GROWTH_MB, f"the process grew by {grown:.0f} MB"
    assert not (tmp_path / MARKER).exists(), "a file's code ran"


# -- flags -----------------------------------------------------------------------------------------
VALUES = {
    "--steps": ["0", "-1", "abc", "1e3", "3", ""],
    "--batch-size": ["0", "-5", "x", "1", "100000", ""],
    "--lr": ["0", "-1", "nan", "inf", "1e9", "abc", "", "0.01"],
    "--seed": ["-1", "x", "3", ""],
    "--data-seed": ["-2", "1.5", "0"],
    "--train-size": ["0", "-1", "1", "3", "5000"],
    "--model": ["", " ", "nope", "maf", "realnvp", "vae", "glow", "../maf", "maf\n"],
    "--data": ["", "nope", "moons", "/nonexistent.csv", ".", "/dev/null", "8gaussians"],
    "-o": [
        "hidden",
        "=3",
        "hidden=[",
        "hidden=-1",
        "hidden=[0]",
        "transforms=0",
        "transforms=-3",
        'hidden="a"',
        "nope=1",
        "hidden=[1e9]",
        "hidden=[100000000]",
        "transforms=1000000",
        "activation=evil",
        "hidden=null",
    ],  # fmt: skip
    "-t": [
        "schedule=nope",
        "patience=0",
        "steps=3",
        "grad_clip=-1",
        "x=1",
        "warmup=100",
        "max_consecutive_nonfinite=0",
        "checkpoint_every=abc",
        "keep_checkpoints=0",
    ],  # fmt: skip
    "--data-option": ["logit=2", "std=-1", "nope=3", "val_fraction=1.5", "n=abc"],
    "--out": ["", "/proc/forbidden", "/dev/null/x"],
    "--config": ["", "/nonexistent.yaml", "/dev/null", "."],
    "--resume": ["", "/nonexistent", ".", "/dev/null"],
}


@pytest.mark.parametrize("seed", range(N))
def test_random_train_flags(seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(seed)
    argv = ["train", "--steps", "2", *TINY]
    for flag in rng.sample(sorted(VALUES), rng.randint(1, 3)):
        argv += [flag, rng.choice(VALUES[flag])]
    if "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    code, err = cli(argv, capsys)
    check(argv, code, err)
    usable_or_absent(tmp_path / "run")


@pytest.mark.parametrize(
    "argv",
    [
        ["eval"],
        ["eval", "/nonexistent"],
        ["eval", "."],
        ["eval", "", "--k", "0"],
        ["sample", "/nonexistent", "-n", "0"],
        ["sample", ".", "-n", "-3"],
        ["plot", "/dev/null"],
        ["compare"],
        ["score", "."],
        ["features", "show", "--data", "x"],
        ["nonsense"],
        [],
        ["train", "--steps"],
        ["eval", "--split", "nope", "."],
        ["train", "--resume", ".", "--model", "maf"],
    ],  # fmt: skip
)
def test_other_commands(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(argv, capsys)
    check(argv, code, err)
    assert code == 2


# -- data files -----------------------------------------------------------------------------------
def data_files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {}

    def text(name: str, content: str) -> None:
        files[name] = root / name
        files[name].write_text(content)

    text("empty.csv", "")
    text("header-only.csv", "a,b\n")
    text("ragged.csv", "1,2\n3\n4,5,6\n")
    text("words.csv", "a,b\nc,d\n")
    text("nan.csv", "1,2\nnan,3\n" * 20)
    text("huge.csv", "1e308,1\n2,3\n" * 20)
    text("binary.csv", "\x00\x01\x02\xff" * 10)
    text("one-row.csv", "1,2\n")
    text("one-column.csv", "\n".join(str(v) for v in rng.normal(size=50)))
    files["pickle.npy"] = root / "pickle.npy"
    np.save(files["pickle.npy"], np.array([Payload()], dtype=object), allow_pickle=True)
    files["pickled.pt"] = root / "pickled.pt"
    files["pickled.pt"].write_bytes(pickle.dumps(Payload()))
    files["object.npz"] = root / "object.npz"
    np.savez(files["object.npz"], x=np.array([Payload()], dtype=object))
    files["truncated.npy"] = root / "truncated.npy"
    np.save(files["truncated.npy"], rng.normal(size=(100, 2)))
    files["truncated.npy"].write_bytes(files["truncated.npy"].read_bytes()[:100])
    files["string.npy"] = root / "string.npy"
    np.save(files["string.npy"], np.array([["a", "b"]] * 20))
    files["3d.npy"] = root / "3d.npy"
    np.save(files["3d.npy"], rng.normal(size=(20, 2, 2, 2, 2)))
    files["directory"] = root / "adir"
    files["directory"].mkdir()
    files["no-suffix"] = root / "data"
    files["no-suffix"].write_text("1,2\n")
    return files


def test_malformed_data_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, path in data_files(tmp_path).items():
        out = tmp_path / f"run-{name}"
        argv = ["train", "--data", str(path), "--steps", "2", "--out", str(out),
                "--batch-size", "2", "-o", "hidden=[4]", "-o", "transforms=1"]  # fmt: skip
        code, err = cli(argv, capsys)
        check(argv, code, err)
        usable_or_absent(out)
        if name in ("pickle.npy", "pickled.pt", "object.npz"):
            assert code == 2


# -- YAML configs ---------------------------------------------------------------------------------
YAML_VALUES = [
    "abc", "-1", "0", "1e400", "[1, 2]", "{a: 1}", "null", "true", "''", "!!python/object:os.system"
    " {}", "!!binary aGVsbG8=", "*undefined", "&a [*a]", "2020-01-01", ".nan", "99999999999999999",
    "{hidden: [0]}", "{transforms: 1000000}", "{schedule: nope}", "maf", "moons", "3",
]  # fmt: skip
YAML_KEYS = ["model", "data", "steps", "batch_size", "lr", "seed", "out", "options",
             "data_options", "train", "data_root", "data_seed", "n", "conditional",
             "nope"]  # fmt: skip


@pytest.mark.parametrize("seed", range(N))
def test_random_yaml_configs(seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1000 + seed)
    lines = ["steps: 2", "n: 128", "batch_size: 32", "options: {hidden: [8], transforms: 1}"]
    for key in rng.sample(YAML_KEYS, rng.randint(1, 3)):
        value = rng.choice(YAML_VALUES)
        if key in ("steps", "n") and value == "99999999999999999":
            value = "1e17"  # a float: refused (a valid huge count would just train for ever)
        lines.append(f"{key}: {value}")
    if rng.random() < 0.15:
        lines.append(rng.choice(["- a list", ":", "key: [unclosed", "\t tab: 1", "a: b: c"]))
    config = tmp_path / "c.yaml"
    config.write_text("\n".join(lines) + "\n")
    argv = ["train", "--config", str(config), "--out", str(tmp_path / "run")]
    code, err = cli(argv, capsys)
    check(argv + lines, code, err)
    usable_or_absent(tmp_path / "run")


def test_yaml_that_is_not_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ["", "- 1\n- 2\n", "just a string\n", "42\n", "!!python/name:os.system\n",
                 "\xff\xfe", "a: 1\na: 2\n"]:  # fmt: skip
        config = tmp_path / "c.yaml"
        config.write_bytes(text.encode("utf-8", "surrogateescape"))
        argv = ["train", "--config", str(config), "--steps", "2", *TINY, "--out",
                str(tmp_path / "run")]  # fmt: skip
        code, err = cli(argv, capsys)
        check(argv + [text], code, err)
        usable_or_absent(tmp_path / "run")
        shutil.rmtree(tmp_path / "run", ignore_errors=True)


# -- tampered run directories ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    code = main(["train", "--steps", "6", "--out", str(out), *TINY])
    assert code == 0
    return out


def _json_edit(key_path: list[str], value: object):  # noqa: ANN202
    def edit(run: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        node = config
        for k in key_path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[key_path[-1]]
        else:
            node[key_path[-1]] = value
        (run / "config.json").write_text(json.dumps(config))

    return edit


def _bytes_edit(name: str, how: str):  # noqa: ANN202
    def edit(run: Path) -> None:
        path = run / name
        if how == "truncate":
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        elif how == "flip":
            data = bytearray(path.read_bytes())
            data[len(data) * 2 // 3] ^= 0x10
            path.write_bytes(bytes(data))
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "pickle":
            path.write_bytes(pickle.dumps(Payload()))
        elif how == "garbage":
            path.write_bytes(b"{not json" * 10)
        elif how == "delete":
            path.unlink()
        elif how == "directory":
            path.unlink()
            path.mkdir()
        elif how == "symlink-out":
            outside = run.parent / f"outside-{name}"
            shutil.copy(path, outside)
            path.unlink()
            path.symlink_to(outside)

    return edit


def _checkpoints(how: str):  # noqa: ANN202
    def edit(run: Path) -> None:
        for path in (run / "checkpoints").rglob("*"):
            if how == "delete-manifests" and path.name == "MANIFEST.json":
                path.unlink()
            if how == "corrupt-state" and path.name == "state.json":
                path.write_text('{"__dict__": [["counters", {"__tensor__": "nope"}]]}')
            if how == "corrupt-model" and path.name == "model.safetensors":
                path.write_bytes(path.read_bytes()[:50])

    return edit


TAMPERING = {
    "config-invalid-json": _bytes_edit("config.json", "garbage"),
    "config-empty": _bytes_edit("config.json", "empty"),
    "config-deleted": _bytes_edit("config.json", "delete"),
    "config-directory": _bytes_edit("config.json", "directory"),
    "config-no-data": _json_edit(["data"], KeyError),
    "config-no-model": _json_edit(["model"], KeyError),
    "config-no-train": _json_edit(["train"], KeyError),
    "config-model-list": _json_edit(["model"], [1, 2]),
    "config-unknown-model": _json_edit(["model", "model"], "nope"),
    "config-shape-huge": _json_edit(["model", "shape"], [10**9]),
    "config-shape-negative": _json_edit(["model", "shape"], [-2]),
    "config-shape-string": _json_edit(["model", "shape"], "abc"),
    "config-hidden-changed": _json_edit(["model", "options", "hidden"], [9]),
    "config-hidden-huge": _json_edit(["model", "options", "hidden"], [10**9]),
    "config-transforms-huge": _json_edit(["model", "options", "transforms"], 10**7),
    "config-options-string": _json_edit(["model", "options"], "abc"),
    "config-unknown-option": _json_edit(["model", "options", "evil"], 1),
    "config-dataset-name": _json_edit(["data", "dataset", "name"], "nope"),
    "config-dataset-string": _json_edit(["data", "dataset"], "moons"),
    "config-preprocess-gone": _json_edit(["data", "preprocess"], KeyError),
    "config-train-steps-string": _json_edit(["train", "steps"], "abc"),
    "config-train-unknown": _json_edit(["train", "evil"], 1),
    "config-fingerprint": _json_edit(["data_fingerprint", "train"], "0" * 64),
    "model-truncated": _bytes_edit("model.safetensors", "truncate"),
    "model-flipped": _bytes_edit("model.safetensors", "flip"),
    "model-empty": _bytes_edit("model.safetensors", "empty"),
    "model-pickle": _bytes_edit("model.safetensors", "pickle"),
    "model-deleted": _bytes_edit("model.safetensors", "delete"),
    "model-directory": _bytes_edit("model.safetensors", "directory"),
    "model-symlink-outside": _bytes_edit("model.safetensors", "symlink-out"),
    "best-flipped": _bytes_edit("best.safetensors", "flip"),
    "manifest-garbage": _bytes_edit("MANIFEST.json", "garbage"),
    "manifest-deleted": _bytes_edit("MANIFEST.json", "delete"),
    "metrics-garbage": _bytes_edit("metrics.json", "garbage"),
    "log-garbage": _bytes_edit("log.jsonl", "garbage"),
    "checkpoints-no-manifest": _checkpoints("delete-manifests"),
    "checkpoints-bad-state": _checkpoints("corrupt-state"),
    "checkpoints-bad-model": _checkpoints("corrupt-model"),
}
COMMANDS = {
    "eval": lambda run, tmp: ["eval", str(run)],
    "eval-best-iwae": lambda run, tmp: [
        "eval",
        str(run),
        "--split",
        "val",
        "--estimator",
        "exact",
    ],  # fmt: skip
    "sample": lambda run, tmp: ["sample", str(run), "-n", "3", "--out", str(tmp / "s.npy")],
    "resume": lambda run, tmp: ["train", "--resume", str(run), "--steps", "8"],
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampered_run_directories(
    tampering: str, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command, make in COMMANDS.items():
        run = tmp_path / f"{command}" / "run"
        shutil.copytree(trained, run, symlinks=True)
        TAMPERING[tampering](run)
        argv = make(run, tmp_path)
        code, err = cli(argv, capsys)
        check([tampering, *argv], code, err)

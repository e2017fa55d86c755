"""The README's commands name only models, datasets and options that work on a fresh machine
with no network: every dataset a `--data` flag names outside the 'fetch first' note loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import tractable as tr
from tractable.cli import parser
from tractable.registry import MODELS

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    out = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        line = line.split("#")[0].strip()
        if "tractable " in line:
            words = shlex.split(line[line.index("tractable ") :])
            out.append(words[1:])
    assert out
    return out


def test_every_readme_command_parses() -> None:
    for argv in _commands():
        parser().parse_args(argv)


@pytest.mark.parametrize("argv", [a for a in _commands() if "--data" in a and a[0] == "train"])
def test_readme_datasets_are_on_this_machine(argv: list[str]) -> None:
    name = argv[argv.index("--data") + 1]
    if "--model" in argv:
        assert argv[argv.index("--model") + 1] in MODELS
    assert name in tr.data.names()
    assert tr.data.load(name, n=10).train.shape[0] == 10

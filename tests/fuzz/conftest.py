"""Report how many generated calls the fuzz suite made, and how they ended."""

from __future__ import annotations

import pytest

from .helpers import CALLS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    total = CALLS["returned"] + CALLS["refused"]
    if total:
        terminalreporter.write_line(
            f"fuzz: {total} generated calls, {CALLS['returned']} returned finite results, "
            f"{CALLS['refused']} refused with an error naming the argument"
        )

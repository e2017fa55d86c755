r"""Stopping a run on SIGINT or SIGTERM without losing its work.

While the trainer's loop runs in the main thread, the first SIGINT (Ctrl-C) or SIGTERM (a batch
scheduler's stop, ``kill``) only sets a flag: the loop finishes the step it is in, writes a
checkpoint and raises :class:`Interrupted`, whose ``exit_code`` is the shell's convention
(``128 + signal``: 130 for SIGINT, 143 for SIGTERM). A second signal stops at once, as a plain
``KeyboardInterrupt``; the atomic writes leave no half-written file either way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s
)


class Interrupted(KeyboardInterrupt):
    r"""Training stopped on a signal after writing a checkpoint (``checkpoint`` is its step,
    ``None`` when the run has no directory)."""

    def __init__(self, signum: int, step: int, run_dir: Path | None, saved: bool) -> None:
        name = signal.Signals(signum).name
        if run_dir is not None and saved:
            where = (
                f"; wrote a checkpoint at step {step}: resume with "
                f"'tractable train --resume {run_dir}'"
            )
        else:
            where = "; nothing was saved (no run directory)"
        super().__init__(f"interrupted by {name} at step {step}{where}")
        self.signum = signum
        self.step = step
        self.run_dir = run_dir
        self.exit_code = 128 + int(signum)


class StopFlag:
    r"""The signal received while the loop ran (``None`` until one arrives)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def deferred_stop(enabled: bool = True) -> Iterator[StopFlag]:
    r"""Turn the first SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag = StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum: int, frame: object) -> None:
        if flag.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        flag.signum = signum

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


__all__ = ["Interrupted", "StopFlag", "deferred_stop"]

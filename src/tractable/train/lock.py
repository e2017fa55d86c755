r"""One writer per run directory: an OS file lock held for the run's life.

:func:`run_lock` takes an exclusive ``flock`` on ``<run_dir>/.lock``; a second process that
tries to train into or resume the same directory is refused at once with :class:`RunLockedError`
instead of racing the first one. The kernel releases the lock when its holder exits, however it
exits (a kill, a crash, a power loss), so a stale lock file never blocks a later resume. The
lock is re-entrant within one process (the runs layer holds it around training and the final
evaluation; the trainer takes it again inside), and the lock file stays in place: deleting it
on release would let two processes lock two different files of the same name.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with run_lock(d):
    ...     with run_lock(d):  # the same process: re-entrant
    ...         pass
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; runs are then unprotected
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"

# resolved run directory -> (file descriptor, depth) of the locks this process holds
_held: dict[str, tuple[int, int]] = {}


class RunLockedError(RuntimeError):
    r"""Another process is training into (or resuming) the same run directory."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, create: bool = True) -> Iterator[Path]:
    r"""Hold the exclusive lock of ``run_dir`` (creating the directory when ``create``).

    When this call created the directory and it holds nothing but the lock file at release
    (the run was refused or failed before writing anything), the directory is removed again.
    """
    path = Path(run_dir)
    made = False
    if create and not path.exists():
        path.mkdir(parents=True)
        made = True
    key = str(path.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield path
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunLockedError(
                    f"run_dir: {str(path)!r} is in use by another tractable process (training "
                    "or resuming it); wait for it to finish or choose another directory"
                ) from None
        _held[key] = (fd, 1)
        try:
            yield path
        finally:
            del _held[key]
            if made and {p.name for p in path.iterdir()} <= {LOCK_FILE}:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
                    path.rmdir()
    finally:
        os.close(fd)  # releases the lock


__all__ = ["LOCK_FILE", "RunLockedError", "run_lock"]

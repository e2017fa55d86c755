r"""Fetch dataset files for users who are online: checksummed, atomic, never at import time.

Every file is streamed to a temporary file in the destination folder while its SHA-256 is
computed, flushed to disk, compared with the expected digest, and only then renamed into place
(``os.replace`` is atomic on one filesystem), so an interrupted or corrupted download never
leaves a file that looks complete. Archives are then unpacked with tarfile's ``"data"``
filter, which refuses absolute paths, links out of the folder and device files.

No SHA-256 is pinned for the public sources below (their publishers give none, or only MD5):
pass ``sha256=`` from a source you trust, or ``allow_unverified=True`` to accept whatever is
served; the digest of every file fetched is then written next to it (``NAME.sha256``) so that
later downloads can be pinned.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCES", "default_data_root", "download", "sha256_of"]


@dataclass(frozen=True)
class _Source:
    base_url: str
    files: tuple[str, ...]
    folder: str  # under data_root
    extract: bool = False
    strip: int = 0  # leading path components dropped when unpacking


SOURCES: dict[str, _Source] = {
    # MAF's archive of POWER, GAS, HEPMASS, MINIBOONE and BSDS300 (817 MB, 1.6 GB unpacked)
    "maf": _Source("https://zenodo.org/record/1161203/files/", ("data.tar.gz",), ".", True, 1),
    "mnist": _Source(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        tuple(
            f"{s}-idx{d}-ubyte.gz"
            for s, d in (
                ("train-images", 3),
                ("train-labels", 1),
                ("t10k-images", 3),
                ("t10k-labels", 1),
            )
        ),
        "mnist",
    ),
    "cifar10": _Source(
        "https://www.cs.toronto.edu/~kriz/", ("cifar-10-binary.tar.gz",), "cifar10", True, 0
    ),
}


def default_data_root() -> Path:
    r"""``$TRACTABLE_DATA`` if set, else ``~/.cache/tractable/data``."""
    env = os.environ.get("TRACTABLE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tractable" / "data"


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    r"""Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_digest(value: object, name: str) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or len(value) != 64
        or any(c not in "0123456789abcdef" for c in value.lower())
    ):
        raise ValueError(f"{name}: expected a 64-character hex SHA-256 digest, got {value!r}")
    return value.lower()


def _fetch(url: str, dest: Path, sha256: str | None, timeout: float, progress: bool) -> str:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"url: expected an http(s):// or file:// URL, got {url!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "tractable"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False)
            while block := resp.read(1 << 20):
                out.write(block)
                h.update(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise OSError(f"{url}: connection closed after {received} of {total} bytes")
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            raise ValueError(
                f"{url}: SHA-256 mismatch: expected {sha256}, got {digest} ({received} bytes); "
                f"the download was discarded and {dest} left untouched"
            )
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(dest.parent)
    return digest


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _extract(archive: Path, dest: Path, strip: int) -> None:
    with tarfile.open(archive) as tf:
        members = []
        for m in tf.getmembers():
            parts = Path(m.name).parts[strip:]
            if parts:
                m.name = str(Path(*parts))
                members.append(m)
        tf.extractall(dest, members=members, filter="data")


def download(
    name: str,
    data_root: str | os.PathLike | None = None,
    url: str | None = None,
    *,
    sha256: str | dict[str, str] | None = None,
    allow_unverified: bool = False,
    force: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    r"""Download dataset ``name`` into ``data_root`` (default :func:`default_data_root`).

    ``name`` is a known source (``"maf"``, ``"mnist"``, ``"cifar10"``; see ``SOURCES``) or,
    with ``url`` given, any file name: ``download("my.csv", root, url=..., sha256=...)``
    saves ``root/my.csv``. For a known source ``url`` replaces its base URL (a mirror folder
    holding the same file names). Archives are unpacked beside themselves and kept, so that a
    second call finds them and does nothing.

    Args:
        sha256: the expected digest (hex); for a source of several files, a dict from file
            name to digest. A mismatch raises ``ValueError`` and leaves nothing behind.
        allow_unverified: accept files without an expected digest (their digest is saved as
            ``NAME.sha256`` beside them).
        force: download again even when the file is already there.
        timeout: seconds without data before the connection is given up.

    Returns:
        the folder (known sources) or the file (``url`` downloads) written.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    if name in SOURCES:
        src = SOURCES[name]
        base = src.base_url if url is None else url.rstrip("/") + "/"
        urls = {f: base + f for f in src.files}
        folder = root / src.folder
    elif url is not None:
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"name: expected a plain file name, got {name!r}")
        urls, folder, src = {name: url}, root, None
    else:
        raise ValueError(
            f"name: unknown source {name!r}; expected one of {sorted(SOURCES)}, or pass url=..."
        )
    if isinstance(sha256, dict):
        unknown = set(sha256) - set(urls)
        if unknown:
            raise ValueError(f"sha256: no file(s) {sorted(unknown)} in {name!r} ({sorted(urls)})")
        digests = {f: _check_digest(sha256.get(f), f"sha256[{f!r}]") for f in urls}
    else:
        if sha256 is not None and len(urls) > 1:
            raise ValueError(f"sha256: {name!r} has {len(urls)} files; pass a dict file -> digest")
        digests = {f: _check_digest(sha256, "sha256") for f in urls}
    missing = [f for f, d in digests.items() if d is None]
    if missing and not allow_unverified:
        raise ValueError(
            f"sha256: no checksum known for {missing}; pass sha256=... from a source you trust, "
            "or allow_unverified=True to accept the files unchecked (their digests are then saved "
            "beside them)"
        )
    for fname, file_url in urls.items():
        dest = folder / fname
        expected = digests[fname]
        if dest.is_file() and not force and (expected is None or sha256_of(dest) == expected):
            continue
        digest = _fetch(file_url, dest, expected, timeout, progress)
        if expected is None:
            (folder / f"{fname}.sha256").write_text(f"{digest}  {fname}\n")
        if src is not None and src.extract:
            _extract(dest, folder, src.strip)
    return folder if src is not None else folder / name

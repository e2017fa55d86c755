"""Downloads against a local HTTP server on 127.0.0.1: checksums, atomic writes, archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import threading
import urllib.error
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import tractable as tr


class _Quiet(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        _Quiet.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    _Quiet.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    # a failsafe: the server stops itself after 30 s even if the test hangs
    timer = threading.Timer(30.0, httpd.shutdown)
    timer.daemon = True
    timer.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        timer.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_with_matching_checksum(server, tmp_path: Path) -> None:
    url, served = server
    payload = np.random.default_rng(0).bytes(300_000)
    (served / "blob.bin").write_bytes(payload)
    root = tmp_path / "root"
    out = tr.data.download("blob.bin", root, url=f"{url}/blob.bin", sha256=_sha(payload),
                           progress=False)  # fmt: skip
    assert out == root / "blob.bin" and out.read_bytes() == payload
    assert _leftovers(root) == [] and tr.data.sha256_of(out) == _sha(payload)
    # already there with the right digest: no second request
    n = len(_Quiet.requests)
    tr.data.download("blob.bin", root, url=f"{url}/blob.bin", sha256=_sha(payload), progress=False)
    assert len(_Quiet.requests) == n
    tr.data.download(
        "blob.bin", root, url=f"{url}/blob.bin", sha256=_sha(payload), force=True, progress=False
    )
    assert len(_Quiet.requests) == n + 1


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path: Path) -> None:
    url, served = server
    (served / "blob.bin").write_bytes(b"the real content")
    root = tmp_path / "root"
    wrong = _sha(b"something else")
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        tr.data.download("blob.bin", root, url=f"{url}/blob.bin", sha256=wrong, progress=False)
    assert _sha(b"the real content") in str(info.value)
    assert not (root / "blob.bin").exists() and _leftovers(root) == []
    # an existing good file is not replaced by a bad download
    (root / "blob.bin").write_bytes(b"old")
    with pytest.raises(ValueError, match="mismatch"):
        tr.data.download("blob.bin", root, url=f"{url}/blob.bin", sha256=wrong, force=True,
                         progress=False)  # fmt: skip
    assert (root / "blob.bin").read_bytes() == b"old"


def test_unverified_downloads_need_consent(server, tmp_path: Path) -> None:
    url, served = server
    (served / "blob.bin").write_bytes(b"abc")
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="allow_unverified"):
        tr.data.download("blob.bin", root, url=f"{url}/blob.bin", progress=False)
    assert _Quiet.requests == []  # refused before any request
    out = tr.data.download("blob.bin", root, url=f"{url}/blob.bin", allow_unverified=True,
                           progress=False)  # fmt: skip
    assert out.read_bytes() == b"abc"
    assert (root / "blob.bin.sha256").read_text().split()[0] == _sha(b"abc")


def test_http_errors_and_bad_arguments(server, tmp_path: Path) -> None:
    url, _ = server
    root = tmp_path / "root"
    with pytest.raises(urllib.error.HTTPError):
        tr.data.download("nope.bin", root, url=f"{url}/nope.bin", sha256="0" * 64, progress=False)
    assert not root.exists() or _leftovers(root) == []
    with pytest.raises(ValueError, match="url"):
        tr.data.download("x.bin", root, url="ftp://127.0.0.1/x.bin", sha256="0" * 64)
    with pytest.raises(ValueError, match="64-character"):
        tr.data.download("x.bin", root, url=f"{url}/x.bin", sha256="abc")
    with pytest.raises(ValueError, match="unknown source"):
        tr.data.download("nonsense", root)
    with pytest.raises(ValueError, match="plain file name"):
        tr.data.download("../x.bin", root, url=f"{url}/x.bin", sha256="0" * 64)
    with pytest.raises(ValueError, match="dict"):
        tr.data.download("mnist", root, url=url, sha256="0" * 64)


def test_maf_archive_is_unpacked_into_data_root(server, tmp_path: Path) -> None:
    url, served = server
    raw = np.random.default_rng(0).normal(size=(50, 4))
    buf = io.BytesIO()
    np.save(buf, raw)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/miniboone/data.npy")
        info.size = len(buf.getvalue())
        tf.addfile(info, io.BytesIO(buf.getvalue()))
    (served / "data.tar.gz").write_bytes(archive.getvalue())
    root = tmp_path / "root"
    out = tr.data.download("maf", root, url=url, sha256=_sha(archive.getvalue()), progress=False)
    assert out == root and (root / "miniboone" / "data.npy").is_file()
    ds = tr.data.load("miniboone", data_root=root)
    assert ds.sizes() == {"train": 41, "val": 4, "test": 5}


def test_archives_cannot_escape_the_folder(server, tmp_path: Path) -> None:
    url, served = server
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/../../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    (served / "data.tar.gz").write_bytes(archive.getvalue())
    root = tmp_path / "root"
    with pytest.raises(tarfile.TarError):
        tr.data.download("maf", root, url=url, sha256=_sha(archive.getvalue()), progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_mnist_files_from_a_mirror(server, tmp_path: Path) -> None:
    url, served = server
    rng = np.random.default_rng(1)
    digests = {}
    for stem, shape in (("train-images-idx3-ubyte", (12, 28, 28)), ("train-labels-idx1-ubyte",
                        (12,)), ("t10k-images-idx3-ubyte", (3, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (3,))):  # fmt: skip
        arr = rng.integers(0, 10 if len(shape) == 1 else 256, shape).astype(np.uint8)
        header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        data = gzip.compress(header + arr.tobytes())
        (served / f"{stem}.gz").write_bytes(data)
        digests[f"{stem}.gz"] = _sha(data)
    root = tmp_path / "root"
    out = tr.data.download("mnist", root, url=url + "/", sha256=digests, progress=False)
    assert out == root / "mnist"
    ds = tr.data.load("mnist", data_root=root)
    assert ds.sizes() == {"train": 10, "val": 2, "test": 3}
    with pytest.raises(ValueError, match="no file"):
        tr.data.download("mnist", root, url=url, sha256={"other.gz": "0" * 64})


def test_default_data_root(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACTABLE_DATA", str(tmp_path))
    assert tr.data.default_data_root() == tmp_path
    monkeypatch.delenv("TRACTABLE_DATA")
    assert tr.data.default_data_root().parts[-3:] == (".cache", "tractable", "data")

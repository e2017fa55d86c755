r"""Pickle-free, crash-safe files: atomic writes, checksummed manifests, safetensors + JSON.

A write goes to a temporary file in the destination's own directory, is flushed and
``fsync``-ed, renamed over the destination with ``os.replace`` (atomic on POSIX), and the
directory is ``fsync``-ed so the rename itself survives a power loss. A reader therefore sees the
old file or the new one, never a mix.

Nested Python state (optimiser ``state_dict``, RNG states, counters) is split by
:func:`encode_state` into a flat ``{name: Tensor}`` dict for safetensors and a JSON tree in
which each tensor is replaced by ``{"__tensor__": name}``; :func:`decode_state` inverts it.
Nothing here ever unpickles, except :func:`load_state` when the caller passes
``trust_pickle=True`` (see section 1 of the project's reliability notes: CVE-2025-32434 showed
that even ``weights_only=True`` is only a second line of defence).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import Tensor, nn

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
_CHUNK = 1 << 20

# Test hook, never set by the library: called as ``_fault_hook(path, bytes_written)`` in the
# middle of writing a temporary file, so a test can kill the process at the worst moment.
_fault_hook: Callable[[Path, int], None] | None = None


class CheckpointError(RuntimeError):
    r"""A file or checkpoint is missing, incomplete, corrupted or unsafe to load."""


# -- atomic files ------------------------------------------------------------------------------
def fsync_dir(path: str | os.PathLike) -> None:
    r"""``fsync`` a directory so that renames and new entries in it are durable."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # platforms that cannot open directories (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync_dir: bool = True) -> str:
    r"""Write ``data`` to ``path`` atomically and durably; returns its SHA-256 hex digest.

    The file gets the mode of a newly created file (``0o666`` less the umask), as ``open``
    would give it. An ``OSError`` (no permission, a full disk, a file-size limit) names
    ``path`` and leaves no temporary file behind. The file's contents are always synced;
    ``sync_dir=False`` leaves the sync of its directory entry to the caller, who writes several
    files into one directory and syncs it once (:func:`fsync_dir`) before anything relies on
    them.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~_umask())
            view, written = memoryview(data), 0
            while written < len(view):
                # Unbuffered writes: each chunk reaches the kernel before the next.
                written += os.write(fd, view[written : written + _CHUNK])
                if _fault_hook is not None:
                    _fault_hook(path, written)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def atomic_write_json(path: str | os.PathLike, obj: Any, sync_dir: bool = True) -> str:
    r"""Write ``obj`` as strict JSON (no NaN/Infinity literals) atomically; returns its SHA-256.
    ``sync_dir`` as for :func:`atomic_write_bytes`."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), sync_dir=sync_dir)


def read_json(path: str | os.PathLike) -> Any:
    r"""Read a JSON file, with an error naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"path: {str(path)!r} is not valid JSON ({err})") from err


# -- tensors -----------------------------------------------------------------------------------
def check_finite_tensors(tensors: Mapping[str, Tensor], what: str, action: str = "write") -> None:
    r"""Raise :class:`ValueError` naming the first floating tensor holding NaN or infinity."""
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{what}: refusing to {action} non-finite values; {name!r} (shape "
                f"{tuple(t.shape)}) has {n_bad} NaN/infinite entries"
            )


def tensors_to_bytes(
    tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None
) -> bytes:
    r"""Serialise tensors with safetensors, after copying them to contiguous CPU memory."""
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    return _st_save(flat, metadata=metadata)


def bytes_to_tensors(data: bytes, source: str) -> dict[str, Tensor]:
    try:
        return _st_load(data)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{source}: not a valid safetensors file ({err})") from err


def model_state(model: nn.Module) -> dict[str, Tensor]:
    r"""The model's ``state_dict`` (parameters and persistent buffers) as detached tensors."""
    return {k: v.detach() for k, v in model.state_dict().items()}


# -- nested state <-> (tensors, JSON) ----------------------------------------------------------
def encode_state(obj: Any, tensors: dict[str, Tensor], prefix: str = "s") -> Any:
    r"""Split a nested state into JSON and ``tensors`` (filled in place).

    Example:
        >>> import torch
        >>> tensors = {}
        >>> tree = encode_state({"step": 3, "buf": torch.ones(2), 1: (0.5, float("inf"))}, tensors)
        >>> tree["__dict__"][1], sorted(tensors)
        (['buf', {'__tensor__': 's.buf'}], ['s.buf'])
        >>> decode_state(tree, tensors)[1]
        (0.5, inf)
    """
    if isinstance(obj, Tensor):
        if prefix in tensors:  # e.g. a key "a.b" next to a nested {"a": {"b": ...}}
            raise ValueError(f"state: two tensors would be stored under the name {prefix!r}")
        tensors[prefix] = obj.detach()
        return {"__tensor__": prefix}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, (list, tuple)):
        items = [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, Mapping):
        items = []
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"state: keys must be str or int, got {type(key).__name__}")
            items.append([key, encode_state(value, tensors, f"{prefix}.{key}")])
        return {"__dict__": items}
    raise TypeError(f"state: cannot store a {type(obj).__name__} without pickle ({obj!r})")


def decode_state(tree: Any, tensors: Mapping[str, Tensor]) -> Any:
    r"""Inverse of :func:`encode_state`."""
    if isinstance(tree, list):
        return [decode_state(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree:
        name = tree["__tensor__"]
        if name not in tensors:
            raise CheckpointError(f"state: tensor {name!r} is missing from the tensor file")
        return tensors[name]
    if "__float__" in tree:
        return float(tree["__float__"])
    if "__tuple__" in tree:
        return tuple(decode_state(v, tensors) for v in tree["__tuple__"])
    if "__dict__" in tree:
        return {key: decode_state(value, tensors) for key, value in tree["__dict__"]}
    raise CheckpointError(f"state: unrecognised JSON node with keys {sorted(tree)}")


# -- manifests ---------------------------------------------------------------------------------
MANIFEST = "MANIFEST.json"


def write_manifest(directory: Path, files: Mapping[str, str], info: dict[str, Any]) -> None:
    r"""Write the commit marker of a file set: names, sizes, SHA-256 digests and ``info``."""
    entries = {
        name: {"sha256": digest, "bytes": (directory / name).stat().st_size}
        for name, digest in files.items()
    }
    atomic_write_json(
        directory / MANIFEST, {"format": "tractable-files/1", **info, "files": entries}
    )


def read_verified(directory: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    r"""Read a committed file set, checking every size and SHA-256 against its manifest.

    Returns the manifest and the verified bytes of each file; raises :class:`CheckpointError`
    when the manifest is missing (an interrupted write) or a file does not match.
    """
    if not (directory / MANIFEST).is_file():
        raise CheckpointError(f"{str(directory)!r}: no {MANIFEST}; the write was never completed")
    manifest = read_json(directory / MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{str(directory)!r}: malformed {MANIFEST}")
    blobs = {}
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{str(directory)!r}: {name} listed in the manifest is missing")
        data = path.read_bytes()
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CheckpointError(
                f"{str(directory)!r}: {name} does not match its checksum in {MANIFEST} "
                "(corrupted or modified after the checkpoint was written)"
            )
        blobs[name] = data
    return manifest, blobs


# -- the run's own weights --------------------------------------------------------------------
def inside(path: Path, root: Path, what: str) -> Path:
    r"""``path`` itself, refusing a symbolic link (or a path) that leads outside ``root``."""
    real, base = path.resolve(), root.resolve()
    if real != base and base not in real.parents:
        raise CheckpointError(
            f"{what}: {str(path)!r} points outside the run directory (to {str(real)!r}); "
            "refusing to load it"
        )
    return path


def write_weights(
    run_dir: Path, name: str, tensors: Mapping[str, Tensor], metadata: dict[str, str]
) -> str:
    r"""Write ``<name>.safetensors`` in ``run_dir`` atomically and record its size and SHA-256
    in the run's ``MANIFEST.json`` (checked by :func:`load_model`); returns the digest."""
    blob = tensors_to_bytes(tensors, metadata)
    digest = atomic_write_bytes(run_dir / f"{name}.safetensors", blob)
    _record(run_dir, f"{name}.safetensors", {"sha256": digest, "bytes": len(blob)})
    return digest


def forget_weights(run_dir: Path, name: str) -> None:
    r"""Delete ``<name>.safetensors`` and its entry in the run's manifest."""
    path = run_dir / f"{name}.safetensors"
    if path.exists() or path.is_symlink():
        path.unlink()
    _record(run_dir, f"{name}.safetensors", None)


def _record(run_dir: Path, name: str, entry: dict[str, Any] | None) -> None:
    manifest = _run_manifest(run_dir) or {"format": "tractable-files/1", "kind": "run"}
    files = dict(manifest.get("files", {}))
    if entry is None and name not in files:
        return
    if entry is None:
        del files[name]
    else:
        files[name] = entry
    atomic_write_json(run_dir / MANIFEST, {**manifest, "files": files})


def _run_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    manifest = read_json(inside(path, run_dir, "manifest"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{str(path)!r}: malformed manifest")
    return manifest


def read_weights(run_dir: str | os.PathLike, name: str) -> dict[str, Tensor]:
    r"""Load ``<name>.safetensors`` of a run, verified against the run's ``MANIFEST.json``.

    A file that differs from its recorded size or SHA-256, a symbolic link leading outside the
    run directory, or a file the manifest does not list (when there is a manifest) is refused
    with :class:`CheckpointError`. Runs written before manifests existed load unverified.
    """
    run_dir = Path(run_dir)
    path = inside(run_dir / f"{name}.safetensors", run_dir, f"{name}.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    data = path.read_bytes()
    manifest = _run_manifest(run_dir)
    if manifest is not None:
        entry = manifest["files"].get(path.name)
        if not isinstance(entry, dict):
            raise CheckpointError(
                f"{str(path)!r}: not listed in the run's {MANIFEST}; refusing weights the run "
                "did not write"
            )
        if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get(
            "sha256"
        ):
            raise CheckpointError(
                f"{str(path)!r}: does not match its checksum in {MANIFEST} (modified after the "
                "run wrote it, or a write was interrupted; 'tractable train --resume' rewrites "
                "it from the last checkpoint)"
            )
    return bytes_to_tensors(data, str(path))


def check_matches(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    r"""Raise one :class:`CheckpointError` line when ``state`` does not fit ``model``: the
    number of missing, unexpected and mis-shaped tensors, and the first of each."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k!r} is {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape (first: {shapes[0]})")
    if missing:
        parts.append(f"{len(missing)} missing (first: {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]!r})")
    raise CheckpointError(
        f"{source}: the weights do not match the model described in config.json: "
        + "; ".join(parts)
    )


# -- public loading ----------------------------------------------------------------------------
def _looks_pickled(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    # A safetensors file starts with its header length (u64, little endian) and then "{"; the
    # length's low byte may be 0x80, so this signature is checked before the pickle one.
    header_len = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    if head[8:9] == b"{" and 0 < header_len <= path.stat().st_size - 8:
        return False
    # Protocol-2+ pickles start with 0x80 and the protocol number (2..5); torch.save's
    # default zip format with "PK\x03\x04".
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or (
        head[:4] == b"PK\x03\x04"
    )


def load_state(path: str | os.PathLike, *, trust_pickle: bool = False) -> Any:
    r"""Load a ``.safetensors`` file (a dict of tensors) or a ``.json`` file, never unpickling
    unless told to.

    Pickle files (``.pt``, ``.pth``, ``.pkl``, ``.pickle``, ``.ckpt``, ``.bin``, or any file
    whose first bytes are a pickle or a ``torch.save`` zip) can run arbitrary code when loaded,
    so they are refused. With ``trust_pickle=True`` they are loaded with
    ``torch.load(weights_only=True)`` first (tensors and containers only) and, only if that
    fails, with ``weights_only=False``, which runs whatever code the file contains: pass it only
    for files you made yourself or fully trust.

    Example:
        >>> import os, tempfile, torch
        >>> d = tempfile.mkdtemp()
        >>> torch.save({"w": torch.ones(1)}, os.path.join(d, "old.pt"))
        >>> load_state(os.path.join(d, "old.pt"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        tractable.train.serialization.CheckpointError: path: refusing to unpickle ...
        >>> load_state(os.path.join(d, "old.pt"), trust_pickle=True)["w"]
        tensor([1.])
    """
    path = Path(path)
    if not isinstance(trust_pickle, bool):
        raise TypeError(f"trust_pickle: expected a bool, got {type(trust_pickle).__name__}")
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_json(path)
    if suffix in PICKLE_SUFFIXES or _looks_pickled(path):
        if not trust_pickle:
            raise CheckpointError(
                f"path: refusing to unpickle {str(path)!r}: pickle files can execute arbitrary "
                "code when loaded (even torch.load(weights_only=True) had such a flaw, "
                "CVE-2025-32434). Convert it to .safetensors, or pass trust_pickle=True if you "
                "made the file yourself or fully trust its source."
            )
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            warnings.warn(
                f"{path}: a weights-only load failed ({type(err).__name__}); loading with "
                "weights_only=False because trust_pickle=True. This runs code from the file.",
                stacklevel=2,
            )
            return torch.load(path, map_location="cpu", weights_only=False)
    if suffix != ".safetensors":
        raise ValueError(
            f"path: expected a .safetensors or .json file, got {path.name!r}; other formats are "
            "not loaded"
        )
    return bytes_to_tensors(path.read_bytes(), str(path))


# -- model folders -----------------------------------------------------------------------------
def save_model(
    run_dir: str | os.PathLike, model: nn.Module, config: Mapping[str, Any], name: str = "model"
) -> Path:
    r"""Save ``model``'s weights as ``<name>.safetensors`` and ``config`` under the ``"model"``
    key of ``config.json`` in ``run_dir`` (other keys of an existing ``config.json`` are kept).

    ``config`` is whatever JSON dict the caller's ``build_fn`` needs to rebuild the model;
    non-finite weights are refused. Returns the path of the weights file.

    Example:
        >>> import tempfile, torch
        >>> d = tempfile.mkdtemp()
        >>> _ = save_model(d, torch.nn.Linear(2, 1), {"in": 2, "out": 1})
        >>> m = load_model(d, lambda c: torch.nn.Linear(c["in"], c["out"]))
        >>> m.weight.shape
        torch.Size([1, 2])
    """
    run_dir = Path(run_dir)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a JSON-serialisable dict, got {type(config).__name__}")
    state = model_state(model)
    check_finite_tensors(state, "model")
    run_dir.mkdir(parents=True, exist_ok=True)
    full = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    full["model"] = dict(config)
    try:
        atomic_write_json(run_dir / "config.json", full)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config: expected a JSON-serialisable dict ({err})") from err
    write_weights(run_dir, name, state, {"format": "tractable-model/1"})
    return run_dir / f"{name}.safetensors"


def load_model(
    run_dir: str | os.PathLike,
    build_fn: Callable[[dict[str, Any]], nn.Module],
    *,
    weights: str = "model",
    strict: bool = True,
) -> nn.Module:
    r"""Rebuild a model with ``build_fn(config["model"])`` and load ``<weights>.safetensors``.

    ``weights`` is ``"model"`` (the final weights of a run) or ``"best"`` (best validation).
    The model is returned in ``eval()`` mode. Shapes and names must match (``strict``), and
    non-finite weights are refused.
    """
    run_dir = Path(run_dir)
    if weights not in ("model", "best"):
        raise ValueError(f"weights: expected 'model' or 'best', got {weights!r}")
    config = read_json(inside(run_dir / "config.json", run_dir, "config.json"))
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{str(run_dir)!r}: config.json has no 'model' entry to rebuild from")
    model = build_fn(config["model"])
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_fn: expected it to return an nn.Module, got {type(model).__name__}")
    state = read_weights(run_dir, weights)
    check_finite_tensors(state, f"{weights}.safetensors", action="load")
    if strict:
        check_matches(model, state, str(run_dir / f"{weights}.safetensors"))
    model.load_state_dict(state, strict=strict)
    return model.eval()


__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_json",
    "decode_state",
    "encode_state",
    "load_model",
    "load_state",
    "read_json",
    "read_weights",
    "save_model",
    "write_weights",
]

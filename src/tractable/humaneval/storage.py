r"""The SQLite store of a human evaluation: the image pool, rater sessions with their item plans,
and the answers.

Every connection uses WAL and ``synchronous=FULL``; an answer is committed in its own
transaction before the server shows the next item, so killing the server loses nothing stored.
Images are served under per-session random tokens, so neither a URL nor the page says which
image is real. Answers are refused (:class:`RefusedError`, with an HTTP status and a message) when
the CSRF token is not the session's, the item is not the session's next one (a replay or a
forged position) or the choice does not fit the task.
"""

from __future__ import annotations

import io
import json
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, png BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, csrf TEXT NOT NULL, rater TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    session TEXT NOT NULL REFERENCES sessions(id), pos INTEGER NOT NULL, task TEXT NOT NULL,
    left_image INTEGER NOT NULL REFERENCES images(id), right_image INTEGER REFERENCES images(id),
    left_token TEXT NOT NULL UNIQUE, right_token TEXT UNIQUE, PRIMARY KEY (session, pos));
CREATE TABLE IF NOT EXISTS answers (
    session TEXT NOT NULL, pos INTEGER NOT NULL, choice TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (session, pos), FOREIGN KEY (session, pos) REFERENCES items(session, pos));
"""
CHOICES = {"turing": ("real", "generated"), "ab": ("left", "right"), "check": ("left", "right")}
REAL, NOISE = "real", "noise"


class RefusedError(Exception):
    r"""An answer or request the store will not accept: ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def connect(db: str | Path) -> Iterator[sqlite3.Connection]:
    r"""A connection in WAL mode with full sync and a busy timeout, closed on exit."""
    con = sqlite3.connect(str(db), timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        yield con
    finally:
        con.close()


def to_png(image: np.ndarray) -> bytes:
    r"""One image of intensities in :math:`[0, 1]`, ``(C, H, W)`` with ``C`` 1 or 3, as PNG."""
    from PIL import Image

    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"image: expected shape (1|3, H, W), got {tuple(arr.shape)}")
    arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    pic = (
        Image.fromarray(arr[0], "L")
        if arr.shape[0] == 1
        else Image.fromarray(arr.transpose(1, 2, 0))
    )
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def create_pool(
    db: str | Path,
    generated: dict[str, np.ndarray],
    real: np.ndarray,
    *,
    noise: int = 8,
    turing: int = 4,
    pairs: int = 4,
    checks: int = 2,
    seed: int = 0,
) -> None:
    r"""Write a new evaluation to ``db``: per model its images ``(N, C, H, W)`` in ``[0, 1]``,
    real images of the same shape, ``noise`` uniform-noise images for the attention checks,
    and the plan sizes: ``turing`` generated images per model (and as many real ones in all),
    ``pairs`` comparisons per pair of models, ``checks`` real-vs-noise pairs per session."""
    if Path(db).exists():
        raise FileExistsError(f"db: {str(db)!r} exists already; give a new file")
    if not generated:
        raise ValueError("generated: expected images of at least one model")
    if REAL in generated or NOISE in generated:
        raise ValueError(f"generated: {REAL!r} and {NOISE!r} are reserved names")
    shape = np.asarray(real).shape[1:]
    for name, images in generated.items():
        if np.asarray(images).shape[1:] != shape or len(images) == 0:
            raise ValueError(
                f"generated[{name!r}]: expected images of shape (N, {', '.join(map(str, shape))}),"
                f" got {tuple(np.asarray(images).shape)}"
            )
    for name, value in (("turing", turing), ("pairs", pairs), ("checks", checks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    if checks and noise < 1:
        raise ValueError(f"noise: attention checks need noise images, got noise={noise}")
    rng = np.random.default_rng(seed)
    rows = [(name, "generated", to_png(x)) for name, xs in generated.items() for x in xs]
    rows += [(REAL, REAL, to_png(x)) for x in real]
    rows += [(NOISE, NOISE, to_png(rng.uniform(size=shape))) for _ in range(noise)]
    settings = {"models": list(generated), "turing": turing, "pairs": pairs, "checks": checks}
    with connect(db) as con:
        con.executescript(SCHEMA)
        con.execute("BEGIN")
        con.executemany("INSERT INTO images (source, kind, png) VALUES (?, ?, ?)", rows)
        con.execute("INSERT INTO meta VALUES ('settings', ?)", (json.dumps(settings),))
        con.execute("COMMIT")


def settings(db: str | Path) -> dict[str, Any]:
    r"""The evaluation's models and plan sizes (``FileNotFoundError`` when ``db`` holds none)."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"db: {str(db)!r} does not exist")
    try:
        with connect(db) as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"db: {str(db)!r} is not a human-evaluation database ({err})") from None
    if row is None:
        raise ValueError(f"db: {str(db)!r} is not a human-evaluation database")
    return json.loads(row[0])


def _plan(con: sqlite3.Connection, rng: random.Random) -> list[tuple[str, int, int | None]]:
    # Block 1, the Turing test: `turing` images per model and as many real images in all, so
    # that half the answers are about real images. Block 2: each pair of models `pairs` times,
    # half with each model on the left, with the real-vs-noise checks shuffled in.
    conf = json.loads(con.execute("SELECT value FROM meta WHERE key='settings'").fetchone()[0])
    ids: dict[str, list[int]] = {}
    for image, source in con.execute("SELECT id, source FROM images ORDER BY id"):
        ids.setdefault(source, []).append(image)

    def draw(source: str, k: int) -> list[int]:
        pool = ids[source]
        picks = rng.sample(pool, min(k, len(pool)))
        return picks + [rng.choice(pool) for _ in range(k - len(picks))]

    models = conf["models"]
    turing = [(m, x) for m in models for x in draw(m, conf["turing"])]
    turing += [(REAL, x) for x in draw(REAL, conf["turing"] * len(models))]
    rng.shuffle(turing)
    block2: list[tuple[str, int, int | None]] = []
    for a, b in combinations(models, 2):
        left_a = [k % 2 == 0 for k in range(conf["pairs"])]
        rng.shuffle(left_a)
        for flag, xa, xb in zip(
            left_a, draw(a, conf["pairs"]), draw(b, conf["pairs"]), strict=True
        ):
            block2.append(("ab", xa, xb) if flag else ("ab", xb, xa))
    for k, (r, n) in enumerate(
        zip(draw(REAL, conf["checks"]), draw(NOISE, conf["checks"]), strict=True)
    ):
        block2.append(("check", r, n) if k % 2 == 0 else ("check", n, r))
    rng.shuffle(block2)
    return [("turing", x, None) for _, x in turing] + block2


def new_session(db: str | Path, rater: str = "") -> tuple[str, str]:
    r"""A new rater session with its own randomised plan: ``(session id, CSRF token)``."""
    session, csrf = secrets.token_urlsafe(18), secrets.token_urlsafe(24)
    rng = random.Random(secrets.randbits(64))
    with connect(db) as con:
        con.execute("BEGIN IMMEDIATE")
        plan = _plan(con, rng)
        con.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?)", (session, csrf, rater[:80], time.time())
        )
        con.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (session, pos, task, left, right, secrets.token_urlsafe(18),
                 None if right is None else secrets.token_urlsafe(18))
                for pos, (task, left, right) in enumerate(plan)
            ],
        )  # fmt: skip
        con.execute("COMMIT")
    return session, csrf


def progress(db: str | Path, session: str) -> dict[str, Any]:
    r"""What a rater sees next: ``{"csrf", "answered", "total", "item"}`` where ``item`` is
    ``None`` when the session is complete, else ``{"pos", "task", "tokens"}`` (image tokens
    only: nothing that says which image is real). ``RefusedError`` for an unknown session."""
    with connect(db) as con:
        row = con.execute("SELECT csrf FROM sessions WHERE id = ?", (session,)).fetchone()
        if row is None:
            raise RefusedError(403, "unknown rater session: start a new one from the first page")
        total = con.execute("SELECT COUNT(*) FROM items WHERE session = ?", (session,)).fetchone()
        answered = con.execute(
            "SELECT COUNT(*) FROM answers WHERE session = ?", (session,)
        ).fetchone()
        nxt = con.execute(
            "SELECT pos, task, left_token, right_token FROM items WHERE session = ? AND pos NOT IN"
            " (SELECT pos FROM answers WHERE session = ?) ORDER BY pos LIMIT 1",
            (session, session),
        ).fetchone()
    item = None
    if nxt is not None:
        tokens = [t for t in nxt[2:] if t is not None]
        item = {"pos": nxt[0], "task": "turing" if nxt[1] == "turing" else "ab", "tokens": tokens}
    return {"csrf": row[0], "answered": answered[0], "total": total[0], "item": item}


def store_answer(db: str | Path, session: str, csrf: str, pos: Any, choice: str) -> None:
    r"""Store one answer, committed before returning; :class:`RefusedError` with a clear message
    for a forged token, a replayed or out-of-order item, or a choice the task has not."""
    try:
        pos = int(pos)
    except (TypeError, ValueError):
        raise RefusedError(400, f"item: expected an item number, got {pos!r}") from None
    with connect(db) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("SELECT csrf FROM sessions WHERE id = ?", (session,)).fetchone()
            if row is None:
                raise RefusedError(
                    403, "answer refused: no rater session (start one on the first page)"
                )
            if not secrets.compare_digest(str(csrf), row[0]):
                raise RefusedError(403, "answer refused: the CSRF token is not this session's")
            item = con.execute(
                "SELECT task FROM items WHERE session = ? AND pos = ?", (session, pos)
            ).fetchone()
            if item is None:
                raise RefusedError(400, f"answer refused: item {pos} is not in this session")
            if con.execute(
                "SELECT 1 FROM answers WHERE session = ? AND pos = ?", (session, pos)
            ).fetchone():
                raise RefusedError(
                    409, f"answer refused: item {pos} is already answered (a replay)"
                )
            first = con.execute(
                "SELECT MIN(pos) FROM items WHERE session = ? AND pos NOT IN "
                "(SELECT pos FROM answers WHERE session = ?)",
                (session, session),
            ).fetchone()[0]
            if pos != first:
                raise RefusedError(
                    409, f"answer refused: item {pos} is not the next item ({first})"
                )
            if choice not in CHOICES[item[0]]:
                raise RefusedError(400, f"answer refused: {choice!r} is not an answer to this item")
            con.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?)", (session, pos, choice, time.time())
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def image(db: str | Path, session: str, token: str) -> bytes:
    r"""The PNG behind an image token of ``session`` (``RefusedError`` for any other token)."""
    with connect(db) as con:
        row = con.execute(
            "SELECT png FROM items JOIN images ON images.id = CASE WHEN items.left_token = ? "
            "THEN items.left_image ELSE items.right_image END "
            "WHERE items.session = ? AND (items.left_token = ? OR items.right_token = ?)",
            (token, session, token, token),
        ).fetchone()
    if row is None:
        raise RefusedError(404, "no such image in this session")
    return bytes(row[0])


def answered(db: str | Path) -> list[dict[str, Any]]:
    r"""Every stored answer with what it was about: ``session``, ``pos``, ``task``, ``choice``
    and the ``left``/``right`` image sources (``"real"``, ``"noise"`` or a model's name)."""
    with connect(db) as con:
        rows = con.execute(
            "SELECT a.session, a.pos, i.task, a.choice, l.source, r.source FROM answers a "
            "JOIN items i ON i.session = a.session AND i.pos = a.pos "
            "JOIN images l ON l.id = i.left_image LEFT JOIN images r ON r.id = i.right_image "
            "ORDER BY a.session, a.pos"
        ).fetchall()
    keys = ("session", "pos", "task", "choice", "left", "right")
    return [dict(zip(keys, row, strict=True)) for row in rows]

"""The web application in-process (Starlette's TestClient): the plan is balanced, nothing on the
page says which image is real, and forged, replayed or out-of-session answers are refused."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tractable.humaneval import answered, new_session, progress, results, store_answer
from tractable.humaneval.app import make_app

from .conftest import make_pool


def _state(page: str) -> dict[str, object]:
    return {
        "csrf": re.search(r"name=csrf value='([^']+)'", page).group(1),
        "item": int(re.search(r"name=item value='(\d+)'", page).group(1)),
        "images": re.findall(r"src='(/img/[^']+)'", page),
    }


def _client(db: Path) -> TestClient:
    client = TestClient(make_app(db), base_url="http://127.0.0.1:8000")
    assert client.post("/start", data={"rater": "t"}, follow_redirects=False).status_code == 303
    return client


def test_plan_is_balanced(tmp_path: Path) -> None:
    db = make_pool(tmp_path / "he.sqlite", turing=3, pairs=4, checks=2)
    session, _ = new_session(db)
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT i.task, l.source, r.source FROM items i JOIN images l ON l.id = i.left_image "
            "LEFT JOIN images r ON r.id = i.right_image WHERE session = ? ORDER BY pos", (session,)
        ).fetchall()  # fmt: skip
    tasks = [r[0] for r in rows]
    assert tasks[:12] == ["turing"] * 12  # part 1 first: 3 per model and 6 real
    assert Counter(r[1] for r in rows if r[0] == "turing") == {"alpha": 3, "beta": 3, "real": 6}
    ab = [r[1:] for r in rows if r[0] == "ab"]
    assert Counter(ab) == {("alpha", "beta"): 2, ("beta", "alpha"): 2}
    checks = [r[1:] for r in rows if r[0] == "check"]
    assert sorted(checks) == [("noise", "real"), ("real", "noise")]


def test_page_and_urls_never_say_which_image_is_real(pool: Path) -> None:
    # Every Turing page (real or generated image) and every side-by-side page (models or an
    # attention check, either order) is the same text once the random tokens, the item number
    # and the progress are blanked out: the page carries no trace of the images' sources.
    client = _client(pool)
    seen, shapes = set(), set()
    for _ in range(progress_total(client)):
        page = client.get("/rate").text
        state = _state(page)
        blank = page.replace(state["csrf"], "CSRF")
        for url in state["images"]:
            blank = blank.replace(url, "IMG")
        shapes.add(re.sub(r"\d+", "N", blank))
        for url in state["images"]:
            assert url not in seen  # a fresh token per item: repeats of an image are not linkable
            seen.add(url)
            response = client.get(url)
            assert response.headers["content-type"] == "image/png"
            assert set(response.headers) <= {"content-type", "content-length", "cache-control",
                "content-security-policy", "x-content-type-options", "referrer-policy"}  # fmt: skip
        choice = "real" if "choice-real" in page else "left"
        client.post(
            "/answer", data={"csrf": state["csrf"], "item": state["item"], "choice": choice}
        )
    assert len(shapes) == 2  # one Turing page and one side-by-side page
    assert "All 12 items answered" in client.get("/rate").text


def progress_total(client: TestClient) -> int:
    return int(re.search(r"of (\d+)</span>", client.get("/rate").text).group(1))


def test_forged_replayed_and_foreign_answers_are_refused(pool: Path) -> None:
    a, b = _client(pool), _client(pool)
    sa, sb = _state(a.get("/rate").text), _state(b.get("/rate").text)
    good = {"csrf": sa["csrf"], "item": sa["item"], "choice": "real"}

    def refused(client: TestClient, data: dict, status: int, text: str, **kw: object) -> None:
        r = client.post("/answer", data=data, follow_redirects=False, **kw)
        assert r.status_code == status and text in r.text, (r.status_code, r.text)

    refused(a, {**good, "csrf": "forged"}, 403, "CSRF token is not this session")
    refused(a, {**good, "csrf": sb["csrf"]}, 403, "CSRF token is not this session")
    refused(a, {**good, "choice": "left"}, 400, "is not an answer to this item")
    refused(a, {**good, "item": 5}, 409, "is not the next item")
    refused(a, {**good, "item": 999}, 400, "is not in this session")
    refused(a, good, 403, "cross-site", headers={"origin": "http://evil.example"})
    assert a.post("/answer", data=good, follow_redirects=False).status_code == 303
    refused(a, good, 409, "already answered (a replay)")
    fresh = TestClient(make_app(pool), base_url="http://127.0.0.1:8000")
    refused(fresh, good, 403, "no rater session")
    # another session's image tokens are not served
    assert b.get(sa["images"][0]).status_code == 404
    assert len(answered(pool)) == 1


def test_store_answer_and_results_directly(pool: Path) -> None:
    session, csrf = new_session(pool)
    while (item := progress(pool, session)["item"]) is not None:
        store_answer(
            pool, session, csrf, item["pos"], "real" if item["task"] == "turing" else "left"
        )
    res = results(pool, bootstrap=50)
    assert res["sessions"] == 1 and res["answers"] + 0 <= 12
    with pytest.raises(Exception, match="already answered"):
        store_answer(pool, session, csrf, 0, "real")

"""End to end in headless Chromium (Selenium on Debian's chromium and chromedriver): a scripted
rater clicks through whole sessions against the real `tractable human-eval` server."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tractable.humaneval import results

from .browser import chrome, free_port, rate_one, start_server
from .conftest import make_pool

TOTAL = 12  # 2 Turing items per model and 4 real, 2 comparisons, 2 attention checks


def _answers(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


@pytest.fixture
def server(tmp_path: Path):  # noqa: ANN201
    db, port = make_pool(tmp_path / "he.sqlite"), free_port()
    proc = start_server(db, port)
    yield db, port, proc
    proc.kill()
    proc.wait()


def _start(driver, port: int) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    driver.get(f"http://127.0.0.1:{port}/")
    driver.find_element(By.ID, "rater").send_keys("scripted")
    driver.find_element(By.ID, "start").click()


def test_a_full_session_by_clicking_then_the_printed_results(server) -> None:  # noqa: ANN001
    db, port, _ = server
    driver = chrome()
    try:
        _start(driver, port)
        log = []
        while (step := rate_one(driver, use_keys=len(log) % 3 == 2)) is not None:
            log.append(step)
        assert len(log) == TOTAL and "All 12 items answered" in driver.page_source
    finally:
        driver.quit()
    assert _answers(db) == TOTAL
    res = results(db, bootstrap=100)
    # the rater's rule makes alpha (dark strokes like the real digits) fool every time, beta
    # (bright) never, every real image judged real, alpha preferred, and both checks passed
    assert res["excluded"] == 0 and res["answers"] == TOTAL
    assert (res["turing"]["alpha"]["judged_real"], res["turing"]["alpha"]["n"]) == (2, 2)
    assert (res["turing"]["beta"]["judged_real"], res["turing"]["beta"]["n"]) == (0, 2)
    assert (res["real"]["judged_real"], res["real"]["n"]) == (4, 4)
    assert res["bradley_terry"]["alpha"]["score"] > 0 > res["bradley_terry"]["beta"]["score"]
    out = subprocess.run(
        [sys.executable, "-m", "tractable", "human-eval", "--results", str(db)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "1 rater session(s), 0 excluded" in out
    assert "alpha        1.000 [0.342, 1.000]  (2/2)" in out  # Wilson 95% for 2/2
    assert "beta         0.000 [0.000, 0.658]  (0/2)" in out
    assert "real images  1.000 [0.510, 1.000]  (4/4)" in out


def test_two_browsers_rating_at_once_lose_nothing(server) -> None:  # noqa: ANN001
    db, port, _ = server
    drivers = [chrome(), chrome()]
    counts, errors = [0, 0], []

    def rate(k: int) -> None:
        try:
            _start(drivers[k], port)
            while rate_one(drivers[k]) is not None:
                counts[k] += 1
        except Exception as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=rate, args=(k,)) for k in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for d in drivers:
            d.quit()
    assert not errors and counts == [TOTAL, TOTAL]
    with sqlite3.connect(db) as con:
        per = con.execute("SELECT session, COUNT(*) FROM answers GROUP BY session").fetchall()
    assert sorted(n for _, n in per) == [TOTAL, TOTAL]


def test_sigkill_mid_session_loses_no_stored_answer(server) -> None:  # noqa: ANN001
    db, port, proc = server
    driver = chrome()
    try:
        _start(driver, port)
        for _ in range(5):
            rate_one(driver)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _answers(db) == 5  # every answer shown as stored was committed
        again = start_server(db, port)
        try:
            driver.refresh()  # the same rater comes back (session cookie) at item 6
            assert "Item 6 of 12" in driver.page_source
            n = 5
            while rate_one(driver) is not None:
                n += 1
            assert n == TOTAL and _answers(db) == TOTAL
        finally:
            again.kill()
            again.wait()
    finally:
        driver.quit()

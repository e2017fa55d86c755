"""`tractable human-eval RUN RUN` on two tiny runs trained on 'digits': the pool is sampled from
the runs, a scripted rater completes a session in headless Chromium, screenshots of both tasks
are taken (into $HUMANEVAL_SCREENSHOTS when set), and `--results` prints what was stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tractable import runs
from tractable.humaneval import answered

from .browser import chrome, free_port, rate_one, start_server, wait_item


def _train(out: Path, model: str, options: dict) -> Path:
    runs.train_run(model=model, data="digits", steps=5, batch_size=64, n=256, out=out,
                   options=options, progress=False, plots=False)  # fmt: skip
    return out


@pytest.mark.slow
def test_human_eval_on_trained_runs(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    flow = _train(tmp_path / "maf", "maf", {"hidden": [16], "transforms": 2})
    vae = _train(tmp_path / "vae", "vae", {"latent": 2, "hidden": [8]})
    db, port = tmp_path / "he.sqlite", free_port()
    shots = Path(os.environ.get("HUMANEVAL_SCREENSHOTS", tmp_path))
    proc = start_server(db, port, flow, vae)
    driver = chrome()
    log, taken = [], set()
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "start").click()
        while True:
            wait_item(driver)
            kind = "ab" if driver.find_elements(By.ID, "choice-left") else "turing"
            if not driver.find_elements(By.ID, "done") and kind not in taken:
                driver.save_screenshot(str(shots / f"humaneval_{kind}.png"))
                taken.add(kind)
            step = rate_one(driver)
            if step is None:
                break
            log.append(step)
    finally:
        driver.quit()
        proc.kill()
        proc.wait()
    assert taken == {"turing", "ab"} and len(log) == 12
    stored = answered(db)
    assert [(r["task"] if r["task"] != "check" else "ab", r["choice"]) for r in stored] == log
    out = subprocess.run(
        [sys.executable, "-m", "tractable", "human-eval", "--results", str(db)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "1 rater session(s)" in out and "maf" in out and "vae" in out
    print(out)


def test_flat_and_image_runs_of_one_dataset_are_rated_together(tmp_path: Path) -> None:
    from tractable.humaneval import pool_from_runs

    flat = _train(tmp_path / "maf", "maf", {"hidden": [8], "transforms": 1})  # (64,) vectors
    image = tmp_path / "glow"
    runs.train_run(model="glow", data="digits", steps=2, batch_size=32, n=128, out=image,
                   options={"levels": 1, "depth": 1, "hidden": 8}, progress=False,
                   plots=False)  # fmt: skip
    names = pool_from_runs([flat, image], tmp_path / "he.sqlite", n=4)
    assert names == ["maf", "glow"]
    other = tmp_path / "moons"
    runs.train_run(model="maf", data="moons", steps=2, n=128, batch_size=32, out=other,
                   progress=False,
                   options={"hidden": [4], "transforms": 1}, plots=False)  # fmt: skip
    with pytest.raises(ValueError, match="rate runs of one dataset"):
        pool_from_runs([flat, other], tmp_path / "other.sqlite", n=4)

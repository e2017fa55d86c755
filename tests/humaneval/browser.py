"""Helpers of the browser tests: a server subprocess (the real CLI under uvicorn), Debian's
headless Chromium through its chromedriver, and a scripted rater whose answers are known: an
image is real when its mean brightness is below 0.4, and of two images the darker one looks
more real."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MEAN_JS = """
var img = arguments[0], done = arguments[arguments.length - 1];
function mean() {
  var c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  var g = c.getContext('2d'); g.drawImage(img, 0, 0);
  var d = g.getImageData(0, 0, c.width, c.height).data, s = 0;
  for (var i = 0; i < d.length; i += 4) s += d[i];
  done(s / (255 * d.length / 4));
}
if (img.complete && img.naturalWidth) mean(); else img.onload = mean;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, *runs: Path, log: Path | None = None) -> subprocess.Popen:
    plan = ["--turing", "2", "--pairs", "2", "--checks", "2", "--images", "8"]
    cmd = [sys.executable, "-m", "tractable", "human-eval", *map(str, runs), "--db", str(db),
           "--port", str(port), *plan]  # fmt: skip
    out = open(log or db.with_suffix(".log"), "ab")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped: {Path(out.name).read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start in 120 s")


def chrome():  # noqa: ANN201
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=820,760", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    # the system driver: Selenium Manager never looks for (or downloads) one
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def wait_item(driver) -> None:  # noqa: ANN001
    r"""Wait until the page shows an item or the end of the session."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(
        lambda d: d.find_elements(By.ID, "done") or d.find_elements(By.CSS_SELECTOR, "img.s")
    )


def rate_one(driver, use_keys: bool = False) -> tuple[str, str] | None:  # noqa: ANN001
    r"""Answer the shown item as the scripted rater; ``(task, choice)`` or ``None`` when done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait_item(driver)
    if driver.find_elements(By.ID, "done"):
        return None
    from selenium.common.exceptions import WebDriverException

    for attempt in range(3):  # an image still loading or a page still settling: look again
        try:
            images = driver.find_elements(By.CSS_SELECTOR, "img.s")
            means = [driver.execute_async_script(MEAN_JS, img) for img in images]
            break
        except WebDriverException:
            if attempt == 2:
                raise
            time.sleep(0.5)
    if len(means) == 1:
        task, choice = "turing", "real" if means[0] < 0.4 else "generated"
        key = "r" if choice == "real" else "g"
    else:
        task, choice = "ab", "left" if means[0] < means[1] else "right"
        key = Keys.ARROW_LEFT if choice == "left" else Keys.ARROW_RIGHT
    button = driver.find_element(By.ID, f"choice-{choice}")
    if use_keys:
        driver.find_element(By.TAG_NAME, "body").send_keys(key)
    else:
        button.click()
    WebDriverWait(driver, 10).until(lambda _: _detached(button))
    return task, choice


def _detached(element) -> bool:  # noqa: ANN001
    r"""Whether the page holding ``element`` has been replaced. Chromium reports a node of a
    page being swapped out either as stale or, during the swap, as one that "does not belong to
    the document"; both mean the answer was taken and the next item is loading."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as err:
        if "does not belong to the document" in str(err):
            return True
        raise
    return False

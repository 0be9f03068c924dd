"""The web page end to end: Streamlit's AppTest and headless Chromium (Debian's package).

A real TorchServe (`server` fixture) and the page (`python -m web`, as users start it) on free
ports; the browser types a review, presses Analyze, reads every model's verdict and the
highlighted words, and saves a screenshot to build/e2e/screenshot.png.  Skipped, saying why,
without /usr/bin/chromium (`apt-get install -y chromium`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.ops.server import Ports, TorchServe
from scripts.registry import DEFAULT_MODELS, ROOT
from tests.conftest import missing

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "build" / "e2e" / "screenshot.png"
REVIEW = "정말 재밌게 잘봤습니다! 배우들 연기도 최고"


def test_a_result_stays_through_later_reruns(server: TorchServe, monkeypatch):
    """Streamlit reruns the script on every widget change (an upload, a sidebar click): the
    single review's verdicts must still be there afterwards, with label-coloured bars."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SENTIMENT_URL", server.url("inference"))
    monkeypatch.setenv("SENTIMENT_KEY_FILE", str(server.run_dir / "key_file.json"))
    app = AppTest.from_file(str(ROOT / "web" / "app.py"), default_timeout=60)
    app.run()
    app.text_area(key="review").input(REVIEW)
    next(b for b in app.button if b.label == "Analyze").click()
    app.run()

    def shown() -> list[str]:
        return [m.value for m in app.markdown if 'class="verdict"' in m.value
                or 'class="confidence"' in m.value]  # fmt: skip

    first = shown()
    assert sum('class="verdict"' in html for html in first) == len(DEFAULT_MODELS), first
    assert sum('class="confidence"' in html for html in first) == len(DEFAULT_MODELS)
    app.run()  # what an upload does: a rerun with the Analyze button no longer pressed
    assert shown() == first
    assert not app.exception


@pytest.fixture(scope="module")
def page_url(server: TorchServe) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        missing(f"no Chromium at {CHROMIUM}", "apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401 (only whether it is installed)
    except ImportError:
        missing("no playwright", "pip install -r requirements-dev.txt")
    port = Ports.free().inference
    env = {**os.environ, "SENTIMENT_URL": server.url("inference"),
           "SENTIMENT_KEY_FILE": str(server.run_dir / "key_file.json")}  # fmt: skip
    log = open(server.run_dir / "web.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "web", "--port", str(port)], cwd=ROOT,
                               env=env, stdout=log, stderr=log, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (server.run_dir / "web.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def served_label(server: TorchServe, model: str, text: str) -> str:
    """The label `model` gives `text` through the inference API: what the page must show."""
    response = server.request("inference", "POST", f"/predictions/{model}",
                              json={"text": text}, timeout=60)  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["label"]


def test_page_shows_every_models_verdict_and_highlights(page_url: str, server: TorchServe):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(page_url, timeout=60_000)
            box = page.locator("textarea")
            box.fill(REVIEW)
            box.press("Control+Enter")  # Streamlit applies a text area's value on Ctrl+Enter
            page.get_by_role("button", name="Analyze").click()
            verdicts = {}
            for model in ("sentiment_fast", "sentiment_bert", "sentiment"):
                verdict = page.locator(f'.verdict[data-model="{model}"]')
                verdict.wait_for(timeout=60_000)
                verdicts[model] = verdict.get_attribute("data-label")
            highlighted = page.locator(".explained .hl.pos").all_inner_texts()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert verdicts["sentiment_fast"] == "positive"  # the 20k-row test model; tiny BERT may err
    assert verdicts == {model: served_label(server, model, REVIEW) for model in verdicts}
    assert highlighted and all(word in REVIEW for word in highlighted)
    assert any("재밌" in word or "최고" in word for word in highlighted), highlighted

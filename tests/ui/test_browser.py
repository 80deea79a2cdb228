"""Real-browser tests: `streamlit run` on 127.0.0.1, driven through Playwright in Debian's Chromium."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(small_index_dir: Path, generator_cache: Path):
    port = free_port()
    env = {**os.environ, "PUBMED_RAG_PATHS__INDEX_DIR": str(small_index_dir), "PUBMED_RAG_PATHS__DEFAULT_INDEX": "small",
           "PUBMED_RAG_PATHS__CACHE_DIR": str(generator_cache), "PUBMED_RAG_GENERATOR__MAX_NEW_TOKENS": "32"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def launch(p):
    """Debian's Chromium, headless, with no background traffic."""
    assert Path(CHROMIUM).exists(), "make test installs Debian's chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def assert_no_deploy_toolbar(page) -> None:
    """.streamlit/config.toml sets client.toolbarMode = "minimal": no "Deploy" button for readers."""
    expect(page.locator('[data-testid="stAppDeployButton"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)


@pytest.mark.browser
def test_ask_in_a_real_browser_and_screenshot_each_page(app_url):
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(app_url, wait_until="networkidle")
        expect(page.get_by_text("Ask PubMed evidence")).to_be_visible(timeout=60000)
        assert_no_deploy_toolbar(page)
        page.get_by_label("Question").fill("Does as-needed budesonide-formoterol reduce exacerbations in mild asthma?")
        page.get_by_role("button", name="Ask").click()
        link = page.get_by_role("link", name="PMID 29768149")
        expect(link).to_be_visible(timeout=300000)
        assert link.get_attribute("href") == "https://pubmed.ncbi.nlm.nih.gov/29768149/"
        expect(page.get_by_text("Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma.")).to_be_visible()
        # An answer with a citation linking to its evidence card, or the honest abstention.
        # The key findings, quoted and cited with links to their evidence cards.
        expect(page.get_by_text("Key findings", exact=True)).to_be_visible()
        assert page.locator('a[href="#ev-1"]').count() > 0
        expect(page.get_by_text("not medical advice", exact=False)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "ask.png"), full_page=True)

        page.goto(app_url + "/library", wait_until="networkidle")
        expect(page.get_by_text("Index library")).to_be_visible(timeout=60000)
        expect(page.get_by_text("Records per publication year")).to_be_visible(timeout=60000)
        page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)

        page.goto(app_url + "/citations", wait_until="networkidle")
        expect(page.get_by_text("Check citations")).to_be_visible(timeout=60000)
        page.get_by_label("Text with cited claims").fill(
            "As-needed budesonide-formoterol was noninferior to budesonide maintenance [PMID:29768149].")
        page.get_by_role("button", name="Check").click()
        expect(page.get_by_role("link", name="PMID 29768149")).to_be_visible(timeout=120000)
        page.screenshot(path=str(ARTIFACTS / "citations.png"), full_page=True)
        browser.close()


@pytest.mark.browser
def test_pages_at_phone_width(app_url):
    """Each page at a phone's viewport (390 x 844 CSS pixels): it renders, fits the width, and has no Deploy button."""
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
        # Each page with the element it renders last (Streamlit streams elements after "networkidle").
        pages = (("", "Ask PubMed evidence", page.get_by_role("button", name="Ask")),
                 ("/library", "Index library", page.get_by_text("Records per publication year")),
                 ("/citations", "Check citations", page.get_by_label("Text with cited claims")))
        for path, heading, last in pages:
            page.goto(app_url + path, wait_until="networkidle")
            expect(page.get_by_text(heading)).to_be_visible(timeout=60000)
            expect(last).to_be_visible(timeout=60000)
            assert_no_deploy_toolbar(page)
            # Nothing wider than the screen: the page itself must not scroll sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / f"{path.strip('/') or 'ask'}-phone.png"), full_page=True)
        browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 1800}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_case_page_in_a_real_browser(app_url, viewport):
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=viewport)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app_url + "/case", wait_until="networkidle")
        expect(page.get_by_text("Analyse a case")).to_be_visible(timeout=60000)
        page.get_by_role("button", name="Arthralgias and rash (topic 21)").click()
        expect(page.get_by_role("textbox", name="Case")).to_have_value(re.compile("^A 21-year-old female"), timeout=30000)
        text = page.get_by_role("textbox", name="Case").input_value()
        page.get_by_role("textbox", name="Case").fill("<script>alert('case')</script> " + text)
        page.get_by_role("button", name="Analyse").click()
        expect(page.get_by_role("heading", name="Problem list")).to_be_visible(timeout=300000)
        expect(page.get_by_text("Arthralgia — “arthralgias”")).to_be_visible()
        expect(page.get_by_text("Differential from the literature")).to_be_visible()
        page.get_by_text("The case as analysed").click()
        shown = page.get_by_test_id("stText").get_by_text("<script>alert('case')</script>", exact=False)
        expect(shown).to_be_visible()
        assert not dialogs  # the script was shown, not run
        page.screenshot(path=str(ARTIFACTS / f"case-{viewport['width']}.png"), full_page=True)
        browser.close()

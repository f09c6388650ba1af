"""Open a report in real headless Chromium (Debian ``chromium`` + ``chromium-driver``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Run before any script of the page: every alert/confirm/prompt is recorded, none blocks.
RECORD_DIALOGS = """
window.__dialogs = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => { window.__dialogs.push(name + ": " + String(message)); return null; };
}
"""


def chromium_available() -> bool:
    """Whether Debian's chromium and chromedriver are installed."""
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


needs_chromium = pytest.mark.skipif(
    not chromium_available(), reason="needs Debian chromium and chromium-driver (.ci/run installs them)"
)


def open_in_chromium(html: Path, screenshot: Path) -> dict:
    """Load ``html``; return what a reader's browser saw.

    Keys: ``errors`` (console errors), ``broken_images``, ``images``, ``tables``, ``title``,
    ``dialogs`` (alert/confirm/prompt calls: any means a page's text ran as script),
    ``scripts`` (``<script>`` elements), ``text`` (the page's visible text), ``alts`` (the
    images' ``alt`` texts), ``links`` (the ``href`` of every link). Saves a full-page
    screenshot to ``screenshot``.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_DIALOGS})
        driver.get(html.resolve().as_uri())
        driver.execute_async_script(  # let failing images fire their onerror handlers
            "const done = arguments[arguments.length - 1];"
            "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))"
            ".then(() => setTimeout(done, 200));"
        )
        broken = driver.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40));"
        )
        n_images = driver.execute_script("return document.images.length;")
        n_tables = driver.execute_script("return document.querySelectorAll('table').length;")
        height = driver.execute_script("return document.body.scrollHeight;")
        driver.set_window_size(1280, min(int(height) + 100, 16000))
        driver.save_screenshot(str(screenshot))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return {
            "dialogs": driver.execute_script("return window.__dialogs;"),
            "scripts": driver.execute_script("return document.scripts.length;"),
            "text": driver.execute_script("return document.body.innerText;"),
            "alts": driver.execute_script("return Array.from(document.images).map(i => i.alt);"),
            "links": driver.execute_script(
                "return Array.from(document.links).map(a => a.getAttribute('href'));"
            ),
            "errors": errors,
            "broken_images": broken,
            "images": n_images,
            "tables": n_tables,
            "title": driver.title,
        }
    finally:
        driver.quit()

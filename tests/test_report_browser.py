"""The report as a person sees it: headless Chromium loads index.html, every image renders, no link is broken."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.helpers import make_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"),
]


def test_report_loads_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study

    db = make_store(tmp_path / "runs.db", extras=False)
    out = tmp_path / "report"
    rep = build_report(Study.from_db(db), out, only=["1", "20", "23", "5"])
    assert len(rep.drawn) == 3
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "index.html").as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
            links = page.evaluate("[...document.querySelectorAll('a[href], link[href]')].map(a => a.href)")
            missing_ids = page.evaluate(
                "[...document.querySelectorAll('a[href^=\"#\"]')].map(a => a.getAttribute('href').slice(1))"
                ".filter(id => !document.getElementById(id))")
            css_applied = page.evaluate("getComputedStyle(document.body).maxWidth")
            page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert [src for src, _, _ in images] == ["fig01.png", "fig20_21.png", "fig23.png"]
    assert all(done and width > 0 for _, done, width in images), images
    for url in links:
        u = urlparse(url)
        assert u.scheme == "file", url  # nothing from the network
        assert Path(unquote(u.path)).is_file(), url
    assert not missing_ids
    assert css_applied == "1280px"  # the local stylesheet loaded
    assert all(urlparse(r).scheme == "file" for r in requests), requests
    assert (tmp_path / "screenshot.png").stat().st_size > 50_000

"""The report as a person sees it: headless Chromium loads index.html, every image renders, no link is broken."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.helpers import CHROMIUM, launch_chromium, make_store

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
        browser = launch_chromium(p)
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


def test_report_tables_fit_a_1400_pixel_window_and_nothing_is_cut(tmp_path):
    """The "Not measured" table, the planner's notes and the runs table fit the page at 1,400 px; no note is cut."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study, plan_budgets

    db = make_store(tmp_path / "runs.db", extras=False)
    study = Study.from_db(db, fits={"kaplan-n": {"law": "kaplan-n", "params": {"alpha_N": 0.076, "N_c": 8.8e13}}})
    study.plans = plan_budgets(study)  # kaplan-n alone plans nothing: each row is the planner's (long) note
    out = tmp_path / "report"
    not_measured = ["5", "7", "9", "11", "15", "16", "17", "18", "22", "LR"]
    rep = build_report(study, out, only=not_measured)
    assert len(rep.figures) == len(not_measured) and not rep.drawn
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto((out / "index.html").as_uri())
            page.wait_for_load_state("load")
            page_width = page.evaluate("document.documentElement.scrollWidth")
            overflowing = page.evaluate(
                "[...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > 1400"
                " || (t.parentElement.scrollWidth > t.parentElement.clientWidth + 1)).map(t => t.innerText.slice(0, 60))")
            notes = page.evaluate("[...document.querySelectorAll('#plan ~ table td, #plan ~ div td')]"
                                  ".map(td => td.innerText).filter(t => t.startsWith('planner:'))")
            page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert page_width <= 1400 and not overflowing, (page_width, overflowing)
    assert notes and all("frontier" in n and not n.rstrip().endswith(",") for n in notes), notes

"""The documentation stays true: its code blocks run, the site builds strictly, and it renders in a browser.

Code blocks follow the convention of scripts/docs_blocks.py: ```bash and ```python blocks run (bash through the
real `scalinglab` entry point, python in a fresh process), in order, in one temporary folder per page; a block
with `title="NAME"` is written to that file; ```sh and other blocks are shown only. Pages whose blocks train
say `test: slow` in their front matter.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))
import docs_blocks  # noqa: E402

HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("mkdocs_click") is not None


def _pages() -> list:
    params = []
    for page in [DOCS / "index.md", *sorted((DOCS / "tutorials").glob("*.md")), *sorted((DOCS / "how-to").glob("*.md")),
                 *sorted((DOCS / "explanations").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        if not any(b.runs for b in docs_blocks.parse(text)):
            continue
        marks = [pytest.mark.slow] if docs_blocks.page_marks(text).get("test") == "slow" else []
        params.append(pytest.param(page, id=str(page.relative_to(DOCS)), marks=marks))
    return params


@pytest.mark.docs
@pytest.mark.parametrize("page", _pages())
def test_page_code_blocks_run(page, tmp_path):
    for block, proc in docs_blocks.run_page(page, tmp_path):
        assert proc.returncode == 0, (
            f"{page.name}: block failed (exit {proc.returncode}):\n{block.body}\n--- output\n{proc.stdout[-3000:]}")


def test_block_convention_is_what_the_runner_does(tmp_path):
    page = tmp_path / "p.md"
    page.write_text('```toml title="a.toml"\nx = 1\n```\n\n```bash\ncat a.toml\n```\n\n```text\nold\n```\n\n'
                    "```sh\nexit 1\n```\n\n```python\nprint(open('a.toml').read().strip())\n```\n", encoding="utf-8")
    blocks = docs_blocks.parse(page.read_text())
    assert [b.runs for b in blocks] == [False, True, False, False, True]
    assert blocks[2].output_of == 1
    ran = docs_blocks.run_page(page, tmp_path)
    assert [p.stdout for _, p in ran] == ["x = 1\n", "x = 1\n"]
    docs_blocks.update(page, tmp_path)
    assert "```text\nx = 1\n```" in page.read_text()
    page.write_text("```bash\nfalse\n```\n\n```python\nprint(1)\n```\n", encoding="utf-8")
    ran = docs_blocks.run_page(page, tmp_path)
    assert len(ran) == 1 and ran[0][1].returncode == 1  # stops at the first failure


def test_readme_python_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in docs_blocks.parse(text) if b.lang == "python"]
    assert len(blocks) == 1 and len(blocks[0].body.strip().splitlines()) <= 6
    proc = docs_blocks.run_block(blocks[0], tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert len(text.splitlines()) <= 160


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = next(line for line in readme.splitlines() if "python -m pytest" in line and "pip install" in line)
    extras = re.search(r'pip install -e "(\.\[[^\]]+\])"', test_cmd).group(1)
    assert f'pip install -e "{extras}"' in ci
    assert "python -m pytest -q -n 2" in test_cmd and "python -m pytest -q -n 2" in ci
    assert "docs" in extras


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, missing


def test_results_page_says_when_a_fit_has_no_interval(tmp_path):
    """scripts/results_page.py on a reproduce-shaped folder: intervals shown, a fit without one says so."""
    import json

    import results_page

    from tests.helpers import make_store

    out = tmp_path / "cpu_run"
    (out / "report").mkdir(parents=True)
    make_store(out / "runs.db", extras=False)
    (out / "reproduce.json").write_text(json.dumps({"preset": "cpu", "stages": {"report_info": {
        "figures_drawn": ["1"], "figures_not_measured": {"18": "needs a batch scan"}}}}))
    (out / "fits.json").write_text(json.dumps({
        "kaplan-n": {"law": "kaplan-n", "params": {"alpha_N": 0.057, "N_c": 1e13}, "n_points": 9,
                     "ci95": {"alpha_N": [0.048, 0.075], "N_c": [1e12, 1e14]}, "resample": "point",
                     "bootstrap": {"k": 500, "converged_fraction": 1.0}, "residual_rms": 0.016},
        "bcrit-scan": {"law": "bcrit-scan", "params": {"B_star": 2.9e5, "alpha_B": 0.43}, "n_points": 5,
                       "ci95": None, "bootstrap": None, "residual_rms": 0.68, "at_bounds": []}}))
    (out / "plans.json").write_text(json.dumps([{"compute_pf_days": 1e-6, "N_opt": 3e7, "D": 4e5, "L_pred": 3.4,
                                                 "ci95": {}, "sources": {"L_pred": "kaplan-c"}}]))
    text = results_page.page(out, "test machine", "scalinglab reproduce --preset cpu --out cpu_run", "1 min", "f")
    assert "| `cpu` | `scalinglab reproduce --preset cpu --out cpu_run` | test machine |" in text
    assert "| kaplan-n | alpha_N | 0.057 | 0.048 – 0.075 | 0.076 |" in text
    assert "| bcrit-scan | B_star | 2.90e+05 | **none** (no bootstrap in this preset) |" in text
    assert "`bcrit-scan`) are point estimates only" in text
    assert text.count("| main |") == 6  # the main family of the store (its diverged run has none)
    assert "## Shape at fixed N" not in text  # the comparative studies are the comparisons preset's


def test_results_page_comparisons_tables_come_from_the_store(tmp_path):
    """The comparisons preset's page: one table per study, computed from runs.db and fits.json."""
    import json

    import numpy as np
    import results_page

    from scalinglab.store.db import record_result
    from tests.helpers import make_store, synthetic_result

    out = tmp_path / "comp"
    (out / "report").mkdir(parents=True)
    make_store(out / "runs.db")
    record_result(out / "runs.db", synthetic_result(np.random.default_rng(1), n_layer=2, d_model=64, steps=600,
                                                    arch="universal"), plan="synthetic")
    (out / "report" / "fig22.png").write_bytes(b"png")
    (out / "reproduce.json").write_text(json.dumps({"preset": "comparisons", "stages": {"report_info": {
        "figures_drawn": ["22"], "figures_not_measured": {}}}}))
    (out / "fits.json").write_text(json.dumps({
        "kaplan-n": {"law": "kaplan-n", "formula": "L = (N_c/N)^alpha_N", "params": {"alpha_N": 0.05, "N_c": 1e13},
                     "ci95": {"alpha_N": [0.04, 0.06], "N_c": [1e12, 1e14]}, "n_points": 6, "residual_rms": 0.02},
        "log-n": {"law": "log-n", "formula": "L = a - b*ln(N)", "params": {"a": 5.0, "b": 0.1}, "ci95": None,
                  "n_points": 6, "residual_rms": 0.03},
        "ood-linear": {"law": "ood-linear", "params": {"intercept": 0.4, "slope": 0.6},
                       "ci95": {"intercept": [0.1, 0.6], "slope": [0.5, 0.7]}}}))
    (out / "plans.json").write_text("[]")
    text = results_page.page(out, "m", "scalinglab reproduce --preset comparisons --out comp", None, "f")
    # the store's shape scan at N ≈ 25k (Fig. 5 groups it), the LSTMs beside their nearest Transformers
    assert "| aspect ratio d_model/n_layer | d_ff = 4·d_model | 2 | 8×16 |" in text
    assert text.count("| 8,192 | 0.001 |") == 1 and "| 65,536 | 0.001 |" in text
    # the recurrent 2×64 beside the unshared 2×64 of the main family
    assert "| 2×64 | 99,968 |" in text.split("## Recurrent Transformer")[1].split("##")[0]
    # a constant LR of 1e-3 for 600 steps with 30 warm-up steps sums to 1e-3·(15.5 + 570)
    assert "| 0.5855 | constant | 0.001 |" in text
    assert "![fig22 from the comparisons preset](f/fig22.png)" in text
    assert "| `log-n` | L = a - b*ln(N) | a = 5 (no interval), b = 0.1 (no interval) | 6 | 0.03 |" in text
    # the synthetic other set is the val loss + 0.4 for every size; an unfitted law says so
    ood = text.split("## Another distribution")[1].split("##")[0]
    assert ood.count("| +0.400 |") == 6
    assert "offset not fitted" in ood and "slope 0.6 [0.5, 0.7]" in ood


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not HAS_MKDOCS:
        pytest.skip("mkdocs is not installed (the `docs` extra)")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.mark.docs
@pytest.mark.slow
def test_site_builds_strictly_and_reference_is_complete(site):
    from scalinglab.cli.click_command import command

    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    leaves = []
    for name, cmd in command.commands.items():
        assert f"scalinglab {name}" in cli, name
        subs = getattr(cmd, "commands", {})
        for sub, leaf in subs.items():
            assert f"scalinglab {name} {sub}" in cli, (name, sub)
            leaves.append(leaf)
        if not subs:
            leaves.append(cmd)
    options = {o for leaf in leaves for p in leaf.params if not getattr(p, "hidden", False)
               for o in p.opts if o.startswith("--")}
    assert not [o for o in options if o not in cli], "options missing from the CLI reference"
    import scalinglab

    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    missing = [n for n in scalinglab.__all__ if n != "__version__" and n not in api]
    assert not missing, missing
    laws = (site / "reference" / "laws" / "index.html").read_text(encoding="utf-8")
    assert all(n in laws for n in scalinglab.law_names())
    assert "<!-- generated:" not in "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))


@pytest.fixture(scope="module")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.docs
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_site_renders_in_chromium_and_search_finds_a_command(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    pages = {"home": "/", "tutorial": "/tutorials/laptop/", "cli": "/reference/cli/"}
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside: list[str] = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(served) else None)
            for name, path in pages.items():
                page.goto(served + path)
                page.wait_for_load_state("load")
                images = page.evaluate("[...document.images].map(i => [i.src, i.complete, i.naturalWidth])")
                assert all(done and width > 0 for _, done, width in images), (name, images)
                assert page.evaluate("getComputedStyle(document.querySelector('.md-header')).position") == "sticky"
                page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=False)
            page.goto(served + "/")
            page.wait_for_load_state("networkidle")
            page.click("input.md-search__input")
            page.keyboard.type("reproduce", delay=20)  # the search reacts to key events, not to a filled value
            page.wait_for_selector(".md-search-result__item", timeout=60_000)
            results = page.inner_text(".md-search-result")
        finally:
            browser.close()
    assert "scalinglab reproduce" in results  # the command's section of the CLI reference
    assert not [u for u in outside if not u.startswith(("data:", "blob:"))], outside
    assert all((tmp_path / f"{n}.png").stat().st_size > 20_000 for n in pages)

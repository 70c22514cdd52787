"""The report in headless Chromium (Debian's, driven by Playwright): figures render, tables sort and filter,
hostile samples run nothing, the page needs no network. Runs from a real bundled-model run plus crafted ones.

Skipped where chromium or playwright is missing, unless ALIGNLAB_REQUIRE_BROWSER=1 (set by .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datadir import DATA

from alignlab.report.synthetic import write_run

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine notes say: without the background-networking switches chromium keeps dialling out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = {
    "script": "<script>window.__pwned = 'script'</script>",
    "textarea": "</textarea><img src=x onerror=\"window.__pwned = 'img'\"><textarea>",
    "javascript": '<a id="evil" href="javascript:window.__pwned = \'link\'">click me</a>',
    "attribute": '" onmouseover="window.__pwned = \'attr\'" x="',
    "table": "</pre></td></tr></tbody></table><script>window.__pwned = 'table'</script>",
    "alert": "<svg onload=alert(1)></svg><iframe src=javascript:alert(2)></iframe>",
}


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "playwright" if sync_playwright is None else None if Path(CHROMIUM).exists() else "chromium"
    if missing:
        if os.environ.get("ALIGNLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"{missing} is missing but ALIGNLAB_REQUIRE_BROWSER=1 (bash scripts/setup.sh --extras)"
            )
        pytest.skip(f"{missing} not installed")
    return sync_playwright


def _cli(*args: str, timeout: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "alignlab.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "ALIGNLAB_DATA_DIR": str(DATA)},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    sync_playwright = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("report")
    runs = tmp / "runs"
    # A real run: bundled model, 3 items, a short chain of thought so the drill-down has reasoning.
    _cli(
        "eval", "bbq", "--limit", "3", "--conditions", "q,q+if+cot", "--cot-max-tokens", "24",
        "--bootstrap", "100", "--out", str(runs / "real"), "--cache", str(tmp / "cache.sqlite"),
        "--no-progress", "--report", str(tmp / "report.html"),
        timeout=900,
    )  # fmt: skip
    assert (tmp / "report.html").is_file()  # --report wrote one already
    # A ladder of two more sizes, and a run whose samples and model name are hostile.
    write_run(runs / "ladder-360m", "ladder-360m", 361_821_120, 7)
    write_run(runs / "ladder-1.7b", "ladder-1.7b", 1_711_376_384, 8)
    hostile = [
        {
            "id": f"hostile-{name}",
            "condition": "q",
            "category": text,
            "prediction": 1,
            "correct": False,
            "probs": [0.2, 0.5, 0.3],
            "prompt": text,
            "reasoning": text,
            "answers": [text, "b", "c"],
        }
        for name, text in HOSTILE.items()
    ]
    hostile.append(
        {"id": "hostile-huge", "condition": "q", "prompt": "y" * 2_000_000, "reasoning": "z" * 50_000}
    )
    write_run(runs / "hostile", "<script>window.__pwned='model'</script>", 50_000_000, 9, samples=hostile)
    _cli("report", str(runs), "-o", str(tmp / "report.html"), timeout=300)
    return tmp / "report.html", sync_playwright


@pytest.fixture(scope="module")
def page(report):
    path, sync_playwright = report
    requests, dialogs, errors = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));"
        )
        page.goto(path.as_uri())
        try:
            page.wait_for_selector("html[data-ready='1']", state="attached", timeout=20_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            pytest.fail("the report's script never finished: broken markup or a script error")
        page.report_log = {"requests": requests, "dialogs": dialogs, "errors": errors, "path": path}
        yield page
        browser.close()


def test_every_figure_renders(page):
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])"
    )
    # 4 runs with a bias-by-category figure each, 4 scaling plots (three model sizes)
    assert len(images) == 8
    assert all(done and width > 100 and src == "data:image/png;base64," for done, width, src in images)
    assert page.locator("figcaption", has_text="against parameter count").count() == 4


def test_tables_sort_by_a_column_both_ways(page):
    header = page.locator("#runs th", has_text="parameters")
    column = (
        "Array.from(document.querySelectorAll('#runs tbody tr')).map(r => Number(r.cells[3].dataset.sort))"
    )
    header.click()
    up = page.evaluate(column)
    assert up == sorted(up) and len(set(up)) == 4
    header.click()
    assert page.evaluate(column) == sorted(up, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"


def test_tables_filter_rows(page):
    box = page.locator("input[data-table='headline']")
    total = page.locator("#headline tbody tr").count()
    box.fill("q+if+cot bias_score.ambig")
    visible = page.locator("#headline tbody tr:not([hidden])")
    assert 0 < visible.count() < total
    for text in visible.all_inner_texts():
        assert "q+if+cot" in text and "bias_score.ambig" in text
    assert page.locator("[data-count-for='headline']").inner_text() == f"{visible.count()} of {total} rows"
    box.fill("")
    assert page.locator("#headline tbody tr:not([hidden])").count() == total


def test_hostile_samples_show_as_text_and_run_nothing(page):
    log = page.report_log
    drill = page.locator("details.samples[data-run='hostile']")
    drill.locator("summary").first.click()
    for name, text in HOSTILE.items():
        row = drill.locator("tbody tr", has_text=f"hostile-{name}")
        row.locator("td.sample-detail summary").click()
        assert row.locator("td.sample-detail pre").first.text_content() == text  # exactly, as text
        row.hover()
    huge = drill.locator("tbody tr", has_text="hostile-huge")
    huge.locator("td.sample-detail summary").click()
    assert "more characters]" in huge.locator("pre").first.text_content()
    assert page.evaluate("window.__pwned") is None
    assert log["dialogs"] == [] and log["errors"] == []
    assert page.evaluate("window.__violations") == []
    assert page.locator("a[href^='javascript'], #evil, iframe, svg, textarea").count() == 0


def test_real_run_drill_down_holds_prompts_and_reasoning(page):
    real = page.locator("details.samples[data-run='real']")
    real.locator("summary").first.click()
    rows = real.locator("tbody tr")
    assert rows.count() == 6  # 3 items x 2 conditions
    cot = real.locator("tbody tr", has_text="q+if+cot").first
    cot.locator("td.sample-detail summary").click()
    text = cot.locator("td.sample-detail").inner_text()
    assert "Human:" in text and "reasoning" in text


def test_provenance_link_opens_the_runs_config(page):
    from playwright.sync_api import expect

    page.locator("#runs a", has_text="real").click()
    opened = page.locator("#provenance details[open]")
    expect(opened).to_have_count(1)  # the hashchange handler runs after the click returns
    assert "gguf-sha256:" in opened.inner_text()


def test_page_needs_no_network_and_leaves_a_screenshot(page, tmp_path_factory):
    log = page.report_log
    assert log["requests"] == [log["path"].as_uri()]
    page.evaluate("window.scrollTo(0, 0)")
    # ALIGNLAB_SCREENSHOT=docs/report.png keeps them (the README's pictures); -bbq: the experiment's section
    shot = Path(os.environ.get("ALIGNLAB_SCREENSHOT") or tmp_path_factory.mktemp("shot") / "report.png")
    page.screenshot(path=str(shot))
    page.locator("#exp-0 h3", has_text="Across model sizes").scroll_into_view_if_needed()
    page.evaluate("document.querySelector('#exp-0').scrollIntoView()")
    section = shot.with_name(shot.stem + "-bbq.png")
    page.screenshot(path=str(section))
    assert shot.stat().st_size > 10_000 and section.stat().st_size > 10_000

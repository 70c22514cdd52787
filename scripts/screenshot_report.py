"""Screenshots of a report opened from disk in headless Chromium with the network off (docs/report*.png).

    .venv/bin/python scripts/screenshot_report.py REPORT.html docs/report.png

Writes OUT (the top of the page) and OUT-bbq.png (the BBQ section). Needs the `browser` extra and
Debian's chromium (bash scripts/setup.sh --extras).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


def main(report: str, out: str) -> int:
    out_path = Path(out)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_context(offline=True, viewport={"width": 1400, "height": 900}).new_page()
        page.goto(Path(report).resolve().as_uri())
        page.wait_for_selector("html[data-ready='1']", state="attached")
        page.screenshot(path=str(out_path))
        page.evaluate("document.querySelector('#exp-0').scrollIntoView()")
        page.screenshot(path=str(out_path.with_name(out_path.stem + "-bbq.png")))
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

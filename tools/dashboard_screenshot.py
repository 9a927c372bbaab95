#!/usr/bin/env python3
"""Take docs/dashboard.png, the README's picture of the jobs dashboard.

Start the demo with its server (`python3 dev.py demo --serve`), then, with the URL and
password it prints, in a virtualenv that has playwright (the `test` group, e.g.
.nox/tests-*/bin/python):

    python tools/dashboard_screenshot.py http://127.0.0.1:8000 PASSWORD docs/dashboard.png

It uses Debian's /usr/bin/chromium, as the browser tests do (no `playwright install`).
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main(base: str, password: str, out: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1060, "height": 900})
        # A two-minute window: the demo's jobs take milliseconds each.
        page.goto(
            f"{base}/admin/login/?next=/admin/django_future/scheduledjob/dashboard/%3Fminutes%3D2"
        )
        page.fill("#id_username", "demo")
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("svg#timeline")
        # The timeline and the throughput: the part of the page a picture can show.
        page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 1060, "height": 900})
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""A real browser for the admin's pages: Debian's headless Chromium, driven by Playwright.

One browser for the whole session. The pages are served by pytest-django's
``live_server`` from its own thread and connection, so the test's data must be
committed: here ``transactional_db`` (which ``live_server`` asks for) is our
``committed_db``, since the flush that pytest-django would do afterwards is a TRUNCATE,
which the ledger refuses. ``committed_db`` verifies the ledger and empties it instead.

Without /usr/bin/chromium these tests are skipped, and the end of the run says so in a
line of its own (``pytest_terminal_summary`` below): `.ci/run` installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# DJANGO_FUTURE_CHROMIUM: another binary (or a missing one, to see the NOT RUN line).
CHROMIUM = Path(os.environ.get("DJANGO_FUTURE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_not_run: list[str] = []


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is in pyproject's test group)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    why = _missing()
    if why is None:
        return
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.path)).parents]
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=f"browser tests NOT RUN: {why}"))
    if mine:
        _not_run.append(f"browser tests NOT RUN ({len(mine)}): {why}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _not_run:
        terminalreporter.write_line(line, red=True, bold=True)


@pytest.fixture(scope="package")
def browser(django_db_setup: None) -> Iterator[Any]:
    """One Chromium for the tests of this folder. Playwright's sync API keeps an asyncio
    loop running in this thread while it is open, and Django then refuses ORM calls as
    if they came from async code; the tests' ORM calls are plain synchronous ones, so
    the guard is lifted for this folder, and the loop is gone when it ends."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            yield launched
            launched.close()
            # Django keeps its connections per asyncio context (asgiref's Local), and the
            # tests' ORM calls ran inside Playwright's: close theirs before that context
            # goes, or it would stay open and keep the test database from being dropped.
            connections.close_all()
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def transactional_db(committed_db: None) -> None:
    """What live_server asks for: committed data, emptied by committed_db afterwards."""


@pytest.fixture(autouse=True)
def _projection_agrees_with_ledger() -> None:
    """committed_db checks the ledger itself, before it empties the tables."""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose console errors, uncaught exceptions and dialogs (an alert from
    a script that escaping missed) are collected in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        # The browser asks for /favicon.ico by itself; the admin has none, which is no
        # error of a page.
        where = (message.location or {}).get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            problems.append(f"console {message.type}: {message.text} ({where})")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def dialog(d: Any) -> None:
        problems.append(f"dialog: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    page.problems = problems
    yield page
    context.close()


def screenshot_copy() -> str | None:
    """Where to copy the dashboard's screenshot besides tmp_path (the README's picture is
    made so: DJANGO_FUTURE_SCREENSHOT=docs/dashboard.png)."""
    return os.environ.get("DJANGO_FUTURE_SCREENSHOT") or None

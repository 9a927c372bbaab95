"""The jobs dashboard and a job's page in headless Chromium: known jobs with known
outcomes drawn one bar each in their colour, leading to their pages, with no console
error, and a job's arguments shown as text rather than run as a script."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from django_future import ledger, run_jobs, schedule_job
from django_future.dashboard.svg import OUTCOME_COLOURS
from tests.browser.conftest import screenshot_copy

SCRIPT = "<script>alert('escaped?')</script>"
PASSWORD = "browser-test-pw"  # noqa: S105


def rgb(colour: str) -> str:
    """#2e7d32 as the browser's computed style spells it: rgb(46, 125, 50)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.fixture
def staff(committed_db: None) -> Iterator[str]:
    user = User.objects.create_superuser("browser", "b@example.com", PASSWORD)
    yield user.username
    user.delete()  # committed_db empties the ledger's tables, not auth's


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}{reverse('admin:login')}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}{reverse('admin:index')}")


def test_the_dashboard_draws_each_job_and_leads_to_its_page(
    live_server: Any, page: Any, staff: str, tmp_path: Path
) -> None:
    done = [schedule_job("0s", "tests.handlers.record", args=[n]) for n in range(3)]
    failed = schedule_job("0s", "tests.handlers.boom", args=[SCRIPT])
    retried = schedule_job(
        "0s", "tests.handlers.boom", args=[f"again {SCRIPT}"], retries=1, retry_delay="1h"
    )
    cancelled = schedule_job("0s", "tests.handlers.record")
    ledger.cancel(cancelled.pk, by="browser test", reason="not wanted")
    run_jobs(ignore_errors=True)

    log_in(page, live_server.url, staff)
    index = page.locator("#django-future-dashboard-link a")
    index.click()
    page.wait_for_selector("svg#timeline")
    assert page.url.endswith(reverse("admin:django_future_dashboard"))

    drawn = page.eval_on_selector_all(
        "svg#timeline rect.bar",
        "bars => bars.map(b => [Number(b.dataset.job), b.dataset.outcome,"
        " getComputedStyle(b).fill])",
    )
    expected = {job.pk: "completed" for job in done} | {failed.pk: "failed", retried.pk: "failed"}
    assert sorted(drawn) == sorted(
        [job, outcome, rgb(OUTCOME_COLOURS[outcome])] for job, outcome in expected.items()
    )
    assert page.locator("svg#timeline .mark-retried").count() == 1
    assert page.locator(f'svg#timeline .mark-cancelled[data-job="{cancelled.pk}"]').count() == 1
    # The failed job's arguments, in its error text and its bar's tooltip, are text.
    assert SCRIPT in page.locator("#df-failing").inner_text()
    tooltip = page.locator(f'svg#timeline rect.bar[data-job="{failed.pk}"] title')
    assert SCRIPT in tooltip.text_content()
    assert page.problems == []

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if copy := screenshot_copy():
        shutil.copyfile(shot, copy)

    # The topmost bar (drawn last) is clicked as a user would, and leads to its job.
    last = page.locator("svg#timeline rect.bar").last
    job = last.get_attribute("data-job")
    last.click()
    page.wait_for_url(f"**/scheduledjob/{job}/change/")
    assert page.locator("#content h1, #content h2").first.is_visible()
    assert "started" in page.locator("fieldset").last.inner_text()
    assert page.problems == []


def test_zoom_and_shift_links_move_the_window(live_server: Any, page: Any, staff: str) -> None:
    log_in(page, live_server.url, staff)
    page.goto(f"{live_server.url}{reverse('admin:django_future_dashboard')}?minutes=20")
    page.click("#df-zoom-in")
    page.wait_for_url("**minutes=10")
    assert "(10 min, UTC)" in page.locator(".df-window").inner_text()
    page.click("#df-earlier")
    page.wait_for_url("**minutes=10")
    assert "(10 min, UTC)" in page.locator(".df-window").inner_text()
    page.goto(f"{live_server.url}{reverse('admin:django_future_dashboard')}?minutes=soon")
    assert "is not a whole number of minutes" in page.locator("body").inner_text()
    assert page.problems == [] or all("400" in p for p in page.problems)

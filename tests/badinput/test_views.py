"""Bad input at the two read-only pages: the admin's jobs dashboard and the metrics view.
Every odd query string is answered with a page or a 400 whose text says what to send, never
a server error; neither writes a job or an event."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from django_future import schedule_job
from tests.support import counts

pytestmark = pytest.mark.django_db

LONG = "9" * 5000

# (query string, status, a piece of the answer): the dashboard's window parameters
DASHBOARD = [
    ("minutes=" + LONG, 400, "whole number of minutes"),  # too many digits for a number
    ("minutes=99999999999", 200, "showing 1440 minutes"),  # overflowing: clamped, and said
    ("minutes=-5", 200, "showing 1 minutes"),
    ("minutes=0", 200, "showing 1 minutes"),
    ("minutes=abc", 400, "minutes"),
    ("minutes=%00", 400, "minutes"),
    ("minutes=1.5", 400, "minutes"),
    ("end=%00", 400, "end"),
    ("end=" + LONG, 400, "end"),
    ("end=%FF%FE", 400, "end"),  # not UTF-8: decoded with replacement characters
    ("end=2026-13-45T99:00", 400, "end"),
    ("end=99999-01-01T00:00:00", 400, "end"),
    ("end=0001-01-01T00:00:00%2B14:00", 400, "end"),  # before year 1 once in UTC
    ("end=2026-01-01T00:00:00", 200, ""),  # no time zone: taken as UTC
    ("end=2999-01-01T00:00:00Z", 200, "future"),  # clamped to now, and said
    ("minutes=" + "1" * 40 + "&end=%00", 400, ""),
]

# (query string, status, a piece of the answer): the metrics view takes only name[]
METRICS = [
    ("name[]=%00", 400, "No such series"),
    ("name[]=" + "x" * 5000, 400, "No such series"),
    ("name[]=%FF", 400, "No such series"),
    ("window=1h", 400, "Unknown query parameter"),
    ("%00=1", 400, "Unknown query parameter"),
]


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops"))
    return client


@pytest.mark.parametrize(("query", "status", "says"), DASHBOARD)
def test_the_dashboard_answers_odd_windows_clearly(
    staff: Client, query: str, status: int, says: str
) -> None:
    schedule_job("0s", "tests.handlers.record", args=["<script>alert(1)</script>"])
    before = counts()
    page = staff.get(reverse("admin:django_future_dashboard") + "?" + query)
    assert page.status_code == status, page.content[:500]
    assert says in page.content.decode(errors="replace")
    assert counts() == before


@pytest.mark.urls("tests.metrics.urls")
@pytest.mark.parametrize(("query", "status", "says"), METRICS)
def test_the_metrics_view_answers_odd_parameters_clearly(
    staff: Client, query: str, status: int, says: str
) -> None:
    before = counts()
    response = staff.get("/metrics?" + query)
    assert response.status_code == status, response.content[:500]
    assert says in response.content.decode(errors="replace")
    assert counts() == before


@pytest.mark.urls("tests.metrics.urls")
def test_a_token_with_odd_bytes_is_refused_not_crashed() -> None:
    client = Client()
    for token in ("\x00" * 20, "é" * 40, "x" * 10_000):
        response = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert response.status_code in (401, 403), response.content[:300]

"""The metrics view: who may read it, bad queries, and the text it serves."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from django_future import schedule_job
from tests.metrics.test_metrics import samples, scrape, value

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.metrics.urls")]

TOKEN = "s3cret-token-for-the-scraper"  # noqa: S105 (a test token)


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


def test_anonymous_is_told_what_is_needed() -> None:
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert b"log in as a staff user" in response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_user_who_is_not_staff_is_refused() -> None:
    client = Client()
    client.force_login(User.objects.create_user("someone"))
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"Only staff users" in response.content


def test_staff_reads_the_same_text_as_the_command(staff: Client) -> None:
    schedule_job("1h", "tests.handlers.record", queue="mail")
    response = staff.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    served = samples(response.content.decode())
    assert value(served, "django_future_jobs", state="scheduled", queue="mail") == 1
    printed = samples(scrape())
    lag = "django_future_queue_lag_seconds"
    assert {k: v for k, v in served.items() if k[0] != lag} == {
        k: v for k, v in printed.items() if k[0] != lag
    }


def test_the_included_urls_serve_it_too(staff: Client) -> None:
    assert staff.get("/mounted/metrics").status_code == 200


@override_settings(DJANGO_FUTURE_METRICS_TOKEN=TOKEN)
def test_the_right_token_reads_and_a_wrong_one_is_refused() -> None:
    right = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert any(
        f.name == "django_future_events"
        for f in text_string_to_metric_families(right.content.decode())
    )
    wrong = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403
    assert b"Wrong metrics token" in wrong.content
    basic = Client().get("/metrics", headers={"Authorization": "Basic b3BzOm9wcw=="})
    assert basic.status_code == 401
    assert b"Authorization: Bearer" in basic.content
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert b"DJANGO_FUTURE_METRICS_TOKEN" in anonymous.content


def test_a_token_is_refused_when_none_is_set() -> None:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403
    assert b"DJANGO_FUTURE_METRICS_TOKEN is not set" in response.content


def test_bad_query_parameters_are_answered_clearly(staff: Client) -> None:
    response = staff.get("/metrics", {"window": "1h"})
    assert response.status_code == 400
    assert b"Unknown query parameter(s) window" in response.content
    response = staff.get("/metrics", {"name[]": ["django_future_jobs", "nope"]})
    assert response.status_code == 400
    assert b"No such series: nope" in response.content
    assert b"django_future_queue_lag_seconds" in response.content


def test_name_picks_series(staff: Client) -> None:
    response = staff.get(
        "/metrics", {"name[]": ["django_future_events_total", "django_future_queue_wait_seconds"]}
    )
    assert response.status_code == 200
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert names == {"django_future_events", "django_future_queue_wait_seconds"}


def test_only_reads_are_allowed(staff: Client) -> None:
    assert staff.post("/metrics").status_code == 405


def test_without_prometheus_client_the_view_says_how_to_install_it(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    response = staff.get("/metrics")
    assert response.status_code == 501
    assert b"pip install 'django-future-ledger[metrics]'" in response.content


def test_a_short_token_setting_is_refused_with_a_reason() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(DJANGO_FUTURE_METRICS_TOKEN="short"),  # noqa: S106
        pytest.raises(ImproperlyConfigured, match="at least 16 characters"),
    ):
        Client().get("/metrics")


def test_a_short_token_setting_is_a_system_check_error() -> None:
    from django.core import checks

    with override_settings(DJANGO_FUTURE_METRICS_TOKEN="short"):  # noqa: S106
        errors = [m for m in checks.run_checks() if m.id == "django_future.E012"]
    assert len(errors) == 1
    assert "at least 16 characters" in errors[0].msg


def test_a_scraper_asking_for_openmetrics_gets_it(staff: Client) -> None:
    response = staff.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_before_the_migration_the_view_says_to_migrate(staff: Client) -> None:
    with connection.cursor() as cursor:  # as before 0009 (rolled back with the test)
        cursor.execute("DROP FUNCTION django_future_metrics_fold(integer)")
    response = staff.get("/metrics")
    assert response.status_code == 503
    assert b"run `python manage.py migrate` first" in response.content

"""Settings are read through django_future.config, with their defaults in one place."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_future import config

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    with override_settings():
        from django.conf import settings

        for name in ("DJANGO_FUTURE_LEASE", "DJANGO_FUTURE_POLL_INTERVAL"):
            if hasattr(settings, name):
                delattr(settings, name)
        assert config.lease() == dt.timedelta(seconds=30)
        assert config.poll_interval() == dt.timedelta(seconds=10)
    assert config.retry_delay() == dt.timedelta(seconds=30)
    assert config.retry_max_delay() == dt.timedelta(hours=1)


@override_settings(DJANGO_FUTURE_LEASE=dt.timedelta(minutes=2), DJANGO_FUTURE_RETRY_DELAY=0.5)
def test_seconds_or_timedeltas() -> None:
    assert config.lease() == dt.timedelta(minutes=2)
    assert config.retry_delay() == dt.timedelta(milliseconds=500)


@pytest.mark.parametrize("value", [0, -1, "30", True, None, dt.timedelta(0)])
def test_bad_values_are_refused_clearly(value: object) -> None:
    with (
        override_settings(DJANGO_FUTURE_LEASE=value),
        pytest.raises(
            ImproperlyConfigured, match="DJANGO_FUTURE_LEASE must be a positive number of seconds"
        ),
    ):
        config.lease()


def test_the_listen_database_is_an_alias_or_none() -> None:
    assert config.listen_database() == "default"
    with override_settings(DJANGO_FUTURE_LISTEN_DATABASE=None):
        assert config.listen_database() is None
    for value in ("replica", "", 1, ["default"]):
        with (
            override_settings(DJANGO_FUTURE_LISTEN_DATABASE=value),
            pytest.raises(ImproperlyConfigured, match="must be None or an alias of DATABASES"),
        ):
            config.listen_database()

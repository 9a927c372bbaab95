from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.unit
def test_system_checks_pass_without_django_contrib_postgres() -> None:
    """The package asks for nothing in INSTALLED_APPS but itself and pgtrigger. Django 6
    fails its checks for ``django.contrib.postgres``'s index classes unless that app is
    installed; the ledger's BRIN index is our own class for that reason."""
    from django.apps import apps
    from django.core import checks

    assert not apps.is_installed("django.contrib.postgres")
    errors = [m for m in checks.run_checks(include_deployment_checks=False) if m.is_serious()]
    assert errors == []

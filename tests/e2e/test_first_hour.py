"""The first hour, as a newcomer spends it: a project made by ``startproject``, the
package added as the README says, a wrong step on the way, then a job run from cron's
command and its history read in SQL. Nothing from this test suite's settings is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.support import ROOT

pytestmark = pytest.mark.slow

DATABASE = "dfl_first_hour"


def _server(dbname: str) -> dict[str, str]:
    """Connection keywords for a database on the test suite's server."""
    s = connection.settings_dict
    keys = {"dbname": dbname, "user": s["USER"], "password": s["PASSWORD"], "host": s["HOST"]}
    keys["port"] = str(s["PORT"] or "")
    return {k: v for k, v in keys.items() if v}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A new project in ``tmp_path`` with a database of its own on the test server."""
    admin = psycopg.connect(**_server("postgres"), autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.execute(f"CREATE DATABASE {DATABASE}")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "shop", str(tmp_path)],
        check=True,
        cwd=tmp_path,
    )
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "__init__.py").write_text("")
    (tmp_path / "orders" / "handlers.py").write_text(
        "def remind(order_id):\n    return f'reminded order {order_id}'\n"
    )
    s = connection.settings_dict
    db = {"ENGINE": "django.db.backends.postgresql", "NAME": DATABASE}
    db.update({k: str(s[k]) for k in ("USER", "PASSWORD", "HOST", "PORT") if s[k]})
    with (tmp_path / "shop" / "settings.py").open("a") as settings:
        settings.write(
            textwrap.dedent(
                f"""
                INSTALLED_APPS += ["pgtrigger", "django_future", "orders"]
                DATABASES = {{"default": {db!r}}}
                """
            )
        )
    try:
        yield tmp_path
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.close()


def manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(project)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_from_startproject_to_a_job_run_by_cron_and_audited_in_sql(project: Path) -> None:
    assert manage(project, "check").returncode == 0

    # The step a newcomer forgets: each door says what to do, in one sentence.
    for args in (["runscheduledjobs"], ["scheduledjobs", "status"]):
        forgot = manage(project, *args)
        assert forgot.returncode == 2, args
        assert "run `python manage.py migrate` first" in forgot.stderr, forgot.stderr
        assert "Traceback" not in forgot.stderr, forgot.stderr
    for call in ("schedule_job('0s', 'orders.handlers.remind')", "run_jobs()"):
        # From Python the sentence is the exception's (the shell prints its traceback).
        forgot = manage(project, "shell", "-c", f"from django_future import *; {call}")
        assert forgot.returncode != 0, call
        last = forgot.stderr.strip().splitlines()[-1]
        assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), last
        assert last.endswith("run `python manage.py migrate` first."), last

    migrated = manage(project, "migrate")
    assert migrated.returncode == 0, migrated.stderr

    scheduled = manage(
        project,
        "shell",
        "-c",
        "from django_future import schedule_job; "
        "print(schedule_job('0s', 'orders.handlers.remind', args=[42]).pk)",
    )
    assert scheduled.returncode == 0, scheduled.stderr
    job_id = int(scheduled.stdout.split()[-1])

    # What cron runs every minute, with -v 2 to see each job: no LOGGING needed.
    ran = manage(project, "runscheduledjobs", "-v", "2")
    assert ran.returncode == 0, ran.stderr
    assert f"job {job_id} (orders.handlers.remind) completed: reminded order 42" in ran.stdout

    with psycopg.connect(**_server(DATABASE)) as conn:
        rows = conn.execute(
            "SELECT seq, kind, data->>'return_value' FROM django_future_jobevent"
            " WHERE job_id = %s ORDER BY seq",
            [job_id],
        ).fetchall()
    assert rows == [
        (1, "scheduled", None),
        (2, "started", None),
        (3, "completed", "reminded order 42"),
    ]
    verified = manage(project, "scheduledjobs", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified.stderr

"""The demo is our main job: run it end to end, in its own database, as `dev.py demo` would."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT, subprocess_env


@pytest.mark.slow
def test_demo_runs_and_its_audit_checks_pass(fresh_database: str) -> None:
    env = subprocess_env()
    env["DATABASE_URL"] = fresh_database
    env.pop("DJANGO_SETTINGS_MODULE")
    for run in (1, 2):  # a second run on the same database reports only on its own jobs
        proc = subprocess.run(
            [sys.executable, "demo/run_demo.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"run {run}:\n{proc.stdout}\n{proc.stderr}"
        assert "run_demo: OK" in proc.stdout
        assert "django_future.ledger.verify() -> []" in proc.stdout
        assert_it_ends_with_where_to_look_next(proc.stdout)


def assert_it_ends_with_where_to_look_next(stdout: str) -> None:
    """The demo's last section names every audit view the migrations create, the
    commands to run next and the admin's pages."""
    heading, _, ending = stdout.partition("== 5. where to look next ")
    assert ending, stdout[-2000:]
    assert "run_demo: OK" in heading  # the verdict comes before, the pointers last
    views = re.findall(
        r"CREATE OR REPLACE VIEW (\w+)", (ROOT / "django_future/sql/views.sql").read_text()
    )
    assert len(views) == 6
    for name in [*views, "django_future_jobs_as_of(instant)", "docs/audit.md"]:
        assert f"{name} " in ending or f"{name};" in ending or f"{name})" in ending, name
    show = re.search(r"python demo/manage.py scheduledjobs show (\d+)\n", ending)
    assert show, ending
    assert "python demo/manage.py scheduledjobs status\n" in ending
    assert "python demo/manage.py scheduledjobs verify\n" in ending
    assert "/admin/django_future/scheduledjob/" in ending
    assert "/admin/django_future/jobevent/" in ending

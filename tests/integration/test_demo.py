"""The demo is our main job: run it end to end, in its own database, as `dev.py demo` would."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, subprocess_env


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

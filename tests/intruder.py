"""A module that no allow-list of the tests names, standing for ``os.system``.

Importing it leaves a mark: the file named by ``$DJANGO_FUTURE_TEST_IMPORT_MARK`` (in a
runner process), and the module in ``sys.modules``. Only a job row written past
``schedule_job`` names it (tests/runner/test_allowlist_processes.py)."""

from __future__ import annotations

import os
from pathlib import Path

_MARK = os.environ.get("DJANGO_FUTURE_TEST_IMPORT_MARK")
if _MARK:
    Path(_MARK).write_text("imported\n")


def run(*args: object) -> str:
    return "the intruder ran"

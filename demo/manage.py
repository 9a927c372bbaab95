#!/usr/bin/env python3
"""Django's command-line utility for the demo project.

Run it from anywhere, e.g. ``DATABASE_URL=... python demo/manage.py runscheduledjobs``.
The repository root goes on ``sys.path`` so that ``demo`` (this project) and ``tools``
(for ``tools.pg.database_settings``) import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.demo_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

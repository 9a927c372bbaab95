"""One of our runners for ``bench.ours``, started the way the peers' workers are.

    python -m bench.ours_worker READY_FILE [runscheduledjobs options ...]

Sets Django up, connects and loads the command, then writes READY_FILE and waits
for a line on stdin before running ``runscheduledjobs`` (in this process, exactly
as ``manage.py`` would run it), so that no runner's start-up overlaps another's
work. At the end it prints its peak RSS in KiB, on a line of its own.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import django


def main(argv: list[str]) -> int:
    ready, options = argv[0], argv[1:]
    django.setup()
    from django.core.management import call_command, load_command_class
    from django.db import connection

    command = load_command_class("django_future", "runscheduledjobs")
    connection.ensure_connection()
    Path(ready).write_text("ready\n")
    if not sys.stdin.readline():
        return 1  # stdin closed without "go": the benchmark gave up
    call_command(command, *options)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

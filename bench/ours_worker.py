"""One of our runners for ``bench.ours``, started the way the peers' workers are.

    python -m bench.ours_worker READY_FILE [runscheduledjobs options ...]

Sets Django up, connects and loads the command, then writes READY_FILE and waits
for a line on stdin before running ``runscheduledjobs`` (in this process, exactly
as ``manage.py`` would run it), so that no runner's start-up overlaps another's
work. At the end it prints its peak RSS in KiB, on a line of its own (see peak_rss_kib).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import django


def peak_rss_kib() -> int:
    """This process's own peak resident set, in KiB.

    Not ``ru_maxrss``: on Linux, exec carries the peak of the process image it replaces
    into it, and a child that Python starts with vfork replaces its parent's, so every
    runner the bench started reported at least the bench's own RSS (a child of a
    process holding 200 MiB: ru_maxrss 213 MiB, its own peak 13 MiB). ``VmHWM`` in
    /proc/self/status is the peak of this process's memory alone."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


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
    print(peak_rss_kib())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Bad input at the management commands' options: runscheduledjobs and scheduledjobs
with each subcommand. argparse's errors reach call_command as CommandError (exit status
2 from a shell); none may reach the database as a DataError."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from django_future import schedule_job
from tests.badinput import refused
from tests.support import ROOT, subprocess_env

pytestmark = pytest.mark.django_db

# (argv, message)
ROWS: list[tuple[list[str], str]] = [
    # runscheduledjobs: counts negative, zero, overflowing; seconds not finite; queues
    (["runscheduledjobs", "--max-jobs", "-1"], "1 or more"),
    (["runscheduledjobs", "--max-jobs", "0"], "1 or more"),
    (["runscheduledjobs", "--max-jobs", str(2**31)], "at most 2147483647"),
    (["runscheduledjobs", "--max-jobs", "9" * 5000], "not a whole number|at most"),
    (["runscheduledjobs", "--batch-size", "0"], "1 or more"),
    (["runscheduledjobs", "--batch-size", str(10**30)], "at most 2147483647"),
    (["runscheduledjobs", "--batch-size", "1.5"], "not a whole number"),
    (["runscheduledjobs", "--time-limit", "-1"], "more than 0"),
    (["runscheduledjobs", "--time-limit", "nan"], "finite"),
    (["runscheduledjobs", "--time-limit", "inf"], "finite"),
    (["runscheduledjobs", "--time-limit", "1e400"], "finite"),
    (["runscheduledjobs", "--queue", "q" * 101], "not a queue name"),
    (["runscheduledjobs", "--queue", "q\x00"], "not a queue name"),
    (["runscheduledjobs", "--queue", "\udcff"], "not a queue name"),
    (["runscheduledjobs", "--exclude-queue", ""], "not a queue name"),
    (["runscheduledjobs", "--exclude-queue", "two words"], "not a queue name"),
    # scheduledjobs show: ids that are no job's
    (["scheduledjobs", "show", "abc"], "invalid int value"),
    (["scheduledjobs", "show", "-1"], "no events for job -1"),
    (["scheduledjobs", "show", "0"], "no events for job 0"),
    (["scheduledjobs", "show", str(2**63)], f"no events for job {2**63}"),
    (["scheduledjobs", "show", str(10**30)], "no events for job"),
    # scheduledjobs status --as-of: times that are no times
    (["scheduledjobs", "status", "--as-of", "yesterday"], "not a date and time"),
    (["scheduledjobs", "status", "--as-of", "2026-13-01T00:00"], "not a date and time"),
    (["scheduledjobs", "status", "--as-of", "2026-01-01T25:00"], "not a date and time"),
    (["scheduledjobs", "status", "--as-of", "2026-01-01\x00"], "not a date and time"),
    (["scheduledjobs", "status", "--as-of", "99999-01-01T00:00"], "not a date and time"),
    # scheduledjobs prune: ages too long, negative, not ages; a name for the record
    (["scheduledjobs", "prune", "--older-than", "99999999999d"], "too long a duration"),
    (["scheduledjobs", "prune", "--older-than", "9999999d"], "at most 1000 years"),
    (["scheduledjobs", "prune", "--older-than=-5d"], "not a duration"),
    (["scheduledjobs", "prune", "--older-than", "5d\x00"], "not a duration"),
    (
        ["scheduledjobs", "prune", "--older-than", "5d", "--by", "x" * 256],
        "not a name for the record",
    ),
    (
        ["scheduledjobs", "prune", "--older-than", "5d", "--by", "me\x00"],
        "not a name for the record",
    ),
    (["scheduledjobs", "prune", "--older-than", "5d", "--by", "\udcff"], "not valid text"),
    (["scheduledjobs", "prune", "--older-than", "5d", "--by", ""], "not a name for the record"),
    (["scheduledjobs", "nosuchaction"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "match"), ROWS, ids=[" ".join(r[0])[:60] for r in ROWS])
def test_bad_options_are_refused_and_nothing_is_written(argv: list[str], match: str) -> None:
    schedule_job("0s", "tests.handlers.record")  # a due job that must stay as it is
    with refused(CommandError, match):
        call_command(*argv)


def test_a_ledger_with_refused_input_verifies() -> None:
    for argv, _match in ROWS:
        with pytest.raises(CommandError):
            call_command(*argv)
    call_command("scheduledjobs", "verify")  # raises CommandError on any problem


@pytest.mark.parametrize(
    "argv",
    [
        [b"runscheduledjobs", b"--queue", b"caf\xe9"],  # Latin-1, not UTF-8
        [b"scheduledjobs", b"prune", b"--older-than", b"5d", b"--by", b"\xff\xfe"],
    ],
    ids=["runscheduledjobs --queue", "scheduledjobs prune --by"],
)
@pytest.mark.usefixtures("committed_db")
def test_bytes_that_are_not_utf8_in_argv_exit_2_with_a_message(argv: list[bytes]) -> None:
    """As a shell passes them: Python decodes argv with surrogateescape, so such bytes
    arrive as lone surrogates, which the commands must refuse before the database sees
    them."""
    proc = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"django", *argv],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert "not a queue name" in err or "not valid text" in err

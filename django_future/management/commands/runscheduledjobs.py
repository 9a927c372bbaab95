"""``manage.py runscheduledjobs``: run due jobs, from cron or as a long-running worker."""

from __future__ import annotations

import argparse
import gc
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_future import database
from django_future.runner import DatabaseLostError, JobFailedError, Runner


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    if value > _LARGEST:
        raise argparse.ArgumentTypeError(f"must be at most {_LARGEST}, not {value}")
    return value


# The largest count an option takes: the database counts in 32-bit integers.
_LARGEST = 2**31 - 1


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds, more than 0, not {text}"
        )
    return value


def _queue_name(text: str) -> str:
    bad = not text or any(c.isspace() or c == "\x00" for c in text) or len(text) > 100
    try:
        text.encode("utf-8")  # bytes that are not UTF-8 reach argv as lone surrogates
    except UnicodeEncodeError:
        bad = True
    if bad:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a queue name (1 to 100 characters of valid text, no whitespace)"
        )
    return text


class Command(BaseCommand):
    help = (
        "Recover jobs of dead runners, expire overdue jobs, then run every job that was due "
        "when the run started and exit; jobs that fall due during the run (retries, jobs "
        "scheduled meanwhile) wait for the next run. With --worker, keep waiting for work "
        "instead. Safe to start from cron on any number of machines at once: each job runs in "
        "exactly one runner. SIGTERM or SIGINT finishes the job in hand, hands back the rest "
        "and exits 0; a second signal exits at once. -v 2 prints a line per job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-d",
            "--delete-completed",
            action="store_true",
            help="Remove completed jobs from the job table (their events stay in the ledger).",
        )
        parser.add_argument(
            "-i",
            "--ignore-errors",
            action="store_true",
            help="Record failed jobs and go on, instead of stopping at the first failure.",
        )
        parser.add_argument(
            "--max-jobs",
            type=_positive_int,
            metavar="N",
            help="Stop after running N jobs.",
        )
        parser.add_argument(
            "--time-limit",
            type=_positive_seconds,
            metavar="SECONDS",
            help="Stop claiming jobs after this many seconds (finishing the job in hand), so "
            "that overlapping cron runs do not pile up.",
        )
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=1,
            metavar="N",
            help="Claim and start up to N due jobs at a time (default 1), and record their "
            "completions together. Jobs of a batch not called when the runner stops are "
            "handed back; a runner killed mid-batch leaves its whole batch to recovery.",
        )
        parser.add_argument(
            "--worker",
            action="store_true",
            help="Keep running: sleep until the next job is due or a job is scheduled "
            "(LISTEN/NOTIFY), until stopped by a signal or --time-limit.",
        )
        parser.add_argument(
            "--queue",
            action="append",
            type=_queue_name,
            metavar="NAME",
            dest="queues",
            help="Run only jobs of this queue; repeat for several (default: every queue).",
        )
        parser.add_argument(
            "--exclude-queue",
            action="append",
            type=_queue_name,
            metavar="NAME",
            dest="exclude_queues",
            help="Leave the jobs of this queue to other runners; repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        database.require_migrated()
        verbosity = options["verbosity"]
        # Everything loaded so far (Django, the apps, their modules) lives as long as
        # this process: moved out of the garbage collector's generations, it is not
        # traversed again by every full collection while jobs run. Measured with 4
        # runners on 10,000 jobs: about 10% less runner CPU per job. Start-up's garbage
        # is collected first, or freezing would keep it.
        gc.collect()
        gc.freeze()
        runner = Runner(
            delete_completed=options["delete_completed"],
            ignore_errors=options["ignore_errors"],
            batch_size=options["batch_size"],
            max_jobs=options["max_jobs"],
            time_limit=options["time_limit"],
            worker=options["worker"],
            queues=options["queues"],
            exclude_queues=options["exclude_queues"],
            # -v 2 prints a line per job here, whatever the project's LOGGING says;
            # the log records go wherever the project sends them, as always.
            echo=self.stdout.write if verbosity >= 2 else None,
            exit_on_second_signal=True,
        )
        try:
            report = runner.run()
        except JobFailedError as exc:
            # Reported once: what failed, its traceback, and what to do about it.
            raise CommandError(
                f"{exc}.\n{exc.error.rstrip()}\n"
                f"Its history: manage.py scheduledjobs show {exc.job.pk}. "
                "Use --ignore-errors (-i) to record failures and run past them.",
                returncode=1,
            ) from exc
        except DatabaseLostError as exc:
            raise CommandError(f"runscheduledjobs: {exc}", returncode=2) from exc
        # Quiet on success at the default verbosity: cron mails whatever is printed.
        if verbosity >= 2 or (runner.stopping and verbosity >= 1):
            how = "stopped by signal" if runner.stopping else "done"
            self.stdout.write(f"runscheduledjobs ({runner.identity}): {how}: {report}")

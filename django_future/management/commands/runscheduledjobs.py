"""``manage.py runscheduledjobs``: one pass over due jobs, for cron."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_future.runner import JobFailedError, Runner


class Command(BaseCommand):
    help = (
        "Expire overdue jobs, then run every due job once and exit. Safe to start from "
        "cron on any number of machines at once: each job runs in exactly one runner."
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

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] >= 2:
            logging.getLogger("django_future").setLevel(logging.INFO)
        runner = Runner(
            delete_completed=options["delete_completed"],
            ignore_errors=options["ignore_errors"],
        )
        try:
            report = runner.run()
        except JobFailedError as exc:
            sys.stderr.write(f"{exc}\n\n{exc.error}\n")
            raise CommandError(
                f"{exc} (its traceback is above and in the ledger; "
                "use --ignore-errors to run past failures)",
                returncode=1,
            ) from exc
        # Quiet on success at the default verbosity: cron mails whatever is printed.
        if options["verbosity"] >= 2:
            self.stdout.write(f"runscheduledjobs ({runner.identity}): {report}")

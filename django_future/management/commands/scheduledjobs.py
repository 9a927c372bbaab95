"""``manage.py scheduledjobs``: look at and look after the job ledger.

    scheduledjobs status [--as-of WHEN]   counts by status, oldest due job, jobs per runner
    scheduledjobs show JOB_ID             one job's timeline
    scheduledjobs verify                  projection against events, and the hash chains
    scheduledjobs rebuild                 recompute the job table from the ledger
    scheduledjobs prune --older-than AGE  remove finished jobs' events, leaving a record
    scheduledjobs grant-audit ROLE        let ROLE read the ledger and its views, nothing else
    scheduledjobs revoke-audit ROLE       take that back
    scheduledjobs metrics                 the Prometheus metrics (docs/metrics.md)

Tables for people by default, ``--json`` for machines. ``verify`` exits 1 when
it finds a problem; every subcommand exits 2 on bad input. Every time printed, in
tables and JSON alike, is in the current time zone (TIME_ZONE) with its UTC offset,
and a time typed without an offset is read in that zone: one convention for all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_future import audit, auditrole, database, ledger, metrics, periodic
from django_future.scheduler import parse_duration


def _instant(text: str) -> dt.datetime:
    try:
        value = parse_datetime(text.strip().replace(" ", "T", 1))
    except ValueError:  # well formed, but no such time: month 13, hour 25
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date and time; use ISO 8601, e.g. 2026-11-26T03:12 or "
            "'2026-11-26 03:12:00+01:00'"
        )
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value


def _who(text: str) -> str:
    """A name for the record of a prune (PruneRecord.by, at most 255 characters)."""
    try:
        text.encode("utf-8")  # bytes that are not UTF-8 reach argv as lone surrogates
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid text") from None
    if not text or "\x00" in text or len(text) > 255:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a name for the record (1 to 255 characters, no NUL)"
        )
    return text


def _age(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned text columns under a header line."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _local(when: dt.datetime | None) -> str:
    return "-" if when is None else str(audit.local_time(when))


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s ago"


def _recovery(lease_left: float | None, stopped: bool) -> str:
    """When another runner may take this runner's jobs: at once if it signed off or its
    lease ran out, else when the lease runs out unless a heartbeat renews it first."""
    if stopped:
        return "now (it stopped)"
    if lease_left is None:
        return "now (unknown runner)"
    if lease_left <= 0:
        return f"now (lease ran out {-lease_left:.1f} s ago)"
    return f"in {lease_left:.1f} s unless renewed"


TIMES = (
    "Times are shown in the current time zone (the TIME_ZONE setting) as ISO 8601 with "
    "their UTC offset; a time given without an offset is read in that zone."
)


class Command(BaseCommand):
    help = (
        "Look at and look after the job ledger: status, show, periodic, verify, rebuild, "
        "prune, grant-audit, revoke-audit, metrics. " + TIMES
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        p = sub.add_parser(
            "status",
            help="Counts by status, oldest due job, jobs per runner.",
            description="Counts by status, the oldest due job, and the jobs each runner "
            "holds with its last heartbeat and when its jobs become recoverable. " + TIMES,
        )
        p.add_argument(
            "--as-of",
            type=_instant,
            metavar="WHEN",
            help="The queue as it was at WHEN (ISO 8601; without an offset, in TIME_ZONE).",
        )
        p = sub.add_parser(
            "show",
            help="One job's timeline.",
            description="One job's events, oldest first. " + TIMES,
        )
        p.add_argument("job_id", type=int)
        sub.add_parser(
            "periodic",
            help="Each periodic schedule: next tick, last tick, last outcome.",
            description="Each periodic schedule of DJANGO_FUTURE_PERIODIC and @periodic: its "
            "cron, next tick, newest tick made, and that job's outcome. " + TIMES,
        )
        sub.add_parser("verify", help="Check the job table and the hash chains against events.")
        sub.add_parser("rebuild", help="Recompute the job table from the ledger.")
        p = sub.add_parser("prune", help="Remove events of finished jobs older than AGE.")
        p.add_argument(
            "--older-than", type=_age, required=True, metavar="AGE", help="e.g. 90d or 12w"
        )
        p.add_argument(
            "--by", type=_who, help="Who prunes, for the record (default: this process)."
        )
        p.add_argument("--dry-run", action="store_true", help="Say what would go; remove nothing.")
        for action, verb in (("grant-audit", "Give"), ("revoke-audit", "Take back from")):
            p = sub.add_parser(
                action,
                help=f"{verb} ROLE read-only access to the ledger and its audit views.",
                description=f"{verb} an existing PostgreSQL role SELECT on the audit views, "
                "the events table and the prune and periodic records (and USAGE on their "
                "schema); nothing else. See docs/audit.md, 'A role for auditors'.",
            )
            p.add_argument("role", metavar="ROLE")
        for p in sub.choices.values():
            p.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
        sub.add_parser(
            "metrics",
            help="The Prometheus metrics, as the metrics view serves them.",
            description="The ledger's metrics in Prometheus text format, the text the "
            "metrics view serves (docs/metrics.md). Needs prometheus-client: "
            "pip install 'django-future-ledger[metrics]'.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        database.require_migrated()
        action = options["action"]
        if action == "metrics":
            self.do_metrics()
            return
        result = getattr(self, f"do_{action.replace('-', '_')}")(options)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, default=str))
        if action == "verify" and result["problems"]:
            raise CommandError(
                f"{len(result['problems'])} problem(s) found in the ledger", returncode=1
            )

    def say(self, options: dict[str, Any], text: str = "") -> None:
        if not options["json"]:
            self.stdout.write(text)

    def do_status(self, options: dict[str, Any]) -> dict[str, Any]:
        report = audit.status(options["as_of"])
        when = f" as of {report['as_of']}" if report["as_of"] else ""
        self.say(options, f"jobs{when}: {report['total']}")
        self.say(options, table(["status", "jobs"], sorted(report["counts"].items())))
        oldest = report["oldest_due"]
        self.say(options)
        if oldest:
            self.say(
                options,
                f"oldest due job: {oldest['job_id']} ({oldest['callable_name']}), "
                f"due {oldest['lag_s']:.1f} s ago",
            )
        else:
            self.say(options, "no job is due")
        if report["runners"]:
            self.say(options)
            rows = [
                [
                    r["runner"],
                    r["running"],
                    r["claimed"],
                    _ago(r["last_heartbeat_age_s"]),
                    _recovery(r["lease_left_s"], r["stopped"]),
                ]
                for r in report["runners"]
            ]
            headers = ["runner", "running", "claimed", "last heartbeat", "its jobs recoverable"]
            self.say(options, table(headers, rows))
        return report

    def do_show(self, options: dict[str, Any]) -> dict[str, Any]:
        events = audit.timeline(options["job_id"])
        if not events:
            raise CommandError(f"no events for job {options['job_id']}", returncode=2)
        scheduled = events[0]["data"] if events[0]["kind"] == "scheduled" else {}
        queue, priority = scheduled.get("queue", "default"), scheduled.get("priority", 0)
        key, holds = scheduled.get("unique_key"), scheduled.get("unique_while")
        unique = f", unique key {key!r} while {holds}" if key is not None else ""
        lock = scheduled.get("lock")
        self.say(
            options,
            f"job {options['job_id']}: queue {queue}, priority {priority}{unique}"
            + (f", lock {lock}" if lock else ""),
        )
        rows = [[e["seq"], e["kind"], e["at"], e["runner"], e["detail"]] for e in events]
        self.say(options, table(["seq", "kind", "at", "runner", "detail"], rows))
        return {
            "job_id": options["job_id"],
            "queue": queue,
            "priority": priority,
            "unique_key": key,
            "unique_while": holds,
            "lock": lock,
            "events": events,
        }

    def do_periodic(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        schedules = periodic.overview()
        rows = [
            [
                s.name,
                s.cron,
                s.timezone,
                _local(s.next_tick),
                _local(s.last_tick),
                s.last_job if s.last_job is not None else "-",
                s.last_outcome or "-",
            ]
            for s in schedules
        ]
        headers = ["schedule", "cron", "timezone", "next tick", "last tick", "job", "outcome"]
        self.say(options, table(headers, rows) if rows else "no periodic schedules")
        return [
            {
                "schedule": s.name,
                "cron": s.cron,
                "timezone": s.timezone,
                "catch_up": s.catch_up,
                "next_tick": s.next_tick.isoformat() if s.next_tick else None,
                "last_tick": s.last_tick.isoformat() if s.last_tick else None,
                "last_job": s.last_job,
                "last_outcome": s.last_outcome,
            }
            for s in schedules
        ]

    def do_verify(self, options: dict[str, Any]) -> dict[str, Any]:
        problems = ledger.verify()
        for problem in problems:
            self.say(options, str(problem))
        if not problems:
            self.say(options, "ok: every job row is the fold of its events; every chain holds")
        return {"problems": [str(p) for p in problems]}

    def do_rebuild(self, options: dict[str, Any]) -> dict[str, Any]:
        changed = ledger.rebuild()
        self.say(options, f"rebuilt the job table from the ledger; {changed} job(s) differed")
        return {"changed": changed}

    def do_metrics(self) -> None:
        try:
            text, _ = metrics.render()
        except metrics.MetricsUnavailable as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(text.decode(), ending="")

    def do_prune(self, options: dict[str, Any]) -> dict[str, Any]:
        result = audit.prune(options["older_than"], by=options["by"], dry_run=options["dry_run"])
        verb = "would remove" if result.dry_run else "removed"
        self.say(
            options,
            f"{verb} {result.jobs} finished job(s) and their {result.events} event(s), "
            f"last touched before {audit.local_time(result.cutoff)}",
        )
        if result.record_id is not None:
            self.say(
                options, f"recorded as prune {result.record_id} (digest {result.heads_digest})"
            )
        return result.as_dict()

    def do_grant_audit(self, options: dict[str, Any]) -> dict[str, Any]:
        return self._audit_role(options, auditrole.grant, "may now read")

    def do_revoke_audit(self, options: dict[str, Any]) -> dict[str, Any]:
        return self._audit_role(options, auditrole.revoke, "may no longer read")

    def _audit_role(self, options: dict[str, Any], change: Any, outcome: str) -> dict[str, Any]:
        try:
            statements = change(options["role"])
        except auditrole.RoleError as exc:
            raise CommandError(str(exc), returncode=2) from None
        names = ", ".join((*auditrole.AUDIT_VIEWS, *auditrole.AUDIT_TABLES))
        self.say(options, f"role {options['role']} {outcome}: {names}")
        return {"role": options["role"], "statements": statements}

"""What the operator commands report: queue status, one job's timeline, pruning.

Plain functions returning plain data (dicts and dataclasses), so that the
``scheduledjobs`` command can print them as tables or as JSON, and other code
(a health check, a dashboard) can use them directly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_future import ledger
from django_future.models import JobEvent, PruneRecord
from django_future.sql import fetch

__all__ = ["PruneResult", "local_time", "prune", "status", "timeline"]


def status(as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Counts by status, the oldest due job and its lag, and who holds what.

    With ``as_of``, counts and lag are those of that past instant (folded from
    the ledger); runners are always as they are now.
    """
    params = {"as_of": as_of}
    counts = dict(fetch("status_counts", params))
    oldest = fetch("oldest_due", params)
    runners = [
        {
            "runner": runner,
            "running": running,
            "claimed": claimed,
            # What is known, not a verdict on life: a killed runner's last heartbeat
            # grows old, and its jobs become recoverable when its lease runs out.
            "last_heartbeat_age_s": _seconds(age),
            "lease_left_s": _seconds(left),
            "stopped": bool(stopped),
        }
        for runner, running, claimed, age, left, stopped in fetch("in_hand_by_runner", params)
    ]
    return {
        "as_of": local_time(as_of) if as_of else None,
        "counts": counts,
        "total": sum(counts.values()),
        "oldest_due": (
            {"job_id": oldest[0][0], "callable_name": oldest[0][1], "lag_s": float(oldest[0][2])}
            if oldest
            else None
        ),
        "runners": runners if as_of is None else [],
    }


def local_time(value: dt.datetime | str | None) -> str | None:
    """An instant as the commands show it: ISO 8601 in the current time zone (Django's
    TIME_ZONE, unless activated otherwise), with its UTC offset. Strings are instants
    read from events' JSON; anything that does not parse as one is returned as it is."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None or timezone.is_naive(parsed):
            return value
        value = parsed
    if value is None:
        return None
    return timezone.localtime(value).isoformat()


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def timeline(job_id: int) -> list[dict[str, Any]]:
    """Every event of one job, oldest first, with a one-line detail. Empty if unknown."""
    events = JobEvent.objects.filter(job_id=job_id).order_by("seq")
    return [
        {
            "seq": e.seq,
            "kind": e.kind,
            "at": local_time(e.at),
            "runner": e.runner,
            "detail": _detail(e.kind, e.data),
            "data": e.data,
            "hash": e.hash,
        }
        for e in events
    ]


def _detail(kind: str, data: dict[str, Any]) -> str:
    if kind == "scheduled":
        key = data.get("unique_key")
        return (
            f"{data.get('callable_name')} due {local_time(data.get('time_slot_start'))}"
            f" in queue {data.get('queue', 'default')}, priority {data.get('priority', 0)}"
            + (f", unique key {key!r}" if key is not None else "")
            + (f", lock {data['lock']}" if data.get("lock") else "")
        )
    if kind in ("failed", "abandoned"):
        return str(data.get("exception") or "")
    if kind == "completed":
        return f"returned {data.get('return_value')!r}"
    if kind == "retry":
        return (
            f"attempt {data.get('attempt')} of {data.get('of')} due {local_time(data.get('due'))}"
        )
    if kind == "cancelled":
        return f"by {data.get('by')}: {data.get('reason')}"
    if kind in ("released", "deleted"):
        return str(data.get("reason") or "")
    if kind == "expired":
        return f"window closed {local_time(data.get('time_slot_end'))}"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneResult:
    cutoff: dt.datetime
    jobs: int
    events: int
    job_ids: list[int]
    heads_digest: str
    dry_run: bool
    record_id: int | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = local_time(self.cutoff)
        return out


def prune(older_than: dt.timedelta, *, by: str | None = None, dry_run: bool = False) -> PruneResult:
    """Remove the events (and rows) of finished jobs whose last event is older than
    ``older_than``, and record what was removed in ``PruneRecord``.

    The one removal of events: the ledger deletes them (``ledger.remove_jobs``,
    past the append-only trigger), in one transaction with their record.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            params: list[Any] = [older_than]
            cursor.execute("SELECT statement_timestamp() - %s::interval", params)
            (cutoff,) = cursor.fetchone()
        found = fetch("prunable", {"cutoff": cutoff})
        job_ids = [row[0] for row in found]
        events = sum(row[2] for row in found)
        digest = hashlib.sha256(
            "".join(f"{job_id}:{head}\n" for job_id, head, _n in found).encode()
        ).hexdigest()
        record_id = None
        if job_ids and not dry_run:
            ledger.remove_jobs(job_ids)
            record = PruneRecord.objects.create(
                by=by or f"python:{ledger.runner_identity()}",
                cutoff=cutoff,
                jobs=len(job_ids),
                events=events,
                job_ids=job_ids,
                heads_digest=digest,
            )
            record_id = record.pk
    return PruneResult(
        cutoff=cutoff,
        jobs=len(job_ids),
        events=events,
        job_ids=job_ids,
        heads_digest=digest,
        dry_run=dry_run,
        record_id=record_id,
    )

"""Job callables used by the tests (imported by dotted path, also in runner subprocesses)."""

from __future__ import annotations

import os
import time
from typing import Any

from django_future import job_as_parameter, schedule_job
from tests.testapp.models import JobRun, Order

calls: list[tuple[Any, ...]] = []
current_runner: Any = None  # set by a test, for stop_the_runner


def record(*args: Any, **kwargs: Any) -> str:
    calls.append((args, kwargs))
    return f"recorded {list(args)} {kwargs}"


def returns_none() -> None:
    calls.append(("none",))


def returns_number() -> int:
    return 42


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def touch_order(order: Order, times: int = 1) -> str:
    """A dotted-path handler bound to a content object: gets it first."""
    return order.remind(times)


@job_as_parameter
def with_job(job: Any, *args: Any) -> str:
    calls.append((job, *args))
    return f"job {job.pk}"


@job_as_parameter
def with_job_and_order(job: Any, order: Order) -> str:
    calls.append((job, order))
    return f"job {job.pk} order {order.number}"


@job_as_parameter
def run_once(job: Any, sleep: float = 0.0) -> int:
    """Writes a row under a unique constraint: a second run of the job would fail."""
    if sleep:
        time.sleep(sleep)
    JobRun.objects.create(job_id=job.pk, attempt=job.attempts, pid=os.getpid())
    return job.pk


@job_as_parameter
def slow(job: Any, seconds: float = 1.0) -> int:
    """Records its start (per attempt), then takes its time."""
    JobRun.objects.create(job_id=job.pk, attempt=job.attempts, pid=os.getpid())
    time.sleep(seconds)
    return job.attempts


@job_as_parameter
def fails_until(job: Any, succeed_on: int) -> str:
    """Fails on attempts before ``succeed_on``."""
    if job.attempts < succeed_on:
        raise RuntimeError(f"attempt {job.attempts} fails on purpose")
    return f"succeeded on attempt {job.attempts}"


def write_then_fail(number: str) -> None:
    """For atomic jobs: its write must not survive its exception."""
    Order.objects.create(number=number)
    raise RuntimeError(f"failed after writing order {number}")


def write(number: str) -> str:
    Order.objects.create(number=number)
    return number


# --- the stress mix (scripts/stress.py): every attempt leaves a row, unique per attempt ---


def _ran(job: Any) -> None:
    JobRun.objects.create(job_id=job.pk, attempt=job.attempts, pid=os.getpid())


@job_as_parameter
def stress_quick(job: Any) -> None:
    _ran(job)


@job_as_parameter
def stress_fail(job: Any) -> None:
    _ran(job)
    raise RuntimeError("this job always fails")


@job_as_parameter
def stress_flaky(job: Any) -> str:
    _ran(job)
    if job.attempts < 2:
        raise RuntimeError("first attempts fail")
    return "recovered"


@job_as_parameter
def stress_slow(job: Any) -> None:
    _ran(job)
    time.sleep(0.3 + (job.pk % 7) / 5)


def stop_the_runner() -> None:
    """What a SIGTERM handler does, from inside a job."""
    current_runner.request_stop()


def interrupt() -> None:
    raise KeyboardInterrupt


not_callable = 7


@job_as_parameter
def taken_away(job: Any) -> str:
    """Its attempt is recovered elsewhere while it runs (as if its runner's lease had
    lapsed): another runner appends "abandoned"."""
    from django_future import ledger

    ledger.append(
        job.pk, "abandoned", {"reason": "lease lapsed"}, runner="other:1", only_at_seq=job.last_seq
    )
    return "finished anyway"


@job_as_parameter
def again(job: Any) -> str:
    """Schedules a copy of itself, due at once, every time it runs."""
    copy = job.reschedule("0s")
    return f"rescheduled as {copy.pk}"


def returns_structure(*items: Any) -> dict[str, Any]:
    """A return value JSON can carry: its completed event keeps it as "result"."""
    return {"items": list(items), "ok": True, "ratio": 0.5}


def returns_nan() -> float:
    """A float JSON (and PostgreSQL's jsonb) cannot carry."""
    return float("nan")


def returns_object() -> object:
    """A return value json.dumps refuses: only its text is kept."""
    return Order


@job_as_parameter
def same_key_then_fail(job: Any, key: str) -> None:
    """Asks for a job with the running job's unique key, records what came back, then
    fails, so that the runner writes "failed" and "retry" while that job may hold it."""
    other = schedule_job(
        "1h", "tests.handlers.record", unique_key=key, unique_while=job.unique_while
    )
    calls.append((job.pk, other.pk, other.created))
    raise ValueError("failing after asking for the same key")

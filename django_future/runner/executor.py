"""Calling one job: find its callable, call it (in a transaction if it is ``atomic``),
and record the outcome: ``completed``, or ``failed`` and then ``retry`` if it has
attempts left.

A runner's loop hands each job it started to its ``Executor``. A plain job's
completion is not sent at once: the executor keeps it (``unrecorded``) and the loop
sends it with its next claim, in the same statement and commit.

A Django task (a dotted path to a ``Task``, enqueued by ``django_future.backends``) is
called through ``django_future.taskhook``, which the backend fills: the runner never
imports the backend. Its completion goes with the next claim, as a plain job's does, and
the attempt hears when its outcome is in the ledger (for ``task_finished``). A coroutine
function runs through asgiref's ``async_to_sync``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import traceback
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.db import InterfaceError, OperationalError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_future import allowlist, ledger, taskhook
from django_future.callables import import_callable
from django_future.models import EventKind, ScheduledJob
from django_future.retries import backoff
from django_future.runner.report import (
    DatabaseLostError,
    JobFailedError,
    RunReport,
    current_exception,
    one_line,
    say,
)

__all__ = ["Executor", "TakenError", "exception_class", "resolve", "result_json"]

# One encoder for every result: json.dumps with options builds one per call.
_RESULT_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# \u0000 that is an escape (not an escaped backslash followed by "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def result_json(result: object) -> str | None:
    """A callable's return value as JSON text, for its ``completed`` event's ``result``;
    None when it returned None or JSON cannot carry it: what ``json.dumps`` refuses
    (other types, NaN and infinities, circular structures), and strings that
    PostgreSQL's jsonb refuses (a NUL character, a lone surrogate). The event's
    ``return_value`` keeps ``str(result)`` either way."""
    if result is None:
        return None
    try:
        text = _RESULT_ENCODER.encode(result)
        text.encode("utf-8")  # a lone surrogate cannot be sent, nor stored in jsonb
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        return None
    return text


def exception_class(exc: BaseException) -> str:
    """``<module>.<qualname>`` of an exception's class, as its ``failed`` event records it."""
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


class TakenError(Exception):
    """The job is no longer this runner's to finish."""


class Executor:
    """Calls the jobs of one runner, one at a time, and records each outcome.

    Made once per ``Runner``, with its settings; ``db`` is Django's connection for
    the runner's thread (see ``Runner.run``)."""

    def __init__(
        self,
        *,
        identity: str,
        delete_completed: bool,
        ignore_errors: bool,
        echo: Callable[[str], None] | None,
        db: BaseDatabaseWrapper,
    ) -> None:
        self.identity = identity
        self.delete_completed = delete_completed
        self.ignore_errors = ignore_errors
        self.echo = echo
        self.db = db
        self.in_hand: ScheduledJob | None = None  # named by DatabaseLostError
        # Plain jobs' completions, sent with the runner's next claim (one round trip
        # and one commit for a whole batch); see Runner._claim.
        self.unrecorded: list[ledger.Completion] = []
        self.unrecorded_since = 0.0
        self._completing = False  # the job returned; its outcome is being recorded
        # The job in hand is a Django task (see taskhook.py): its attempt hears when its
        # outcome is in the ledger.
        self._task_call: taskhook.TaskCall | None = None
        # Tasks whose completion is among ``unrecorded``: each attempt hears of it once
        # the runner's next step has recorded it (``settle``).
        self._finishing: dict[int, taskhook.TaskCall] = {}
        self._called_at = 0.0  # when the job in hand was called (time.monotonic)

    def execute(self, job: ScheduledJob, report: RunReport) -> None:
        """Run a started job and append its outcome (and a retry, if it has attempts left).

        A plain job's completion is kept for the runner's next claim (``run`` sends
        whatever is left when it ends)."""
        self.in_hand = job
        say(
            self.echo,
            logging.INFO,
            "job %s (%s) started, attempt %s",
            job.pk,
            job.callable_name,
            job.attempts,
        )
        self._completing = False
        self._task_call = None
        self._called_at = time.monotonic()
        try:
            value = self._call_and_complete(job)
        except TakenError as exc:
            say(self.echo, logging.WARNING, "job %s (%s): %s", job.pk, job.callable_name, exc)
        except (OperationalError, InterfaceError) as exc:
            if self._completing:  # recording the outcome failed: the connection is gone
                raise DatabaseLostError(exc, job) from exc
            try:
                self._record_failure(job, report)
            finally:
                self._task_finished(completed=False)
        except BaseException:
            try:
                self._record_failure(job, report)
            finally:
                self._task_finished(completed=False)
        else:
            if job.pk not in self._finishing:  # else settle() tells the task, once recorded
                self._task_finished(completed=True)
            report.completed.append(job.pk)
            if self.delete_completed:
                report.deleted.append(job.pk)
            say(
                self.echo,
                logging.INFO,
                "job %s (%s) completed: %s",
                job.pk,
                job.callable_name,
                value,
            )
        # Left set if an exception escapes, so that DatabaseLostError can name the job.
        self.in_hand = None

    def _callable(self, job: ScheduledJob) -> tuple[Callable[..., Any], list[Any]]:
        """What to call: a Django task through the task hook, a coroutine function
        through asgiref's ``async_to_sync``, anything else as it is."""
        func, args = resolve(job)
        hook = taskhook.registered()
        call = hook.wrap(job, func) if hook is not None else None
        if call is not None:
            self._task_call = call
            return call, args
        if not callable(func):
            # A django.tasks Task runs only as the registered task of its own path.
            home = getattr(func, "module_path", None)
            raise allowlist.CallableRefusedError(
                f"{job.callable_name!r} imports a {type(func).__name__}"
                + (f" registered as {home!r}" if isinstance(home, str) else "")
                + ", not a callable or the registered task of that path; not run"
            )
        if iscoroutinefunction(func):
            return async_to_sync(func), args
        return func, args

    def _task_finished(self, *, completed: bool) -> None:
        """Tell the task in hand that its outcome is recorded (task_finished):
        ``completed``, the value its call returned, at the seq after the row in hand."""
        if self._task_call is not None:
            self._task_call.finished(completed=completed)

    def _call_and_complete(self, job: ScheduledJob) -> str | None:
        func, args = self._callable(job)
        if job.atomic:
            # The job's writes and its completion commit together, or not at all.
            with transaction.atomic():
                result = func(*args, **job.kwargs)
                return self._complete(job, result)
        if self.db.in_atomic_block:
            # Called inside someone's transaction (a test, a shell): keep a job's
            # database error from poisoning it, as autocommit would.
            with transaction.atomic():
                result = func(*args, **job.kwargs)
        else:
            result = func(*args, **job.kwargs)
        if not self.delete_completed:
            # One statement, atomic by itself: it goes with the runner's next claim. A
            # task hears of it once that step has recorded it (settle).
            value = None if result is None else str(result)
            if not self.unrecorded:
                self.unrecorded_since = time.monotonic()
            self.unrecorded.append((job, value, self._call_seconds(), result_json(result)))
            if self._task_call is not None:
                self._finishing[job.pk] = self._task_call
            return value
        with transaction.atomic():
            return self._complete(job, result)

    def settle(
        self,
        done: list[ledger.Completion],
        refused: set[int],
        report: RunReport,
        *,
        at: dt.datetime | None = None,
    ) -> None:
        """The completions in ``done`` were sent (by the runner's loop, with its claim):
        all were recorded but those of ``refused``, which ``report`` counted too soon.
        ``at``: when they were recorded, if the loop knows (None: it does not)."""
        self.unrecorded = []
        self.in_hand = None
        for job, *_ in done:
            call = self._finishing.pop(job.pk, None)
            if call is not None and job.pk not in refused:
                call.finished(completed=True, at=at)
        if not refused:
            return
        for job, *_ in done:
            if job.pk not in refused:
                continue
            # The attempt was recovered elsewhere after this runner's lease lapsed
            # (a completion is appended only at the seq this runner saw).
            report.completed.withdraw(job.pk)  # counted when its call returned
            say(
                self.echo,
                logging.WARNING,
                "job %s (%s): the attempt was taken from this runner (its lease lapsed) "
                "and recovered elsewhere; its completion is not recorded",
                job.pk,
                job.callable_name,
            )

    def _call_seconds(self) -> float:
        """How long the job in hand has run, by this runner's clock. Outcome events carry
        it: in a batch, events are written per batch, so their times cannot say it."""
        return round(time.monotonic() - self._called_at, 6)

    def _append_mine(self, job: ScheduledJob, kind: EventKind, data: dict[str, Any]) -> None:
        """Append the outcome of the attempt this runner started, and nothing else: if the
        job moved on meanwhile (its lease lapsed and another runner recovered it), the
        outcome belongs to a lost attempt and is refused."""
        try:
            ledger.append(job.pk, kind, data, runner=self.identity, only_at_seq=job.last_seq)
        except (ledger.JobStateError, ledger.JobGoneError) as exc:
            raise TakenError(
                f"the attempt was taken from this runner (its lease lapsed) and recovered "
                f"elsewhere; its {kind} is not recorded ({exc})"
            ) from exc

    def _complete(self, job: ScheduledJob, result: object) -> str | None:
        self._completing = True
        value = None if result is None else str(result)
        data: dict[str, Any] = {"return_value": value, "seconds": self._call_seconds()}
        if result_json(result) is not None:
            data["result"] = result
        self._append_mine(job, EventKind.COMPLETED, data)
        if self.delete_completed:
            ledger.append(
                job.pk, EventKind.DELETED, {"reason": "--delete-completed"}, runner=self.identity
            )
        return value

    def _record_failure(self, job: ScheduledJob, report: RunReport) -> None:
        """Called from an ``except`` block: record the exception being handled."""
        exc = current_exception()
        error = traceback.format_exc()
        summary = one_line(exc)
        try:
            with transaction.atomic():
                self._append_mine(
                    job,
                    EventKind.FAILED,
                    {
                        "error": error,
                        "exception": summary,
                        "exception_class": exception_class(exc),
                        "attempt": job.attempts,
                        "seconds": self._call_seconds(),
                    },
                )
                # A refused callable would be refused again: no retry.
                retried = not isinstance(exc, allowlist.CallableRefusedError) and self.retry(
                    ScheduledJob.objects.get(pk=job.pk), summary
                )
        except TakenError as taken:
            say(
                self.echo,
                logging.WARNING,
                "job %s (%s) failed: %s; %s",
                job.pk,
                job.callable_name,
                summary,
                taken,
            )
            return
        if retried:
            report.retried.append(job.pk)
            say(
                self.echo,
                logging.WARNING,
                "job %s (%s) failed, will retry: %s",
                job.pk,
                job.callable_name,
                summary,
            )
            return
        report.failed.append(job.pk)
        stops_the_run = isinstance(exc, Exception) and not self.ignore_errors
        if not stops_the_run:
            # A failure that stops the run is reported once, by whoever catches
            # JobFailedError (runscheduledjobs prints it with its traceback).
            say(
                self.echo,
                logging.WARNING,
                "job %s (%s) failed: %s",
                job.pk,
                job.callable_name,
                summary,
            )
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: recorded, then honoured
        if stops_the_run:
            raise JobFailedError(job, error) from exc

    def retry(self, job: ScheduledJob, reason: str) -> bool:
        """Append ``retry`` if the failed job has attempts left; say whether it did."""
        if job.attempts >= job.max_attempts or job.retry_delay is None:
            return False
        delay = backoff(job.attempts, job.retry_delay, job.retry_max_delay or job.retry_delay)
        return ledger.retry(job.pk, delay=delay, reason=reason, runner=self.identity)


def resolve(job: ScheduledJob) -> tuple[Callable[..., Any], list[Any]]:
    """The callable to run and its positional arguments, as django-future 0.2 built them.

    A dotted path gets the content object (if any) first; a bare name is a
    method of the content object. A ``@job_as_parameter`` handler gets the
    job before everything else. With ``DJANGO_FUTURE_ALLOWED_CALLABLES`` set, a path
    outside it raises ``CallableRefusedError`` before anything is imported or read.
    """
    within = allowlist.prefixes()
    if within is not None:
        if "." in job.callable_name:
            allowlist.check_path(job.callable_name, within)
        else:
            ct = job.content_type if job.content_type_id is not None else None
            model = ct.model_class() if ct is not None else None
            allowlist.check_method(model, job.callable_name, within)
    args = list(job.args)
    content_object = None
    if job.content_type_id is not None:
        content_object = job.content_object
        if content_object is None:
            raise LookupError(
                f"the job's content object ({_content_label(job)} with pk {job.object_id!r}) "
                "no longer exists"
            )
    if "." in job.callable_name:
        func = import_callable(job.callable_name)
        if within is not None:
            allowlist.check_imported(job.callable_name, func, within)
        if content_object is not None:
            args.insert(0, content_object)
    else:
        func = getattr(content_object, job.callable_name, None)
        if not callable(func):
            raise AttributeError(
                f"{type(content_object).__name__} has no method {job.callable_name!r}"
            )
    if getattr(func, "job_as_parameter", False):
        args.insert(0, job)
    return func, args


def _content_label(job: ScheduledJob) -> str:
    ct = job.content_type
    return f"{ct.app_label}.{ct.model}" if ct is not None else "?"

"""Tasks in real runner processes (runscheduledjobs, as cron starts it): the runner
imports the task module, which fills django_future.taskhook, and runs the tasks; this
process reads their results from the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from django_future.backends.compat import TaskResultStatus
from django_future.models import ScheduledJob
from tests.support import event, fresh, start_runner
from tests.tasks import tasks

pytestmark = pytest.mark.usefixtures("committed_db")


def job_of(result: Any) -> ScheduledJob:
    return ScheduledJob.objects.get(pk=int(result.id))


def test_a_runner_process_runs_tasks_and_any_process_reads_them() -> None:
    ok = tasks.with_context.enqueue(3)
    bad = tasks.refuse.enqueue("in a runner")
    coro = tasks.async_add.enqueue(1, 1)
    runner = start_runner("-i")
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    ok.refresh()
    assert ok.status == TaskResultStatus.SUCCESSFUL
    assert ok.worker_ids == [event(job_of(ok), "started").runner]
    assert ok.worker_ids[0].endswith(f":{runner.pid}")
    assert fresh(job_of(ok)).return_value is not None
    bad.refresh()
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class is tasks.Refused
    assert tasks.async_add.get_result(coro.id).status == TaskResultStatus.SUCCESSFUL


def test_started_and_finished_are_sent_in_the_runner_process(tmp_path: Path) -> None:
    log = tmp_path / "signals.log"
    ok = tasks.add.enqueue(1, 2)
    bad = tasks.refuse.enqueue()
    runner = start_runner("-i", TASKS_SIGNAL_LOG=str(log))
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    lines = [line.split() for line in log.read_text().splitlines()]
    pid = str(runner.pid)
    assert lines == [
        ["started", "LedgerBackend", ok.id, "RUNNING", pid],
        ["finished", "LedgerBackend", ok.id, "SUCCESSFUL", pid],
        ["started", "LedgerBackend", bad.id, "RUNNING", pid],
        ["finished", "LedgerBackend", bad.id, "FAILED", pid],
    ]

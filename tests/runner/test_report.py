"""RunReport: counts every outcome, keeps only the most recent ids."""

from __future__ import annotations

import pytest

from django_future.runner import JobIds, RunReport
from django_future.runner import report as report_module

pytestmark = pytest.mark.unit


@pytest.fixture
def keep_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "REPORT_IDS", 3)


def test_ids_are_a_list_of_every_id_while_few() -> None:
    ids = JobIds([4, 5])
    ids.append(6)
    ids += [7]
    assert ids == [4, 5, 6, 7]
    assert ids.total == 4


@pytest.mark.usefixtures("keep_three")
def test_only_the_most_recent_ids_are_kept_but_all_are_counted() -> None:
    ids = JobIds()
    for job_id in range(1, 1001):
        ids.append(job_id)
    ids += [1001, 1002]
    ids.extend([1003])
    assert ids == [1001, 1002, 1003]
    assert ids.total == 1003


@pytest.mark.usefixtures("keep_three")
def test_withdraw_uncounts_a_job_whose_id_is_no_longer_kept() -> None:
    ids = JobIds([1, 2, 3, 4, 5])
    ids.withdraw(5)
    ids.withdraw(1)  # counted, its id long dropped
    assert ids == [3, 4]
    assert ids.total == 3


@pytest.mark.usefixtures("keep_three")
def test_report_counts_from_totals() -> None:
    report = RunReport()
    report.completed += range(10)
    report.failed.append(10)
    report.retried.append(11)
    report.expired += [12, 13]
    assert report.ran == 12
    assert report.completed == [7, 8, 9]
    assert str(report) == "10 completed, 1 failed, 2 expired, 1 retried"

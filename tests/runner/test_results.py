"""What a completion and a failure record besides the text: the callable's return value as
JSON ("result"), and the exception's class ("exception_class")."""

from __future__ import annotations

import json
import math

import pytest
from django.db import connection

from django_future import run_jobs, schedule_job
from django_future.models import ScheduledJob
from django_future.runner import Runner
from django_future.runner.executor import exception_class, result_json
from tests.support import event

STRUCTURE = {"items": ["a", 1], "ok": True, "ratio": 0.5}


def completed(job: ScheduledJob) -> dict[str, object]:
    return event(job, "completed").data


@pytest.mark.django_db
@pytest.mark.parametrize(
    "runner",
    [
        {},  # the one-job step (complete_and_claim, in line)
        {"batch_size": 3},  # batches: complete_and_claim_many and django_future_complete
        {"delete_completed": True},  # the single _complete path (ledger.append)
    ],
    ids=["step", "batch", "single"],
)
def test_a_result_json_can_carry_is_recorded_as_json_beside_its_text(
    runner: dict[str, object],
) -> None:
    structure = schedule_job("0s", "tests.handlers.returns_structure", args=["a", 1])
    number = schedule_job("0s", "tests.handlers.returns_number")
    text = schedule_job("0s", "tests.handlers.record", args=["Zoë"])
    nothing = schedule_job("0s", "tests.handlers.returns_none")
    nan = schedule_job("0s", "tests.handlers.returns_nan")
    thing = schedule_job("0s", "tests.handlers.returns_object")
    Runner(**runner).run()  # type: ignore[arg-type]
    assert completed(structure)["result"] == STRUCTURE
    assert completed(structure)["return_value"] == str(STRUCTURE)
    assert completed(number)["result"] == 42 and completed(number)["return_value"] == "42"
    assert completed(text)["result"] == "recorded ['Zoë'] {}"
    for job in (nothing, nan, thing):
        assert "result" not in completed(job), job
        assert "return_value" in completed(job)
    assert completed(nothing)["return_value"] is None
    assert completed(nan)["return_value"] == "nan"


@pytest.mark.django_db
def test_the_audit_view_shows_the_result() -> None:
    job = schedule_job("0s", "tests.handlers.returns_structure", args=["a", 1])
    none = schedule_job("0s", "tests.handlers.returns_none")
    run_jobs()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_id, result FROM django_future_job_history"
            " WHERE kind = 'completed' AND job_id IN (%s, %s) ORDER BY job_id",
            [job.pk, none.pk],
        )
        rows = cursor.fetchall()
    # Django's cursor reads jsonb as text, or decoded, depending on what ran before.
    decoded = [(pk, json.loads(v) if isinstance(v, str) else v) for pk, v in rows]
    assert decoded == [(job.pk, STRUCTURE), (none.pk, None)]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, "0"),
        ("a\\u0000", '"a\\\\u0000"'),  # an escaped backslash, not a NUL
        ([1, "ü"], '[1,"ü"]'),
        ("nul\x00", None),  # jsonb cannot hold NUL
        ("\ud800", None),  # nor a lone surrogate
        (math.inf, None),
        ({1, 2}, None),
        (object(), None),
    ],
)
def test_result_json(value: object, expected: str | None) -> None:
    assert result_json(value) == expected


class Nested:
    class Problem(Exception):
        pass


@pytest.mark.unit
def test_exception_class_names_module_and_qualname() -> None:
    assert exception_class(ValueError("x")) == "builtins.ValueError"
    assert exception_class(Nested.Problem()) == f"{__name__}.Nested.Problem"


@pytest.mark.django_db
def test_a_failed_event_names_the_exception_class_and_keeps_its_other_keys() -> None:
    job = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    run_jobs(ignore_errors=True)
    data = event(job, "failed").data
    assert data["exception_class"] == "builtins.ValueError"
    assert data["exception"] == "ValueError: card declined"
    assert "Traceback" in data["error"]
    assert set(data) == {"error", "exception", "exception_class", "attempt", "seconds"}

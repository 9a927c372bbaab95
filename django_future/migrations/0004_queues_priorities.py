"""Queues and priorities for every job; a completion's result as JSON.

- ``ScheduledJob.queue`` (default ``"default"``) and ``ScheduledJob.priority`` (default
  0, from -100 to 100, larger first), set by the ``scheduled`` event's ``queue`` and
  ``priority`` keys, which the fold defaults when they are left out (so ledgers written
  before replay and verify as they were), and checked by the fold and the bulk writer.
- ``django_future_due`` orders by ``priority DESC, time_slot_start, id`` and takes the
  queues to serve and to leave out (``text[]``, NULL: no filter); every claim function
  passes them on. The partial index ``django_future_claimable`` is made again in that
  order, so that a claim stays one scan of it.
- ``django_future_complete`` takes the results (``jsonb[]``), and the runner's step
  reads one from a completion's fifth element: the ``completed`` event's ``result``.
- ``django_future_job_history`` gains ``result``, ``queue`` and ``priority``;
  ``django_future_job_state`` gains ``queue`` and ``priority``.

Runs frozen copies of fold.sql, claim.sql, complete.sql, bulk.sql and views.sql
(django_future/sql/), after adding the type ``django_future_created``'s two new
attributes (types.sql, which cannot run again, says the same).
"""

from django.db import migrations, models

from django_future.sql import frozen

OLD_SIGNATURES = [
    "DROP FUNCTION django_future_claim(timestamptz, text, bigint, integer, text, timestamptz);",
    "DROP FUNCTION django_future_start_due(timestamptz, text, bigint, integer, text, timestamptz);",
    "DROP FUNCTION django_future_complete_and_claim("
    "jsonb, timestamptz, text, bigint, integer, timestamptz);",
    "DROP FUNCTION django_future_complete_and_claim_many("
    "jsonb, timestamptz, text, bigint, integer, timestamptz);",
    "DROP FUNCTION django_future_complete(bigint[], integer[], text[], double precision[], text);",
    "DROP FUNCTION django_future_due(timestamptz, timestamptz, integer);",
]
NEW_SIGNATURES = [
    "DROP FUNCTION django_future_claim("
    "timestamptz, text, bigint, integer, text, timestamptz, text[], text[]);",
    "DROP FUNCTION django_future_start_due("
    "timestamptz, text, bigint, integer, text, timestamptz, text[], text[]);",
    "DROP FUNCTION django_future_complete_and_claim("
    "jsonb, timestamptz, text, bigint, integer, timestamptz, text[], text[]);",
    "DROP FUNCTION django_future_complete_and_claim_many("
    "jsonb, timestamptz, text, bigint, integer, timestamptz, text[], text[]);",
    "DROP FUNCTION django_future_complete("
    "bigint[], integer[], text[], double precision[], jsonb[], text);",
    "DROP FUNCTION django_future_due(timestamptz, timestamptz, integer, text[], text[]);",
]
ADD_ATTRIBUTES = (
    "ALTER TYPE django_future_created "
    "ADD ATTRIBUTE queue varchar(100), ADD ATTRIBUTE priority integer;"
)
DROP_ATTRIBUTES = "ALTER TYPE django_future_created DROP ATTRIBUTE priority, DROP ATTRIBUTE queue;"
# They lose columns going back, which CREATE OR REPLACE VIEW refuses.
DROP_VIEWS = [
    "DROP VIEW django_future_job_history;",
    "DROP VIEW django_future_job_state;",
]


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0003_one_due_selection"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledjob",
            name="queue",
            field=models.CharField(default="default", max_length=100),
        ),
        migrations.AddField(
            model_name="scheduledjob",
            name="priority",
            field=models.IntegerField(default=0),
        ),
        migrations.RemoveIndex(
            model_name="scheduledjob",
            name="django_future_claimable",
        ),
        migrations.AddIndex(
            model_name="scheduledjob",
            index=models.Index(
                condition=models.Q(("status", "scheduled")),
                fields=["-priority", "time_slot_start", "id"],
                name="django_future_claimable",
            ),
        ),
        migrations.RunSQL(
            [*OLD_SIGNATURES, ADD_ATTRIBUTES, frozen("0004_queues_priorities")],
            reverse_sql=[
                *NEW_SIGNATURES,
                *DROP_VIEWS,
                DROP_ATTRIBUTES,
                frozen("0004_queues_priorities.reverse"),
            ],
        ),
    ]

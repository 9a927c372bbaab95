"""Unique jobs: a job may hold a unique key, and no two jobs hold one key at once.

- ``ScheduledJob.unique_key`` and ``ScheduledJob.unique_while`` (``"pending"`` or
  ``"active"``; both NULL for a job without a key), set by the ``scheduled`` event's
  ``unique_key`` and ``unique_while`` keys, which ledgers written before leave out.
- The partial unique index ``django_future_unique_key`` over the jobs that hold their
  key (sql/unique.sql says which), which the new functions ask with ON CONFLICT.
- ``django_future_schedule_keyed``, ``django_future_schedule_unique`` and
  ``django_future_schedule_unique_lines`` (unique.sql): keyed jobs, one or a chunk.
- ``django_future_scheduled`` and the fold read the two keys; the bulk writer stores
  them (its chunks have none, but its rows stay what the fold makes).

Runs frozen copies of fold.sql, bulk.sql and unique.sql (django_future/sql/), after
adding the type ``django_future_created``'s two new attributes (types.sql, which
cannot run again, says the same).
"""

from django.db import migrations, models

from django_future.sql import frozen

ADD_ATTRIBUTES = (
    "ALTER TYPE django_future_created "
    "ADD ATTRIBUTE unique_key varchar(255), ADD ATTRIBUTE unique_while varchar(10);"
)
DROP_ATTRIBUTES = (
    "ALTER TYPE django_future_created DROP ATTRIBUTE unique_while, DROP ATTRIBUTE unique_key;"
)
DROP_FUNCTIONS = [
    "DROP FUNCTION django_future_schedule_unique_lines(text);",
    "DROP FUNCTION django_future_schedule_unique("
    "jsonb, timestamptz, interval, timestamptz, interval);",
    "DROP FUNCTION django_future_schedule_keyed(jsonb);",
]


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0005_schedule_one"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledjob",
            name="unique_key",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="scheduledjob",
            name="unique_while",
            field=models.CharField(blank=True, max_length=10, null=True),
        ),
        migrations.AddConstraint(
            model_name="scheduledjob",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("unique_key__isnull", False),
                    models.Q(
                        models.Q(("last_seq", 1), ("status", "scheduled")),
                        models.Q(
                            ("status__in", ["scheduled", "claimed", "running"]),
                            ("unique_while", "active"),
                        ),
                        _connector="OR",
                    ),
                ),
                fields=("unique_key",),
                name="django_future_unique_key",
            ),
        ),
        migrations.RunSQL(
            [ADD_ATTRIBUTES, frozen("0006_unique_jobs")],
            reverse_sql=[*DROP_FUNCTIONS, DROP_ATTRIBUTES, frozen("0006_unique_jobs.reverse")],
        ),
    ]

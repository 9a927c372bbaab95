"""Locks and queue limits (django_future/locks.py, sql/locks.sql).

- ``ScheduledJob.lock``: the lock a job takes while it runs, set by the ``scheduled``
  event's ``lock`` key (none when left out, so ledgers written before replay as they
  were), refused by the fold when empty or longer than 100 characters; the type
  ``django_future_created`` gains the attribute ``lock``.
- ``django_future_joblock``: the names held by running jobs (their locks and their
  queues' slots), the claim's arbiter; ``django_future_queuelimit``: the queue limits
  that runners write from ``DJANGO_FUTURE_QUEUE_LIMITS``.
- ``django_future_acquire`` takes a job's names (``django_future_lost`` notes a lost
  race); ``django_future_due`` steps over blocked jobs, and takes the jobs to pass over; the claims call the arbiter for jobs with a lock or in a limited queue;
  the completions and the fold trigger free the names with the event that ends a run.

Runs frozen copies of fold.sql, fold_trigger.sql, locks.sql, claim.sql, complete.sql
and bulk.sql (django_future/sql/), after adding the type's attribute. Going back, the
attribute goes first: the previous functions build the type with one value fewer.
"""

from django.db import migrations, models
from django.db.models.functions import Now

from django_future.sql import frozen

ADD_ATTRIBUTE = "ALTER TYPE django_future_created ADD ATTRIBUTE lock varchar(100);"
DROP_ATTRIBUTE = "ALTER TYPE django_future_created DROP ATTRIBUTE lock;"
DROP_ACQUIRE = [
    "DROP FUNCTION django_future_acquire(bigint, text, text);",
    "DROP FUNCTION django_future_lost(bigint);",
]
# django_future_due takes the jobs to pass over (a lost race's), after the others.
OLD_DUE = "DROP FUNCTION django_future_due(timestamptz, timestamptz, integer, text[], text[]);"
NEW_DUE = (
    "DROP FUNCTION django_future_due(timestamptz, timestamptz, integer, text[], text[], bigint[]);"
)


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0007_periodic"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledjob",
            name="lock",
            field=models.CharField(blank=True, max_length=100, null=True),
        ),
        migrations.CreateModel(
            name="JobLock",
            fields=[
                ("name", models.CharField(max_length=120, primary_key=True, serialize=False)),
                ("job_id", models.BigIntegerField(db_index=True)),
                ("queue", models.CharField(blank=True, max_length=100, null=True)),
                ("acquired_at", models.DateTimeField(db_default=Now())),
            ],
        ),
        migrations.CreateModel(
            name="QueueLimit",
            fields=[
                ("queue", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("max_running", models.IntegerField()),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("max_running__gte", 1)),
                        name="django_future_limit_positive",
                    )
                ],
            },
        ),
        migrations.RunSQL(
            [ADD_ATTRIBUTE, OLD_DUE, frozen("0008_locks_limits")],
            reverse_sql=[
                DROP_ATTRIBUTE,
                NEW_DUE,
                frozen("0008_locks_limits.reverse"),
                *DROP_ACQUIRE,
            ],
        ),
    ]

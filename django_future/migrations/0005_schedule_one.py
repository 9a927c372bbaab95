"""schedule_job in one statement: ``django_future_schedule_one`` appends a job's
``scheduled`` event, folds it itself and returns the job's row (schedule.sql).

Before, schedule_job sent an INSERT of the event, which the triggers stamped and folded
(reading and locking the absent row, hashing the event twice), and then read the row
back with a second query. The event is the same, to its hash.

Runs a frozen copy of schedule.sql (django_future/sql/).
"""

from django.db import migrations

from django_future.sql import frozen

DROP_SCHEDULE_ONE = (
    "DROP FUNCTION django_future_schedule_one(jsonb, timestamptz, interval, timestamptz, interval);"
)


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0004_queues_priorities"),
    ]

    operations = [
        migrations.RunSQL(frozen("0005_schedule_one"), reverse_sql=DROP_SCHEDULE_ONE),
    ]

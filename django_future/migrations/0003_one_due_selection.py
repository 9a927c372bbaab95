"""One definition of which jobs are due, and one way to start them.

- ``django_future_due`` is the one definition of the due selection (which jobs, in what
  order, locked and skipping those held elsewhere); the claim, batches and the runner's
  step call it, and the planner writes it into each.
- ``django_future_start_due`` starts any number of jobs with one set-based statement and
  returns their rows (it returned nothing), with a generic plan: its LIMIT is a
  parameter, for which PostgreSQL otherwise planned every call again.
- ``django_future_complete`` records any number of completions with one set-based
  statement.
- ``django_future_append_folded``, which their one-job paths called, goes.

Runs frozen copies of claim.sql and complete.sql (django_future/sql/).
"""

from django.db import migrations

from django_future.sql import frozen

# Its return type changes (rows, not void), which CREATE OR REPLACE refuses.
DROP_START_DUE = (
    "DROP FUNCTION django_future_start_due(timestamptz, text, bigint, integer, text, timestamptz);"
)
DROP_APPEND_FOLDED = (
    "DROP FUNCTION django_future_append_folded(django_future_scheduledjob, text, text, jsonb);"
)
DROP_DUE = "DROP FUNCTION django_future_due(timestamptz, timestamptz, integer);"


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0002_pass_cutoff"),
    ]

    operations = [
        migrations.RunSQL(
            [DROP_START_DUE, DROP_APPEND_FOLDED, frozen("0003_one_due_selection")],
            reverse_sql=[DROP_START_DUE, DROP_DUE, frozen("0003_one_due_selection.reverse")],
        ),
    ]

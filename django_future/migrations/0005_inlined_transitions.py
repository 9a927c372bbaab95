"""The runner's hot transitions are inlined into its step (sql/0005_inlined_transitions.sql).

"started" and "completed" become SQL functions that the fold and the runner's
one-job step both call, and the event hash is declared STABLE, so that the
planner writes both into the step's UPDATE instead of calling functions per job.
"""

from django.db import migrations

from django_future.sql import migration_function, migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0004_one_statement_step"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0005_inlined_transitions.sql"),
            # Back to 0004: its step and 0002's fold, then the functions they no
            # longer call.
            reverse_sql=[
                migration_function(
                    "0004_one_statement_step.sql", "django_future_complete_and_claim"
                ),
                migration_function("0002_statement_fold.sql", "django_future_fold"),
                "DROP FUNCTION django_future_completed("
                "django_future_scheduledjob, integer, timestamptz, text, text);",
                "DROP FUNCTION django_future_started("
                "django_future_scheduledjob, integer, timestamptz, text, bigint, text);",
                "DROP TYPE django_future_progress;",
                "ALTER FUNCTION django_future_event_hash("
                "text, bigint, integer, text, timestamptz, text, jsonb) IMMUTABLE;",
            ],
        ),
    ]

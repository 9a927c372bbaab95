"""A job's rows are checked when its events make them (sql/0009_checks_at_creation.sql).

The job table's CHECK constraints (and the ledger's on seq) were parsed and planned
again by PostgreSQL for every statement that wrote the table, twice per job in the
runner's step. "scheduled" (in the fold and in the bulk writer) and "retry" now
refuse what they refused, and the counters become plain integer columns. The
runner's step also sets its flag by assignment, not PERFORM.
"""

from django.db import migrations, models

from django_future.sql import migration_function, migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0008_inlined_batches"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0009_checks_at_creation.sql"),
            # Back to 0006's fold and bulk writer and 0005's step; the constraints come
            # back with the operations below.
            reverse_sql=[
                migration_function("0006_streamed_bulk.sql", "django_future_fold"),
                migration_function("0006_streamed_bulk.sql", "django_future_schedule_lines"),
                migration_function(
                    "0005_inlined_transitions.sql", "django_future_complete_and_claim"
                ),
                "DROP FUNCTION django_future_refuse(text, anyelement);",
            ],
        ),
        migrations.RemoveConstraint(
            model_name="scheduledjob",
            name="django_future_window_not_reversed",
        ),
        migrations.AlterField(
            model_name="jobevent",
            name="seq",
            field=models.IntegerField(),
        ),
        migrations.AlterField(
            model_name="scheduledjob",
            name="attempts",
            field=models.IntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="scheduledjob",
            name="last_seq",
            field=models.IntegerField(),
        ),
        migrations.AlterField(
            model_name="scheduledjob",
            name="max_attempts",
            field=models.IntegerField(default=1),
        ),
    ]

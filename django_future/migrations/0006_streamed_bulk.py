"""schedule_jobs streams its jobs in chunks (sql/0006_streamed_bulk.sql).

Each chunk's events are appended and their jobs created by one call of
django_future_schedule_lines, which also assigns the ids, while the next chunk
is prepared. What "scheduled" makes of a job becomes a SQL function that the
fold calls and that call inlines. 0003's scratch-table writer stays for
processes of the previous release that run during a deploy.
"""

from django.db import migrations

from django_future.sql import migration_function, migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0005_inlined_transitions"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0006_streamed_bulk.sql"),
            # Back to 0005: its fold, then the functions and type it no longer uses.
            reverse_sql=[
                migration_function("0005_inlined_transitions.sql", "django_future_fold"),
                "DROP FUNCTION django_future_schedule_lines(text);",
                "DROP FUNCTION django_future_scheduled(jsonb, timestamptz, text);",
                "DROP TYPE django_future_created;",
            ],
        ),
    ]

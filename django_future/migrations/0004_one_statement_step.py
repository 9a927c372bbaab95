"""The runner's one-job step writes each row once (sql/0004_one_statement_step.sql).

Recording a completion and starting the next job become one UPDATE and one
INSERT each, instead of a locking SELECT followed by nested appends. Batches
keep 0003's set-based path under a new name.
"""

from django.db import migrations

from django_future.sql import migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0003_writers_fold"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0004_one_statement_step.sql"),
            reverse_sql=[
                "DROP FUNCTION django_future_complete_and_claim("
                "jsonb, timestamptz, text, bigint, integer);",
                "ALTER FUNCTION django_future_complete_and_claim_many("
                "jsonb, timestamptz, text, bigint, integer) "
                "RENAME TO django_future_complete_and_claim;",
            ],
        ),
    ]

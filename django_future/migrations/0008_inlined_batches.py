"""Batches inline their transitions as the step does (sql/0008_inlined_batches.sql).

0003's set-based start and completion called the PL/pgSQL fold once per job; they
now call the SQL transition functions of 0005, which the planner inlines.
"""

from django.db import migrations

from django_future.sql import migration_function, migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0007_guard_per_statement"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0008_inlined_batches.sql"),
            # Back to 0003's two functions.
            reverse_sql=[
                migration_function("0003_writers_fold.sql", "django_future_start_due"),
                migration_function("0003_writers_fold.sql", "django_future_complete"),
            ],
        ),
    ]

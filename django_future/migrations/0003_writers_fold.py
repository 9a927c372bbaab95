"""The runner's claim and completion, and bulk scheduling, fold their own events
(sql/0003_writers_fold.sql).

They append and fold in one statement with the same fold function, and mark it
with a transaction-local setting that the fold trigger and the projection's
guard now read in their WHEN clauses. Every other writer folds through the
trigger as before.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

from django_future.sql import migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0002_statement_fold"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0003_writers_fold.sql"),
            # Back to 0002: its claim and completion (CREATE OR REPLACE).
            reverse_sql=[
                "DROP FUNCTION IF EXISTS django_future_schedule_bulk();",
                "DROP FUNCTION IF EXISTS django_future_start_due("
                "timestamptz, text, bigint, integer, text);",
                "DROP FUNCTION IF EXISTS django_future_complete_and_claim("
                "jsonb, timestamptz, text, bigint, integer);",
                "DROP FUNCTION IF EXISTS django_future_append_folded("
                "django_future_scheduledjob, text, text, jsonb);",
                migration_sql("0002_statement_fold.sql"),
            ],
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="jobevent",
            name="fold_events",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="scheduledjob",
            name="written_by_ledger_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="jobevent",
            trigger=pgtrigger.compiler.Trigger(
                name="fold_events",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (current_setting('django_future.folded', true) IS DISTINCT FROM 'on')",
                    func="PERFORM django_future_apply_events(ARRAY(SELECT e::django_future_jobevent FROM new_events e ORDER BY e.job_id, e.seq)); RETURN NULL;",
                    hash="14df5a40dd8b1494def675df4ddced117535fdc2",
                    level="STATEMENT",
                    operation="INSERT",
                    pgid="pgtrigger_fold_events_01010",
                    referencing="REFERENCING NEW TABLE AS new_events ",
                    table="django_future_jobevent",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="scheduledjob",
            trigger=pgtrigger.compiler.Trigger(
                name="written_by_ledger_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (pg_trigger_depth() < 1 AND current_setting('django_future.folded', true) IS DISTINCT FROM 'on')",
                    func="RAISE EXCEPTION 'django_future: % on % refused: jobs change only by appending events to django_future_jobevent', TG_OP, TG_TABLE_NAME;",
                    hash="bb3b1de8124b59f8d7c456d8851c303bfe1af9aa",
                    operation="INSERT OR UPDATE OR DELETE",
                    pgid="pgtrigger_written_by_ledger_only_2ff47",
                    table="django_future_scheduledjob",
                    when="BEFORE",
                ),
            ),
        ),
    ]

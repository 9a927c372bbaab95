"""Fold events once per statement instead of once per row (sql/0002_statement_fold.sql).

Bulk scheduling and batched claims write many events in one statement; the fold
now handles them set-based. Rows written without a hash are still stamped one
by one, before they are stored.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

from django_future.sql import migration_sql


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            migration_sql("0002_statement_fold.sql"),
            # Back to 0001: its fold, runner functions and views (CREATE OR REPLACE).
            reverse_sql=[
                "DROP FUNCTION IF EXISTS django_future_apply_events(django_future_jobevent[]);",
                "DROP FUNCTION IF EXISTS django_future_stamp(django_future_jobevent);",
                "DROP FUNCTION IF EXISTS django_future_refuse_stamp(bigint, integer, boolean);",
                "DROP FUNCTION IF EXISTS django_future_complete("
                "bigint[], integer[], text[], double precision[], text);",
                migration_sql("0001_fold.sql"),
                migration_sql("0001_runner.sql"),
                migration_sql("0001_views.sql"),
            ],
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="jobevent",
            name="fold_into_projection",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="jobevent",
            trigger=pgtrigger.compiler.Trigger(
                name="stamp_event",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (NEW.hash IS NULL OR NEW.hash = '')",
                    func="NEW.at := statement_timestamp(); NEW.hash := django_future_stamp(NEW); RETURN NEW;",
                    hash="65775ca78c2efbb23b57689724bab28a056d61fd",
                    operation="INSERT",
                    pgid="pgtrigger_stamp_event_ba607",
                    table="django_future_jobevent",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="jobevent",
            trigger=pgtrigger.compiler.Trigger(
                name="fold_events",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="PERFORM django_future_apply_events(ARRAY(SELECT e::django_future_jobevent FROM new_events e ORDER BY e.job_id, e.seq)); RETURN NULL;",
                    hash="a1ffa151200657ea0be3409c45a58488fafacbcb",
                    level="STATEMENT",
                    operation="INSERT",
                    pgid="pgtrigger_fold_events_01010",
                    referencing="REFERENCING NEW TABLE AS new_events ",
                    table="django_future_jobevent",
                    when="AFTER",
                ),
            ),
        ),
    ]

"""The projection's guard fires once per statement, not once per row.

It refuses the same writes: its condition reads no row. As a row trigger it
also made PostgreSQL fetch and lock the old row again for every UPDATE the
fold or the runner's step makes (see the comment in models.py).
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0006_streamed_bulk"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="scheduledjob",
            name="written_by_ledger_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="scheduledjob",
            trigger=pgtrigger.compiler.Trigger(
                name="written_by_ledger_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (pg_trigger_depth() < 1 AND current_setting('django_future.folded', true) IS DISTINCT FROM 'on')",
                    func="RAISE EXCEPTION 'django_future: % on % refused: jobs change only by appending events to django_future_jobevent', TG_OP, TG_TABLE_NAME;",
                    hash="8b1932aa4e35d304c79b5e754c4debab08c2830f",
                    level="STATEMENT",
                    operation="INSERT OR UPDATE OR DELETE",
                    pgid="pgtrigger_written_by_ledger_only_2ff47",
                    table="django_future_scheduledjob",
                    when="BEFORE",
                ),
            ),
        ),
    ]

"""Periodic schedules: the tick log, unique on (schedule, tick), and the log of the
schedules' definitions, both append-only; the functions that record definitions and
make one job per tick, and the view of the ticks (periodic.sql).

Runs a frozen copy of periodic.sql (django_future/sql/).
"""

import django.db.models.functions.datetime
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

from django_future.sql import frozen

DROP_PERIODIC = (
    "DROP VIEW django_future_periodic_ticks;",
    "DROP FUNCTION django_future_periodic_enqueue(jsonb, timestamptz, text);",
    "DROP FUNCTION django_future_periodic_define(jsonb, text);",
)


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0006_unique_jobs"),
    ]

    operations = [
        migrations.CreateModel(
            name="PeriodicTick",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("schedule", models.CharField(max_length=200)),
                ("tick", models.DateTimeField()),
                ("job_id", models.BigIntegerField()),
                ("definition", models.CharField(max_length=64)),
                (
                    "enqueued_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("runner", models.CharField(max_length=255)),
            ],
        ),
        migrations.CreateModel(
            name="PeriodicChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("schedule", models.CharField(max_length=200)),
                ("hash", models.CharField(blank=True, max_length=64)),
                ("definition", models.JSONField(blank=True, null=True)),
                ("at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("runner", models.CharField(max_length=255)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["schedule", "-id"], name="django_future_schedule_changes")
                ],
            },
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="periodicchange",
            trigger=pgtrigger.compiler.Trigger(
                name="periodic_changes_append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'django_future: % on % refused: the schedule change log is append-only', TG_OP, TG_TABLE_NAME;",
                    hash="39d15d88526970166381a7a97dd0f4cb925e6e1d",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_periodic_changes_append_only_bb7ba",
                    table="django_future_periodicchange",
                    when="BEFORE",
                ),
            ),
        ),
        migrations.AddConstraint(
            model_name="periodictick",
            constraint=models.UniqueConstraint(
                fields=("schedule", "tick"), name="django_future_one_job_per_tick"
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="periodictick",
            trigger=pgtrigger.compiler.Trigger(
                name="periodic_ticks_append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'django_future: % on % refused: the tick log is append-only', TG_OP, TG_TABLE_NAME;",
                    hash="4b2ae588da5d7ac3e8b98a0e8acbc14461257b4f",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_periodic_ticks_append_only_6b120",
                    table="django_future_periodictick",
                    when="BEFORE",
                ),
            ),
        ),
        migrations.RunSQL(frozen("0007_periodic"), reverse_sql=DROP_PERIODIC),
    ]

"""Metrics (django_future/metrics/, sql/metrics.sql, docs/metrics.md).

- ``django_future_metricevents`` and ``django_future_metricbucket``: events per kind and
  the buckets of the job duration and queue wait histograms, folded from the ledger;
- ``django_future_metricmark`` and ``django_future_metricgap``: how far the fold has
  read, and the ids it passed without seeing;
- ``django_future_metrics_fold`` folds new events into them at scrape time.

Runs a frozen copy of metrics.sql. Nothing is folded here: the first scrapes catch up
with the ledger, a bounded number of events each.
"""

import django.db.models.functions.datetime
from django.db import migrations, models

from django_future.sql import frozen

DROP_FUNCTIONS = [
    "DROP FUNCTION django_future_metrics_fold(integer);",
    "DROP FUNCTION django_future_metric_le(double precision);",
    "DROP FUNCTION django_future_metric_bounds();",
]


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0009_claim_plan"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricEvents",
            fields=[
                ("kind", models.CharField(max_length=20, primary_key=True, serialize=False)),
                ("events", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="MetricGap",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("lo", models.BigIntegerField()),
                ("hi", models.BigIntegerField()),
                ("xid_bound", models.BigIntegerField()),
                (
                    "noted_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
        ),
        migrations.CreateModel(
            name="MetricMark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("upto", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="MetricBucket",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("histogram", models.CharField(max_length=20)),
                ("le", models.FloatField()),
                ("jobs", models.BigIntegerField(default=0)),
                ("seconds", models.FloatField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("histogram", "le"), name="django_future_bucket_key"
                    )
                ],
            },
        ),
        migrations.RunSQL(frozen("0010_metrics"), reverse_sql=[*DROP_FUNCTIONS]),
    ]

"""A cron pass takes only the jobs due when it started; two audit views say what they know.

- The runner's claim functions take ``due_by``: a pass (not a worker) claims the jobs
  that were due when it started, while expiry is still checked on the clock, so that a
  job that schedules itself again, or a retry due at once, waits for the next pass and
  every pass ends.
- ``django_future_attempts`` no longer counts a start that was handed back before the
  job was called (``released``) as an attempt.
- ``django_future_runner_activity`` shows each runner's last heartbeat, lease and stop
  instead of an ``alive`` flag that a killed runner kept until its lease ran out.

Runs frozen copies of claim.sql, complete.sql and views.sql (django_future/sql/).
"""

from django.db import migrations

from django_future.sql import frozen

OLD_SIGNATURES = [
    "DROP FUNCTION django_future_start_due(timestamptz, text, bigint, integer, text);",
    "DROP FUNCTION django_future_claim(timestamptz, text, bigint, integer, text);",
    "DROP FUNCTION django_future_complete_and_claim_many("
    "jsonb, timestamptz, text, bigint, integer);",
    "DROP FUNCTION django_future_complete_and_claim(jsonb, timestamptz, text, bigint, integer);",
]
NEW_SIGNATURES = [
    "DROP FUNCTION django_future_start_due(timestamptz, text, bigint, integer, text, timestamptz);",
    "DROP FUNCTION django_future_claim(timestamptz, text, bigint, integer, text, timestamptz);",
    "DROP FUNCTION django_future_complete_and_claim_many("
    "jsonb, timestamptz, text, bigint, integer, timestamptz);",
    "DROP FUNCTION django_future_complete_and_claim("
    "jsonb, timestamptz, text, bigint, integer, timestamptz);",
]
# Its columns change, which CREATE OR REPLACE VIEW refuses.
DROP_ACTIVITY = "DROP VIEW django_future_runner_activity;"


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            [*OLD_SIGNATURES, DROP_ACTIVITY, frozen("0002_pass_cutoff")],
            reverse_sql=[*NEW_SIGNATURES, DROP_ACTIVITY, frozen("0002_pass_cutoff.reverse")],
        ),
    ]

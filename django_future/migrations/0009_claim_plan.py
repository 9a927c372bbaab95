"""The claim's kept plan stays one scan of django_future_claimable.

``django_future_due`` (sql/claim.sql) writes its expiry test as ``COALESCE(time_slot_end,
'infinity') >= cutoff`` and its queue tests inside one CASE, so that the generic plan that
the runners keep can no longer read every scheduled job through django_future_expirable
and sort them when locks are in use (claim.sql says what it cost). Same jobs, same order.

Runs a frozen copy of claim.sql; going back, the copy frozen before the change.
"""

from django.db import migrations

from django_future.sql import frozen


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0008_locks_limits"),
    ]

    operations = [
        migrations.RunSQL(frozen("0009_claim_plan"), reverse_sql=frozen("0009_claim_plan.reverse")),
    ]

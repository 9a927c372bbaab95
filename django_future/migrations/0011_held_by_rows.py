"""Locks and queue slots are held by the job rows themselves.

Up to here a held lock or slot was a row of django_future_joblock, inserted by the claim
and deleted with the event that ended the run: six WAL records a job for a lock, twelve
for a lock and a slot. From here, a job holds its lock while it is claimed or running,
and the slot of its queue's limit that its claim took, now a column of its row
(``slot``) and a field of its ``started`` event. Two partial unique constraints,
``django_future_lock_held`` and ``django_future_slot_held``, make an overlap impossible
whatever writes the rows; the update that ends a run frees both, with nothing left to
delete. The claim's arbiter is rewritten to match (sql/locks.sql).

Jobs running while this migrates keep their locks (their rows hold them) but not their
slots: their runs started without one, so a limited queue may run up to twice its limit
until they end. Stop the runners to migrate, as for any schema change. Going back
recreates the empty table and the functions that use it.
"""

from django.db import migrations, models

from django_future.sql import frozen


class Migration(migrations.Migration):
    dependencies = [
        ("django_future", "0010_metrics"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledjob",
            name="slot",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="scheduledjob",
            constraint=models.UniqueConstraint(
                condition=models.Q(lock__isnull=False)
                & models.Q(status__in=["claimed", "running"]),
                fields=("lock",),
                name="django_future_lock_held",
            ),
        ),
        migrations.AddConstraint(
            model_name="scheduledjob",
            constraint=models.UniqueConstraint(
                condition=models.Q(slot__isnull=False)
                & models.Q(status__in=["claimed", "running"]),
                fields=("queue", "slot"),
                name="django_future_slot_held",
            ),
        ),
        migrations.RunSQL(
            frozen("0011_held_by_rows"), reverse_sql=frozen("0011_held_by_rows.reverse")
        ),
        migrations.DeleteModel(name="JobLock"),
    ]

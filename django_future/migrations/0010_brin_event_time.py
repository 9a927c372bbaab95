"""The ledger's index on ``at`` becomes a BRIN index (see the comment in models.py).

Events are appended in time order, so a BRIN index serves the auditor's time
windows, and an insert does not write to it. The B-tree cost the runner's step
two index insertions per job: without them the step's backend CPU was 0.95x,
cheaper in 6 of 6 rounds (``dev.py compare --step --jobs 5000 --rounds 6``).

Both steps run CONCURRENTLY, outside a transaction, so that runners keep
appending events while a large ledger is indexed. If it stops part way (between
them, or in the build, which leaves an invalid index), running it again drops
whatever is there and builds the index.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations

from django_future.indexes import BrinIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_future", "0009_checks_at_creation"),
    ]

    operations = [
        RemoveIndexConcurrently(
            model_name="jobevent",
            name="django_future_event_at",
        ),
        AddIndexConcurrently(
            model_name="jobevent",
            index=BrinIndex(fields=["at"], name="django_future_event_at"),
        ),
    ]

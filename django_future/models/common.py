"""What every model module shares: pgtrigger's Meta option, and the names of the guards.

The models declare their triggers in ``Meta.triggers``, which Django accepts only once
pgtrigger's app module has added the name (pgtrigger/apps.py, imported with every app
config, before any app's models: so pgtrigger may come before or after django_future in
INSTALLED_APPS). Without pgtrigger, Django would stop at these models with a traceback
ending in "'class Meta' got invalid attribute(s): triggers". The name is accepted here
instead, the triggers are then ignored, and the system check django_future.E003 says in
one line what to do. This module runs before any model is defined
(``django_future/models/__init__.py`` imports it first).
"""

from __future__ import annotations

from django.db.models import options

__all__ = ["PGTRIGGER_READY", "PROJECTION_GUARD", "TRIGGER_FOLDS"]

PGTRIGGER_READY = "triggers" in options.DEFAULT_NAMES
if not PGTRIGGER_READY:
    options.DEFAULT_NAMES = (*options.DEFAULT_NAMES, "triggers")

# Names of the triggers, also used by ``pgtrigger.ignore`` in the one place
# that is allowed to bypass them (``ledger.rebuild``).
PROJECTION_GUARD = "django_future.ScheduledJob:written_by_ledger_only"

# False only while one of the package's own SQL writers (the runner's claim
# and completion, bulk scheduling) appends events and folds them itself, in
# the same statement (sql/append.sql). They set this
# transaction-local setting and clear it before they return; the fold trigger
# and the projection's guard stand aside meanwhile. Nothing else should set it.
TRIGGER_FOLDS = "current_setting('django_future.folded', true) IS DISTINCT FROM 'on'"

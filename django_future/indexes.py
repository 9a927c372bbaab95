"""Index classes of our own, so that the package needs nothing in INSTALLED_APPS but itself.

Django 6 refuses ``django.contrib.postgres``'s index classes (system check
``postgres.E005``) unless that app is installed; asking every user to install an app
for one index is not worth it.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class BrinIndex(models.Index):
    """A BRIN index that summarises new page ranges as they fill (``autosummarize``).

    For columns whose values follow the table's physical order, as the ledger's ``at``
    does: the index stays a few pages, and an insert does not write to it until the
    insert's page range is full.
    """

    suffix = "brin"

    def create_sql(
        self, model: type[models.Model], schema_editor: Any, using: str = "", **kwargs: Any
    ) -> Any:
        statement: Any = super().create_sql(model, schema_editor, using=" USING brin", **kwargs)
        extra = statement.parts["extra"]  # the tablespace clause, if any, comes after
        statement.parts["extra"] = f" WITH (autosummarize = on){extra}"
        return statement

"""The django-future-ledger demo: an example Django project (run ``python3 dev.py demo``)."""

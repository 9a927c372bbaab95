"""A real PgBouncer in transaction pooling mode in front of the test server.

Debian's ``pgbouncer`` package (``.ci/run`` installs it). ``start`` writes an ini and a
userlist in a fresh temporary directory, listens on a free local port and sends every
database to the server of Django's test database. Where the binary is missing, the tests
that need it are skipped with ``MISSING`` as their reason, and ``tests/conftest.py`` says
so in the summary at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.conninfo

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
REASON = "PgBouncer tests did not run"
MISSING = f"{REASON}: no pgbouncer binary ({BINARY}); `apt-get install pgbouncer` (.ci/run does)"


ELSEWHERE = (
    f"{REASON} in this session: they run on one pair of the test matrix (noxfile.py sets "
    "DFL_PGBOUNCER=1 there); set DFL_PGBOUNCER=1 to run them here"
)


def available() -> bool:
    return os.access(BINARY, os.X_OK)


def why_not() -> str | None:
    """Why the tests marked ``pgbouncer`` do not run in this session, or None if they do."""
    if not available():
        return MISSING
    if os.environ.get("DFL_PGBOUNCER") != "1":
        return ELSEWHERE
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quote(value: str) -> str:
    return value.replace('"', '""')


def _log(base: str) -> str:
    try:
        with open(f"{base}/pgbouncer.log") as f:
            return f.read()[-2000:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def start(settings: dict[str, Any]) -> Iterator[str]:
    """Run PgBouncer for the server of Django's ``settings`` (a DATABASES entry); yield
    the conninfo of the same database through it."""
    host = settings["HOST"] or "/var/run/postgresql"
    port = str(settings["PORT"] or 5432)
    user = settings["USER"] or pwd.getpwuid(os.getuid()).pw_name
    password = settings["PASSWORD"] or ""
    base = tempfile.mkdtemp(prefix="dfl-pgbouncer-")
    lines = [
        "[databases]",
        f"* = host={host} port={port}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {(listen := _free_port())}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {base}/userlist.txt",
        "pool_mode = transaction",
        "max_client_conn = 400",
        "default_pool_size = 20",
        "ignore_startup_parameters = extra_float_digits,options",
        f"logfile = {base}/pgbouncer.log",
    ]
    owner = None
    if os.geteuid() == 0:  # PgBouncer will not run as root: as the server's socket owner
        owner = pwd.getpwuid(os.stat(host).st_uid) if host.startswith("/") else None
        owner = owner or pwd.getpwnam("nobody")
        lines.append(f"user = {owner.pw_name}")
    with open(f"{base}/pgbouncer.ini", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(f"{base}/userlist.txt", "w") as f:
        f.write(f'"{_quote(user)}" "{_quote(password)}"\n')
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        for name in os.listdir(base):
            os.chown(os.path.join(base, name), owner.pw_uid, owner.pw_gid)
    proc = subprocess.Popen(
        [BINARY, "-q", f"{base}/pgbouncer.ini"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = psycopg.conninfo.make_conninfo(
        host="127.0.0.1",
        port=str(listen),
        dbname=settings["NAME"],
        user=user,
        password=password or None,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PgBouncer did not start: {_log(base)}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)

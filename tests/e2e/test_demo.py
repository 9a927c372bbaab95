"""The demo is our main job: run it end to end, in its own database, as `dev.py demo` would."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.support import ROOT, subprocess_env


@pytest.mark.slow
def test_demo_runs_and_its_audit_checks_pass(fresh_database: str) -> None:
    env = subprocess_env()
    env["DATABASE_URL"] = fresh_database
    env.pop("DJANGO_SETTINGS_MODULE")
    for run in (1, 2):  # a second run on the same database reports only on its own jobs
        proc = subprocess.run(
            [sys.executable, "demo/run_demo.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"run {run}:\n{proc.stdout}\n{proc.stderr}"
        assert "run_demo: OK" in proc.stdout
        assert "django_future.ledger.verify() -> []" in proc.stdout
        assert_it_ends_with_where_to_look_next(proc.stdout)


def assert_it_ends_with_where_to_look_next(stdout: str) -> None:
    """The demo's last section names every audit view the migrations create, the
    commands to run next and the admin's pages."""
    heading, _, ending = stdout.partition("== 5. where to look next ")
    assert ending, stdout[-2000:]
    assert "run_demo: OK" in heading  # the verdict comes before, the pointers last
    views = re.findall(
        r"CREATE OR REPLACE VIEW (\w+)", (ROOT / "django_future/sql/views.sql").read_text()
    )
    assert len(views) == 6
    for name in [*views, "django_future_jobs_as_of(instant)", "docs/audit.md"]:
        assert f"{name} " in ending or f"{name};" in ending or f"{name})" in ending, name
    show = re.search(r"python demo/manage.py scheduledjobs show (\d+)\n", ending)
    assert show, ending
    assert "python demo/manage.py scheduledjobs status\n" in ending
    assert "python demo/manage.py scheduledjobs verify\n" in ending
    assert "/admin/django_future/scheduledjob/dashboard/" in ending
    assert "/admin/django_future/scheduledjob/" in ending
    assert "/admin/django_future/jobevent/" in ending


@pytest.mark.slow
def test_demo_serve_keeps_the_dashboard_up_with_the_login_it_prints(fresh_database: str) -> None:
    """`dev.py demo --serve`: after the demo, the dashboard answers on the printed URL to
    the printed user and password, until Ctrl-C (SIGINT) stops it."""
    env = subprocess_env()
    env["DATABASE_URL"] = fresh_database
    env.pop("DJANGO_SETTINGS_MODULE")
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "demo/run_demo.py", "--serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its server too can be killed, as a group, if it hangs
    )
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("log in as: "):
                break
        text = "".join(seen)
        url = re.search(r"^dashboard: (http://127\.0\.0\.1:\d+/\S+)$", text, re.M)
        login = re.search(r"^log in as: (\S+) / (\S+)$", text, re.M)
        assert url and login, text[-3000:]
        body = _fetch_logged_in(url[1], login[1], login[2])
        assert 'id="timeline"' in body and "Jobs dashboard" in body
        assert 'class="bar"' in body  # the demo's jobs ran a moment ago
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            # Never leave the demo's server running into the next test (it did, on a
            # machine loaded by other suites): kill the group, and say what it printed.
            os.killpg(proc.pid, signal.SIGKILL)
            rest = proc.communicate(timeout=30)[0]
            pytest.fail(f"demo --serve did not stop within 60 s of SIGINT:\n{rest[-3000:]}")
    assert proc.returncode == 0, rest[-3000:]
    assert "run_demo: server stopped" in rest


def _fetch_logged_in(url: str, username: str, password: str) -> str:
    """The page at ``url`` after logging in through the admin's form, as a browser would;
    waits up to a minute for the server to start (a loaded 2-core machine is slow)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    base = url.split("/admin/", 1)[0]
    login_url = f"{base}/admin/login/?next=" + urllib.parse.quote(url.split(base, 1)[1])
    deadline = time.monotonic() + 60
    while True:
        try:
            form = opener.open(login_url, timeout=5).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no server at {base}") from None
            time.sleep(0.1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form[:2000]
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token[1], "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(login_url, data=data, headers={"Referer": login_url})  # noqa: S310 - http, ours
    with opener.open(request, timeout=30) as response:
        assert response.url == url, f"login failed: ended at {response.url}"
        return str(response.read().decode())

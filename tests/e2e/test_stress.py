"""A small run of scripts/stress.py: runners killed at random while they work."""

from __future__ import annotations

import pytest

from scripts.stress import run_stress


@pytest.mark.slow
@pytest.mark.usefixtures("committed_db")
def test_runners_killed_at_random_lose_nothing_and_run_no_attempt_twice() -> None:
    result = run_stress(jobs=400, runners=3, kill_every=0.7, lease=1.0, deadline=240, log=print)
    print(result.report())
    assert result.problems == []
    assert result.killed >= 3, "the stress must actually kill runners"
    assert result.statuses.get("complete", 0) > 300
    assert result.events.get("abandoned", 0) + result.events.get("released", 0) > 0

"""The collector: what a scrape reads from the ledger.

Totals over the whole ledger (events per kind, the duration and wait histograms) are
folded into small tables at scrape time, by ``django_future_metrics_fold``
(sql/metrics.sql): each event is read once, by whichever process scrapes first, and
then every scrape reads a few rows. Gauges (live jobs, lag, runners) read partial
indexes of live work only. docs/metrics.md says why, and what each series means.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import transaction
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from django_future import database
from django_future.sql import fetch

#: New events folded by one scrape at most: a scrape after a long pause (or the first,
#: over an existing ledger) does a bounded share of the catching up (about 140 ms of
#: database time at this size); ``django_future_metrics_unfolded_events`` shows what is
#: left. At a 15 s interval it keeps up with about 2,200 jobs/s (docs/metrics.md).
FOLD_PER_SCRAPE = 100_000

#: The histograms folded by sql/metrics.sql, by the name they are exposed under.
HISTOGRAMS = {
    "duration": (
        "django_future_job_duration_seconds",
        "How long each finished attempt of a job ran (completed or failed), in seconds.",
    ),
    "wait": (
        "django_future_queue_wait_seconds",
        "How long each started job had been due before a runner started it, in seconds.",
    ),
}

#: Every series name the collector exposes (the view's ``name[]`` must be one of them).
NAMES = (
    "django_future_jobs",
    "django_future_due_jobs",
    "django_future_queue_lag_seconds",
    "django_future_runners",
    "django_future_events_total",
    *(name for name, _ in HISTOGRAMS.values()),
    "django_future_metrics_unfolded_events",
)


def exposed_name(family: Metric) -> str:
    """The name a family is exposed under (a counter's ends in ``_total``)."""
    return f"{family.name}_total" if family.type == "counter" else family.name


class LedgerCollector(Collector):
    """Reads the ledger at each scrape; keeps nothing between scrapes. With ``only``,
    yields only the families of those names (the ledger is read all the same)."""

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self.only = only

    def collect(self) -> Iterator[Metric]:
        for family in self._collect():
            if self.only is None or exposed_name(family) in self.only:
                yield family

    def _collect(self) -> Iterator[Metric]:
        database.require_postgresql()
        with transaction.atomic():
            fetch("metrics_fold", {"max_events": FOLD_PER_SCRAPE})
            totals = fetch("metrics_totals")
        live = fetch("metrics_live_jobs")
        due = fetch("metrics_due")
        ((alive, lost),) = fetch("metrics_runners")
        yield from self._jobs(live, due)
        runners = GaugeMetricFamily(
            "django_future_runners",
            "Runner processes that have not signed off: alive (lease current) or lost "
            "(lease ran out in the last day; their jobs are recovered).",
            labels=["state"],
        )
        runners.add_metric(["alive"], alive)
        runners.add_metric(["lost"], lost)
        yield runners
        yield from self._totals(totals)

    def _jobs(self, live: list[tuple[Any, ...]], due: list[tuple[Any, ...]]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "django_future_jobs",
            "Jobs not yet finished, by status (scheduled, claimed, running) and queue. "
            "Finished jobs are counted by django_future_events_total.",
            labels=["state", "queue"],
        )
        queues = set()
        for status, queue, count in sorted(live):
            jobs.add_metric([status, queue], count)
            queues.add(queue)
        yield jobs
        due_jobs = GaugeMetricFamily(
            "django_future_due_jobs", "Scheduled jobs that are due now, by queue.", labels=["queue"]
        )
        lag = GaugeMetricFamily(
            "django_future_queue_lag_seconds",
            "How long the oldest due job of each queue has been due, in seconds "
            "(0 when none is due).",
            labels=["queue"],
        )
        by_queue = {queue: (count, seconds) for queue, count, seconds in due}
        for queue in sorted(queues | set(by_queue)):
            count, seconds = by_queue.get(queue, (0, 0.0))
            due_jobs.add_metric([queue], count)
            lag.add_metric([queue], max(0.0, seconds))
        yield due_jobs
        yield lag

    def _totals(self, totals: list[tuple[Any, ...]]) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "django_future_events",
            "Events appended to the ledger, by kind (since the metrics were installed; "
            "pruning does not lower it).",
            labels=["kind"],
        )
        buckets: dict[str, dict[float, tuple[int, float]]] = defaultdict(dict)
        bounds: list[float] = []
        backlog = 0
        for what, key, le, count, seconds in totals:
            if what == "events":
                events.add_metric([key], count)
            elif what == "bucket":
                buckets[key][le] = (count, seconds)
            elif what == "bound":
                bounds.append(le)
            else:
                backlog = count
        yield events
        for key, (name, documentation) in HISTOGRAMS.items():
            family = HistogramMetricFamily(name, documentation)
            cumulative, total, points = 0, 0.0, []
            for le in sorted(bounds):
                count, seconds = buckets[key].get(le, (0, 0.0))
                cumulative += count
                total += seconds
                points.append(("+Inf" if math.isinf(le) else _bound(le), cumulative))
            family.add_metric([], points, sum_value=total)
            yield family
        unfolded = GaugeMetricFamily(
            "django_future_metrics_unfolded_events",
            "Events appended but not yet folded into the totals above (the next scrapes "
            "fold them, a bounded number each).",
        )
        unfolded.add_metric([], backlog)
        yield unfolded


def _bound(le: float) -> str:
    return repr(float(le)) if le != int(le) else f"{int(le)}.0"


def registry(only: frozenset[str] | None = None) -> CollectorRegistry:
    """A registry holding only the ledger's collector (not the process's own metrics)."""
    chosen = CollectorRegistry(auto_describe=False)
    chosen.register(LedgerCollector(only))
    return chosen

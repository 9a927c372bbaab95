"""One pgqueuer worker process for ``bench.peers.pgqueuer_bench``.

    python -m bench.peers.pgqueuer_worker --dsn CONNINFO --entrypoint NAME \
        --batch-size N --ready-file PATH

Connects (asyncpg), registers a no-op entrypoint on a ``QueueManager``, then writes
``--ready-file`` and waits for a line on stdin before calling ``QueueManager.run``, so
that the benchmark can start the clock once every worker has paid for interpreter start,
imports and connecting. SIGTERM/SIGINT set the manager's shutdown event: it finishes its
in-flight jobs, flushes its status-log buffer and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from bench.peers.pgqueuer_bench import asyncpg_connect_kwargs


async def noop(job: Job) -> None:
    """The benchmark job: does nothing."""


async def main(args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(args.dsn))
    try:
        qm = QueueManager(Queries.from_asyncpg_connection(connection))
        qm.entrypoint(args.entrypoint)(noop)

        Path(args.ready_file).write_text("ready\n")
        # Blocking read in a thread; SIGTERM before "go" keeps its default action (exit).
        if not await asyncio.to_thread(sys.stdin.readline):
            return  # stdin closed without "go": the benchmark gave up

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, qm.shutdown.set)
        await qm.run(
            batch_size=args.batch_size,
            # Only reached when the queue looks empty (all work is enqueued beforehand);
            # the benchmark stops us with SIGTERM once every job is logged.
            dequeue_timeout=timedelta(seconds=args.dequeue_timeout),
        )
    finally:
        await connection.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One pgqueuer benchmark worker.")
    parser.add_argument("--dsn", required=True, help="libpq conninfo or postgres URL")
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dequeue-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--ready-file", required=True)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop  # pgqueuer depends on it; its `pgq run` CLI runs on it too
    except ImportError:
        asyncio.run(main(args))
    else:
        uvloop.run(main(args))


if __name__ == "__main__":
    run()

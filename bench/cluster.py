"""Several daemons on one PostgreSQL ledger: their throughput, and how soon one takes over.

    python -m bench cluster [--quick]

A private PostgreSQL on 127.0.0.1 (the tests' server, with its own crash safety on:
fsync and synchronous commits, as in production) holds the ledger. Each round, with a
fresh database:

- throughput: the sending work of ``run --once`` (``Daemon.dispatch``, as ``bench smtp``
  measures it) of one-step leads over four credentials to Postfix's ``smtp-sink``, the
  ledger on PostgreSQL, with 0, 1 or 2 more daemons (``mailopsd run`` processes on the
  same config and ledger, each with its own state directory) standing by; against the
  same work with the ledger in SQLite, in the same rounds, alternating. One daemon works
  at a time on a shared ledger: the others only stand by, so 2 and 3 daemons send as
  fast as one, less what standing by costs;
- failover: two ``mailopsd run`` daemons on the ledger; the working one is SIGKILLed and
  started again, over and over; the time from the kill until the other holds the
  ledger's lock, as PostgreSQL shows it (``pg_locks``), p50 and max. Target: ≤ 15 s.

Needs Debian's postgresql and postfix (``smtp-sink``), as the tests do.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.daemon import mailopsd_command
from bench.report import Row
from bench.smtp import (
    alternate_rates,
    check_all_sent,
    plain_credentials,
    smtp_sink,
    stop,
    write_campaign,
)
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.notify import Notifier
from mailopsd.state import place, postgres
from tests.servers.postgres import PostgresServer, start_postgres, working_daemon_pid

TAKEOVER_TARGET_S = 15.0
THROUGHPUT_TARGET = 0.5
"""PostgreSQL's one working daemon against SQLite's, each ledger write a network round
trip away instead of a file's: at least half as fast."""


def _daemon(path: Path, state: Path, dsn: str) -> subprocess.Popen[bytes]:
    """A ``mailopsd run`` process on the config ``path`` and the ledger at ``dsn``."""
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        mailopsd_command(
            *("run", "--allow-plaintext-secrets", "--config", str(path)),
            *("--state-dir", str(state), "--ledger", dsn),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def _standing_by(path: Path, parent: Path, dsn: str, count: int) -> Iterator[None]:
    """``count`` daemons (processes) standing by on the ledger at ``dsn``."""
    processes = [_daemon(path, parent / f"standby{n}", dsn) for n in range(count)]
    try:
        yield
    finally:
        for process in processes:
            stop(process)


def _dispatch_rate(
    parent: Path, messages: int, port: int, *, server: PostgresServer | None, standby: int
) -> float:
    """Messages per second of ``Daemon.dispatch``: on SQLite, or on PostgreSQL.

    On PostgreSQL: a fresh database, and ``standby`` more daemons standing by.
    """
    directory = Path(tempfile.mkdtemp(dir=parent))
    path = write_campaign(directory, messages, plain_credentials(port, messages))
    state = directory / "state"
    dsn = None if server is None else server.create_database()
    if dsn is not None:
        place.point(state, dsn)
    settings = DaemonSettings(
        config_path=path,
        state_dir=state,
        load_options=LoadOptions(allow_plaintext_secrets=True),
        clock=lambda: datetime.now(UTC),
    )
    daemon = Daemon(settings, Notifier({}))
    try:
        daemon.start()  # takes the ledger: the others then stand by
        with _standing_by(path, directory, dsn, standby) if dsn else nullcontext():
            time.sleep(1.0 if standby else 0)  # they have started and asked once
            start = time.perf_counter()
            daemon.dispatch(max_ticks=1_000_000)
            elapsed = time.perf_counter() - start
    finally:
        daemon.close()
    try:
        check_all_sent(state, messages)
    finally:
        postgres.close_pools()
    shutil.rmtree(directory, ignore_errors=True)
    if server is not None and dsn is not None:
        server.drop_database(dsn)
    return messages / elapsed


def _wait_holder(admin: psycopg.Connection[Any], among: set[int], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = working_daemon_pid(admin)
        if holder in among:
            return holder
        time.sleep(0.01)
    raise RuntimeError(f"no daemon of {sorted(among)} took the ledger in {timeout_s:g} s")


def _takeovers(parent: Path, server: PostgresServer, port: int, kills: int) -> list[float]:
    """Seconds from each SIGKILL of the working daemon until the other held the lock."""
    directory = Path(tempfile.mkdtemp(dir=parent))
    path = write_campaign(directory, 10, plain_credentials(port, 10))
    dsn = server.create_database()

    def start(n: int) -> subprocess.Popen[bytes]:
        return _daemon(path, directory / f"state{n}", dsn)

    daemons = [start(0), start(1)]
    times = []
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            for _ in range(kills):
                working = _wait_holder(admin, {d.pid for d in daemons}, 60)
                victim = next(n for n, d in enumerate(daemons) if d.pid == working)
                os.kill(working, signal.SIGKILL)
                killed = time.monotonic()
                daemons[victim].wait()
                _wait_holder(admin, {daemons[1 - victim].pid}, TAKEOVER_TARGET_S * 4)
                times.append(time.monotonic() - killed)
                daemons[victim] = start(victim)
    finally:
        for daemon in daemons:
            daemon.kill()
            daemon.wait()
        server.drop_database(dsn)
        shutil.rmtree(directory, ignore_errors=True)
    return times


def run(quick: bool) -> list[Row]:
    """Throughput with 1, 2 and 3 daemons on PostgreSQL against SQLite; failover times."""
    messages, rounds, kills = (100, 1, 1) if quick else (5_000, 3, 20)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        parent = Path(tmp)
        (parent / "postgres").mkdir()
        server = start_postgres(parent / "postgres", durable=True)
        try:
            with smtp_sink() as port:
                runs = {
                    "sqlite": lambda: _dispatch_rate(
                        parent, messages, port, server=None, standby=0
                    ),
                    **{
                        f"postgresql x{n}": lambda n=n: _dispatch_rate(  # type: ignore[misc]
                            parent, messages, port, server=server, standby=n - 1
                        )
                        for n in (1, 2, 3)
                    },
                }
                rates = alternate_rates(runs, rounds)
                takeovers = _takeovers(parent, server, port, kills)
        finally:
            server.stop()
    rows = []
    sqlite = statistics.median(rates["sqlite"])
    for n in (1, 2, 3):
        rate = statistics.median(rates[f"postgresql x{n}"])
        rows.append(
            Row(
                benchmark="cluster",
                metric=f"msg/s, {n} daemon{'s' if n > 1 else ''} on PostgreSQL (1 works)",
                value=rate,
                unit="msg/s",
                reference="1 daemon on SQLite",
                reference_value=sqlite,
                ratio=rate / sqlite,
                target=f"≥ {THROUGHPUT_TARGET:g}x SQLite",
                met=rate / sqlite >= THROUGHPUT_TARGET,
                note=f"{messages} one-step leads, 4 credentials, smtp-sink; median of {rounds}",
            )
        )
    for name, value in (("p50", statistics.median(takeovers)), ("max", max(takeovers))):
        rows.append(
            Row(
                benchmark="cluster",
                metric=f"takeover after SIGKILL, {name}",
                value=value,
                unit="s",
                target=f"≤ {TAKEOVER_TARGET_S:g} s",
                met=value <= TAKEOVER_TARGET_S,
                note=f"{len(takeovers)} kills of the working daemon of two",
            )
        )
    return rows

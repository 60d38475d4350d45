"""Several daemons on one PostgreSQL ledger: their throughput, and how soon one takes over.

    python -m bench cluster [--quick]

A private PostgreSQL on 127.0.0.1 (the tests' server, with its own crash safety on:
fsync and synchronous commits, as in production) holds the ledger. Each round, with a
fresh database:

- throughput: six one-step campaigns of their own four credentials each, sent to
  Postfix's ``smtp-sink`` by 1, 2 or 3 ``mailopsd run`` daemons (one process each, each
  with its own state directory) on the same config and ledger, sharing the campaigns
  (two, three or six each); against one daemon with its ledger in SQLite, in the same
  rounds, alternating. The rate is counted in the ledger, from the moment every daemon
  holds its share of the campaigns (the start and the sharing out are not counted) to
  the moment nine tenths of the messages are sent. The machine's cores are shared by
  the daemons, PostgreSQL and the sink: more daemons than cores add no speed here;
- failover: two ``mailopsd run`` daemons on the ledger, one campaign each; one that
  holds a campaign is SIGKILLed and started again, over and over; the time from the
  kill until the other holds its campaigns (their leases' holder, as PostgreSQL shows
  it in ``pg_locks``), p50 and max. Target: ≤ 15 s.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench.daemon import mailopsd_command
from bench.report import Row
from bench.smtp import BODY_LINES, CREDENTIALS, alternate_rates, smtp_sink, stop
from mailopsd.state import postgres
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from tests.servers.postgres import PostgresServer, campaign_holders, start_postgres

CAMPAIGNS = tuple(f"c{n}" for n in range(6))
TAKEOVER_TARGET_S = 15.0
THROUGHPUT_TARGET = 0.5
"""PostgreSQL's daemons against SQLite's one, each ledger write a network round trip away
instead of a file's: at least half as fast."""


def _daemon(path: Path, state: Path, ledger: str) -> subprocess.Popen[bytes]:
    """A ``mailopsd run`` process on the config ``path`` and the ledger ``ledger``."""
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        mailopsd_command(
            *("run", "--allow-plaintext-secrets", "--config", str(path)),
            *("--state-dir", str(state), "--ledger", ledger),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _write_config(directory: Path, per_campaign: int, port: int, campaigns: int) -> Path:
    """``campaigns`` one-step campaigns of ``per_campaign`` leads, four credentials each."""
    config: dict[str, Any] = {"campaigns": {}}
    for name in CAMPAIGNS[:campaigns]:
        (directory / f"{name}.csv").write_text(
            "email,first_name\n"
            + "".join(f"{name}-{i}@sink.example.com,Lead{i}\n" for i in range(per_campaign))
        )
        config["campaigns"][name] = {
            "name": name,
            "leads": f"{name}.csv",
            "sequence": [
                {
                    "subject": "Hello {{ first_name }}",
                    "body": "Hi {{ first_name }},\n\n" + "\n".join(BODY_LINES) + "\n",
                }
            ],
            "smtp_credentials": {
                f"b{i}": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "smtp_username": f"{name}-u{i}",
                    "smtp_password": f"p{i}",
                    "from_name": f"Box {i}",
                    "from_email": f"{name}-box{i}@sender.example.com",
                    "daily_limit": per_campaign,
                    "tls": "none",
                }
                for i in range(CREDENTIALS)
            },
        }
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class _SentCount:
    """How many sends the daemons' ledger holds as sent, read on one connection.

    The ledger is opened once it exists, and kept open while the run is sampled, so that
    sampling costs the daemons one query each time, not a connection.
    """

    def __init__(self, open_ledger: Callable[[], Ledger | None]) -> None:
        self._open = open_ledger
        self._ledger: Ledger | None = None

    def __call__(self) -> int:
        """The count now (0 while the ledger or its tables are not made yet)."""
        try:
            if self._ledger is None:
                self._ledger = self._open()
            if self._ledger is None:
                return 0
            sends = self._ledger.totals.read().sends
        except StorageError:
            return 0
        return sum(count for (_, _, outcome), count in sends.items() if outcome == "sent")

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


def _shared_rate(
    parent: Path,
    messages: int,
    port: int,
    *,
    server: PostgresServer | None,
    daemons: int,
    whole: bool = False,
) -> float:
    """Messages per second that ``daemons`` daemons send together (see the module).

    With ``whole`` (a quick run, too short for the daemons to share the campaigns out
    before it ends), the rate of the whole run, from the first send.
    """
    directory = Path(tempfile.mkdtemp(dir=parent))
    path = _write_config(directory, messages // len(CAMPAIGNS), port, len(CAMPAIGNS))
    total = messages // len(CAMPAIGNS) * len(CAMPAIGNS)
    dsn = None if server is None else server.create_database()
    first_state = directory / "state0"

    def open_ledger() -> Ledger | None:
        if dsn is None:
            return Ledger.open_readonly(first_state)
        return Ledger.connect(dsn, create=False)  # the daemons make its tables

    sent = _SentCount(open_ledger)
    admin = None if dsn is None else psycopg.connect(dsn, autocommit=True)

    def shared_out() -> bool:
        if admin is None:
            return True
        holders = campaign_holders(admin, CAMPAIGNS)
        return None not in holders.values() and len(set(holders.values())) == daemons

    processes = [_daemon(path, directory / f"state{n}", dsn or "sqlite") for n in range(daemons)]
    try:
        launched = time.perf_counter()
        return _rate(_samples(sent, shared_out, total), total, launched, whole=whole)
    finally:
        for process in processes:
            stop(process)
        sent.close()
        if admin is not None:
            admin.close()
        postgres.close_pools()
        shutil.rmtree(directory, ignore_errors=True)
        if server is not None and dsn is not None:
            server.drop_database(dsn)


def _samples(
    sent_now: Callable[[], int], shared_out: Callable[[], bool], total: int
) -> list[tuple[float, int, bool]]:
    """(time, messages sent, campaigns shared out) until nine tenths of ``total`` are sent."""
    samples: list[tuple[float, int, bool]] = []
    shared = False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        sent = sent_now()
        shared = shared or shared_out()
        samples.append((time.perf_counter(), sent, shared))
        if sent >= total * 0.9:
            return samples
        time.sleep(0.02)
    raise RuntimeError(f"{total} messages were not sent in 600 s")


def _rate(
    samples: list[tuple[float, int, bool]], total: int, launched: float, *, whole: bool
) -> float:
    """The rate from the first sample with the campaigns shared out to the last.

    With ``whole``, if too little was left to send by then, the rate of the whole run
    from the daemons' launch (their start included).
    """
    end_at, end_sent, _ = samples[-1]
    shared = next(((at, sent) for at, sent, out in samples if out), None)
    if shared is not None and end_sent - shared[1] >= total * 0.5:
        return (end_sent - shared[1]) / (end_at - shared[0])
    if whole:
        return end_sent / (end_at - launched)
    left = total - (end_sent - shared[1]) if shared is not None else total
    raise RuntimeError(f"{left} of {total} sent before the campaigns were shared out")


def _wait_held(
    admin: psycopg.Connection[Any], campaigns: tuple[str, ...], among: set[int], timeout_s: float
) -> dict[str, int | None]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holders = campaign_holders(admin, campaigns)
        if all(pid in among for pid in holders.values()):
            return holders
        time.sleep(0.01)
    raise RuntimeError(f"no daemon of {sorted(among)} took {campaigns} in {timeout_s:g} s")


def _takeovers(parent: Path, server: PostgresServer, port: int, kills: int) -> list[float]:
    """Seconds from each SIGKILL of a daemon until the other held its campaigns."""
    directory = Path(tempfile.mkdtemp(dir=parent))
    path = _write_config(directory, 10, port, 2)
    dsn = server.create_database()
    campaigns = CAMPAIGNS[:2]

    def start(n: int) -> subprocess.Popen[bytes]:
        return _daemon(path, directory / f"state{n}", dsn)

    daemons = [start(0), start(1)]
    times = []
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            for _ in range(kills):
                pids = {d.pid for d in daemons}
                holders = _wait_held(admin, campaigns, pids, 60)
                deadline = time.monotonic() + 60
                while set(holders.values()) != pids and time.monotonic() < deadline:
                    time.sleep(0.01)  # one campaign each: the kill moves one
                    holders = campaign_holders(admin, campaigns)
                victim = next(n for n, d in enumerate(daemons) if d.pid == holders[campaigns[0]])
                os.kill(daemons[victim].pid, signal.SIGKILL)
                killed = time.monotonic()
                daemons[victim].wait()
                _wait_held(admin, campaigns, {daemons[1 - victim].pid}, TAKEOVER_TARGET_S * 4)
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
    messages, rounds, kills = (1_200, 1, 1) if quick else (60_000, 3, 20)
    sizes = (1, 2) if quick else (1, 2, 3)  # a quick run: three daemons take the same path
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        parent = Path(tmp)
        (parent / "postgres").mkdir()
        server = start_postgres(parent / "postgres", durable=True)
        try:
            with smtp_sink() as port:
                runs = {
                    "sqlite": lambda: _shared_rate(
                        parent, messages, port, server=None, daemons=1, whole=quick
                    ),
                    **{
                        f"postgresql x{n}": lambda n=n: _shared_rate(  # type: ignore[misc]
                            parent, messages, port, server=server, daemons=n, whole=quick
                        )
                        for n in sizes
                    },
                }
                rates = alternate_rates(runs, rounds)
                takeovers = _takeovers(parent, server, port, kills)
        finally:
            server.stop()
    rows = []
    sqlite = statistics.median(rates["sqlite"])
    for n in sizes:
        rate = statistics.median(rates[f"postgresql x{n}"])
        rows.append(
            Row(
                benchmark="cluster",
                metric=f"msg/s, {n} daemon{'s' if n > 1 else ''} on PostgreSQL, sharing",
                value=rate,
                unit="msg/s",
                reference="1 daemon on SQLite",
                reference_value=sqlite,
                ratio=rate / sqlite,
                target=f"≥ {THROUGHPUT_TARGET:g}x SQLite",
                met=rate / sqlite >= THROUGHPUT_TARGET,
                note=(
                    f"{messages} one-step leads in 6 campaigns of 4 credentials, smtp-sink; "
                    f"median of {rounds}"
                ),
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
                note=f"{len(takeovers)} kills of a daemon of two, one campaign each",
            )
        )
    return rows

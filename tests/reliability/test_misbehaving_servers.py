"""Servers misbehaving: the whole daemon against SMTP and IMAP servers that fail, then recover.

A daemon process (``Daemon.serve``, the loop ``mailopsd run`` runs) sends and polls for
several campaigns at once, each against its own loopback server scripted to fail in one
way: 421 at the greeting or at ``MAIL``, a connection cut in the middle of ``DATA``,
silence after the greeting or after the body, no STARTTLS, bad certificates; IMAP
servers that stall, drop the connection mid-session or change ``UIDVALIDITY``. After a
window of misbehaviour every server behaves again. The tests then read what each server
saw (how many connections, when, which commands in clear), the ledger, the daemon's CPU
time, its log and ``mailopsd status``.

The daemon's clock runs ``SPEED`` times faster than real time (time is injected, as
everywhere), so backoffs of minutes take seconds here; ticks are one second and the
network timeouts short. ``MAILOPSD_RELIABILITY=full`` makes the window a minute long.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import selectors
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    run_once,
    write_campaign,
    write_config,
    write_leads,
)
from tests.integration.test_inbox_failures import daemon as in_process_daemon
from tests.reliability.counts import count
from tests.servers.imap import Dovecot
from tests.servers.smtp import Handler, SmtpServer, TestController, start_smtp
from tests.servers.tlsca import TestCA, make_ca, new_authority
from tests.waiting import poll_until

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SPEED = 120  # daemon seconds per real second: a backoff of 30 s takes 0.25 s
SMTP_TIMEOUT_S = 1.5
IMAP_TIMEOUT_S = 1.0
IMAP_RETRY_S = 0.2
WINDOW_S = count(6, 60)
LEADS = count(6, 30)
MAX_CPU_RATIO = 0.25
BACKOFF_CAP_S = 1800 / SPEED  # the dispatcher's longest wait, in real seconds
WAIT_S = 30.0

# What ``mailopsd run`` does, with the settings a test needs: a fast clock, one-second
# ticks, short timeouts. ``DaemonSettings`` has no SMTP timeout, so the runner sets it on
# the daemon's transport after start.
_RUNNER = """
import json, logging, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.logformat import TextFormatter
from mailopsd.notify import Notifier

options = json.loads(sys.argv[1])
origin, start = time.monotonic(), datetime.fromisoformat(options["start"])

def clock():
    return start + timedelta(seconds=(time.monotonic() - origin) * options["speed"])

handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(TextFormatter())
logging.getLogger().handlers[:] = [handler]
logging.getLogger().setLevel(logging.INFO)
settings = DaemonSettings(
    config_path=Path(options["config"]),
    state_dir=Path(options["state"]),
    load_options=LoadOptions(allow_plaintext_secrets=True),
    clock=clock,
    dispatch_interval_s=1,
    inbox_check_s=1,
    imap_timeout_s=options["imap_timeout_s"],
    imap_retry_s=options["imap_retry_s"],
    smtp_timeout_s=options["smtp_timeout_s"],
)
daemon = Daemon(settings, Notifier({}))
try:
    daemon.start()
    daemon.serve()
finally:
    daemon.close()
"""


# The daemon process -------------------------------------------------------------------


@dataclass
class _DaemonProcess:
    """The daemon in a process of its own, so that its CPU time is its alone."""

    config: Path
    state: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = {
            "config": str(self.config),
            "state": str(self.state),
            "start": START.isoformat(),
            "speed": SPEED,
            "smtp_timeout_s": SMTP_TIMEOUT_S,
            "imap_timeout_s": IMAP_TIMEOUT_S,
            "imap_retry_s": IMAP_RETRY_S,
        }
        with self.log.open("wb") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _RUNNER, json.dumps(options)], stderr=stream
            )
        poll_until(
            lambda: " ready " in self.text(),
            timeout_s=WAIT_S,
            what="the daemon to be ready",
            between=self.check,
        )

    def check(self) -> None:
        """Fail at once, with its log, if the daemon died."""
        assert self.process is not None
        code = self.process.poll()
        assert code is None, f"the daemon exited with {code}:\n{self.text()[-3000:]}"

    def cpu_s(self) -> float:
        """User and system CPU time of the process (all its threads) so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; return the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=WAIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def _running(directory: Path) -> Iterator[_DaemonProcess]:
    daemon = _DaemonProcess(directory / "c.yaml", directory / "state", directory / "daemon.log")
    try:
        daemon.start()
        yield daemon
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds the daemon used over some wall-clock seconds."""

    cpu_s: float
    wall_s: float

    @property
    def ratio(self) -> float:
        return self.cpu_s / self.wall_s


@contextlib.contextmanager
def _measured(daemon: _DaemonProcess, into: dict[str, _Cpu], label: str) -> Iterator[None]:
    cpu, wall = daemon.cpu_s(), time.monotonic()
    yield
    into[label] = _Cpu(daemon.cpu_s() - cpu, time.monotonic() - wall)


def _status(state: Path, *extra: str) -> str:
    """``mailopsd status`` as an operator runs it (text, or ``--json``)."""
    when = (START + timedelta(hours=12)).isoformat()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailopsd",
            "status",
            "--state-dir",
            str(state),
            "--now",
            when,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(state: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(
        sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    ) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        return db.execute(sql, args).fetchall()


def _leads_done(state: Path) -> dict[str, int]:
    """Per campaign, how many leads have step 1 behind them (sent or unknown)."""
    if not (state / "ledger.sqlite3").exists():
        return {}
    rows = _rows(state, "SELECT campaign_id, count(*) FROM leads WHERE step >= 1 GROUP BY 1")
    return {campaign: int(done) for campaign, done in rows}


# A misbehaving SMTP server --------------------------------------------------------------

SMTP_FAULTS = (
    "greet-421",
    "mail-421",
    "cut-data",
    "stall-greeting",
    "stall-after-data",
    "no-starttls",
    "clear-auth",
    "unknown-ca",
    "wrong-host",
    "expired-cert",
)
TLS_FAULTS = frozenset({"no-starttls", "clear-auth", "unknown-ca", "wrong-host", "expired-cert"})
CUT_AFTER_BYTES = 200


@dataclass
class _FaultyHandler(Handler):
    """aiosmtpd's handler of the suite, plus a fault and a record of what the server saw.

    ``mode`` is ``ok`` or one of ``SMTP_FAULTS``; it is read at each connection and command,
    so a test switches the server's behaviour while it runs.
    """

    mode: str = "ok"
    connections: list[float] = field(default_factory=list)
    commands: list[tuple[str, bool]] = field(default_factory=list)  # (verb, under TLS)
    cut: list[float] = field(default_factory=list)
    swallowed: list[list[str]] = field(default_factory=list)  # recipients of unanswered bodies

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.mode == "stall-after-data":
            with self.lock:
                self.swallowed.append(list(envelope.rcpt_tos))
            await asyncio.sleep(3600)  # until the client gives up and the connection is lost
        return await super().handle_DATA(server, session, envelope)


class _FaultySession(SMTP):
    """One connection to the faulty server."""

    event_handler: _FaultyHandler

    async def _handle_client(self) -> None:
        mode = self.event_handler.mode
        if mode == "greet-421":
            await self.push("421 4.3.2 smtp.test is busy, closing connection")
            assert self.transport is not None
            self.transport.close()
        elif mode == "stall-greeting":
            try:
                await asyncio.sleep(3600)  # until the client gives up
            finally:
                if self.transport is not None:  # EOF leaves closing it to the protocol
                    self.transport.close()
        else:
            await super()._handle_client()

    def _note(self, verb: str) -> None:
        with self.event_handler.lock:
            self.event_handler.commands.append((verb, self._tls_protocol is not None))

    async def smtp_AUTH(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method
        self._note("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802
        self._note("MAIL")
        if self.event_handler.mode == "mail-421":
            await self.push("421 4.7.0 Too many messages, try again later; closing connection")
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        if self.event_handler.mode != "cut-data":
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readexactly(CUT_AFTER_BYTES)
        with self.event_handler.lock:
            self.event_handler.cut.append(time.monotonic())
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.abort()
        await asyncio.sleep(3600)  # connection_lost() cancels this task


class _FaultyController(TestController):
    """Builds each connection's session as the handler's mode says (TLS or not, which cert)."""

    def __init__(self, handler: _FaultyHandler, contexts: dict[str, ssl.SSLContext]) -> None:
        super().__init__(
            handler,
            hostname="127.0.0.1",
            port=0,
            server_hostname="smtp.test",
            auth_required=True,
            authenticator=_authenticator,
        )
        self.contexts = contexts

    def factory(self) -> SMTP:
        handler: _FaultyHandler = self.handler
        mode = handler.mode
        with handler.lock:
            handler.connections.append(time.monotonic())
        clear = mode in ("no-starttls", "clear-auth")
        session = _FaultySession(
            handler,
            **self.SMTP_kwargs,
            tls_context=None if clear else self.contexts.get(mode, self.contexts["ok"]),
            require_starttls=not clear,
            auth_require_tls=True,
        )
        if mode == "clear-auth":
            session._auth_require_tls = False  # offers AUTH without TLS: a downgrade bait
        return session


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
) -> AuthResult:
    """Accepts ``<login>`` with the password ``pw-<login>``, as the suite's servers do."""
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"pw-" + auth_data.login
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _start_faulty(contexts: dict[str, ssl.SSLContext], ca: TestCA) -> SmtpServer:
    handler = _FaultyHandler()
    controller = _FaultyController(handler, contexts)
    controller.start()
    handler.connections.clear()  # start() made one connection of its own
    return SmtpServer("127.0.0.1", controller.port, handler, controller, ca)


def _handler(server: SmtpServer) -> _FaultyHandler:
    handler = server.handler
    assert isinstance(handler, _FaultyHandler)
    return handler


# Config -------------------------------------------------------------------------------


def _lead(campaign: str, index: int) -> str:
    return f"{campaign}-{index:02d}@example.net"


def _write_config(
    directory: Path,
    credentials: dict[str, dict[str, Any]],
    *,
    follow_up: str = "30 days",
    **fields: Any,
) -> Path:
    """One campaign per scenario (its id is the scenario's), each with ``LEADS`` leads."""
    campaigns = {}
    for name, values in credentials.items():
        write_leads(directory / f"{name}.csv", [f"{_lead(name, i)},Lead{i}" for i in range(LEADS)])
        campaigns[name] = campaign_tree(
            {"a": values},
            delay=follow_up,
            name=f"Misbehaving {name}",
            leads=f"{name}.csv",
            **fields,
        )
    return write_config(directory, campaigns)


def _lines(log: str, campaign: str) -> list[str]:
    return [line for line in log.splitlines() if f"campaign={campaign} " in line]


# SMTP: the run --------------------------------------------------------------------------


@dataclass
class _SmtpRun:
    """What one daemon run against every faulty SMTP server left behind."""

    servers: dict[str, _FaultyHandler]
    attempts: dict[str, list[float]]  # connections during the window, seconds into it
    in_window: dict[str, list[tuple[str, bool]]]  # AUTH and MAIL seen then, and if under TLS
    recovered_s: dict[str, float]  # from the window's end to the first accepted message
    cpu: dict[str, _Cpu]
    log: str
    status_text: str
    status: dict[str, Any]
    sends: list[tuple[str, str, int, str]]  # campaign, email, step, outcome
    exit_code: int

    def retries_s(self, campaign: str) -> list[int]:
        """The backoffs the daemon logged for a campaign, in daemon seconds."""
        found = (re.search(r" retry_in_s=(\d+)", line) for line in _lines(self.log, campaign))
        return [int(match.group(1)) for match in found if match]

    def final(self, campaign: str) -> dict[str, list[str]]:
        """Per lead, the outcomes of its step-1 sends that went out (or may have)."""
        done: dict[str, list[str]] = {_lead(campaign, i): [] for i in range(LEADS)}
        for c, email, step, outcome in self.sends:
            if c == campaign and step == 1 and outcome in ("sent", "unknown"):
                done[email].append(outcome)
        return done


def _wait_for_recovery(
    daemon: _DaemonProcess, servers: dict[str, _FaultyHandler], state: Path
) -> dict[str, float]:
    """Wait until every lead has step 1 behind it; note when each server first took mail."""
    switched = time.monotonic()
    recovered: dict[str, float] = {}

    def done() -> bool:
        for fault, handler in servers.items():
            if fault not in recovered and handler.messages:
                recovered[fault] = time.monotonic() - switched
        finished = _leads_done(state)
        return len(recovered) == len(servers) and all(
            finished.get(fault) == LEADS for fault in servers
        )

    with contextlib.suppress(AssertionError):  # the tests say what did not recover
        poll_until(done, timeout_s=BACKOFF_CAP_S + 15, what="recovery", between=daemon.check)
    return recovered


def _misbehave(daemon: _DaemonProcess) -> float:
    """Let every server misbehave for ``WINDOW_S``; return when the window started."""
    started = time.monotonic()
    while time.monotonic() < started + WINDOW_S:
        daemon.check()
        time.sleep(0.1)
    return started


def _run_faults(directory: Path, servers: dict[str, _FaultyHandler]) -> _SmtpRun:
    for fault, handler in servers.items():
        handler.mode = fault
    cpu: dict[str, _Cpu] = {}
    state = directory / "state"
    with _running(directory) as daemon:
        with _measured(daemon, cpu, "window"):
            started = _misbehave(daemon)
        attempts, in_window = {}, {}
        for fault, handler in servers.items():
            with handler.lock:
                handler.mode = "ok"
                attempts[fault] = [at - started for at in handler.connections]
                in_window[fault] = list(handler.commands)
        with _measured(daemon, cpu, "recovery"):
            recovered = _wait_for_recovery(daemon, servers, state)
        exit_code = daemon.stop()
    status_text, status = _status(state), json.loads(_status(state, "--json"))
    sends = _rows(state, "SELECT campaign_id, email, step, outcome FROM sends ORDER BY id")
    return _SmtpRun(
        servers,
        attempts,
        in_window,
        recovered,
        cpu,
        daemon.text(),
        status_text,
        status,
        sends,
        exit_code,
    )


def _smtp_contexts(directory: Path) -> tuple[dict[str, ssl.SSLContext], TestCA]:
    authority = new_authority(directory, common_name="mailopsd misbehaviour CA")
    (directory / "other").mkdir()
    good = authority.issue("good", names=["127.0.0.1", "localhost"])
    wrong = authority.issue("wrong", names=["mx.other.test"])
    expired = authority.issue(
        "expired", names=["127.0.0.1"], valid_from_days=-10, valid_until_days=-1
    )
    contexts = {
        "ok": good.server_context(),
        "unknown-ca": make_ca(directory / "other").server_context(),
        "wrong-host": wrong.server_context(),
        "expired-cert": expired.server_context(),
    }
    return contexts, good


@pytest.fixture(scope="module")
def smtp_run(tmp_path_factory: pytest.TempPathFactory) -> _SmtpRun:
    """One daemon, one campaign per SMTP fault, a window of misbehaviour, then recovery."""
    directory = tmp_path_factory.mktemp("smtp-faults")
    contexts, good = _smtp_contexts(directory)
    servers: dict[str, SmtpServer] = {}
    try:
        for fault in SMTP_FAULTS:
            servers[fault] = _start_faulty(contexts, good)
        credentials = {
            fault: credential(server, fault, daily_limit=1000) for fault, server in servers.items()
        }
        _write_config(directory, credentials)
        run = _run_faults(directory, {fault: _handler(s) for fault, s in servers.items()})
    finally:
        for server in servers.values():
            server.controller.stop()
    print(run.log)  # shown with -s or when a test fails: what the operator reads
    print(run.status_text)
    return run


def _most_attempts(window_s: float) -> int:
    """Connections the dispatcher's backoff allows in ``window_s`` (real seconds), plus two:
    one made as the window opened, one as it closed."""
    at, failures, attempts = 0.0, 0, 1
    while True:
        failures += 1
        at += min(15 * 2**failures, 1800) / SPEED
        if at > window_s:
            return attempts + 2
        attempts += 1


# SMTP: the tests ------------------------------------------------------------------------

EXPECTED_LOG = {
    "greet-421": "smtp unavailable campaign=greet-421 credential=a code=421 "
    "detail=4.3.2 smtp.test is busy, closing connection",
    "mail-421": "smtp unavailable campaign=mail-421 credential=a code=421 "
    "detail=4.7.0 Too many messages, try again later; closing connection",
    "cut-data": "smtp connection lost during data, outcome unknown (never sent again) "
    "campaign=cut-data credential=a code=None detail=Connection unexpectedly closed",
    "stall-greeting": "smtp unavailable campaign=stall-greeting credential=a code=None "
    "detail=Connection unexpectedly closed: timed out",
    "stall-after-data": "smtp connection lost during data, outcome unknown (never sent again) "
    "campaign=stall-after-data credential=a code=None detail=Connection unexpectedly closed: "
    "The read operation timed out",
    "no-starttls": "detail=the server does not offer STARTTLS; refusing to send",
    "clear-auth": "detail=the server does not offer STARTTLS; refusing to send",
    "unknown-ca": "certificate verify failed: unable to get local issuer certificate",
    "wrong-host": "certificate verify failed: IP address mismatch, certificate is not valid "
    "for '127.0.0.1'",
    "expired-cert": "certificate verify failed: certificate has expired",
}


@pytest.mark.parametrize("fault", SMTP_FAULTS)
def test_smtp_backs_off(smtp_run: _SmtpRun, fault: str) -> None:
    """Connections to a failing server are few, each one waits at least the backoff the
    daemon logged before it, and the backoff doubles each time up to its cap."""
    attempts = smtp_run.attempts[fault]
    retries = smtp_run.retries_s(fault)
    print(f"{fault}: attempts at {[round(a, 2) for a in attempts]} s, retry_in_s={retries}")
    assert 2 <= len(attempts) <= _most_attempts(WINDOW_S)
    assert len(retries) >= len(attempts) - 1  # every failed try backs off, and says so
    assert retries == [min(15 * 2**n, 1800) for n in range(1, len(retries) + 1)]
    for before, after, waited in zip(attempts, attempts[1:], retries, strict=False):
        assert after - before >= waited / SPEED - 0.05


@pytest.mark.parametrize("fault", SMTP_FAULTS)
def test_smtp_never_in_clear(smtp_run: _SmtpRun, fault: str) -> None:
    """No AUTH and no MAIL ever reaches a server outside TLS; when TLS cannot be set up
    (no STARTTLS, a bad certificate) the server sees neither at all."""
    seen = smtp_run.servers[fault].commands
    assert all(under_tls for _, under_tls in seen), seen
    if fault in TLS_FAULTS:
        assert smtp_run.in_window[fault] == []


@pytest.mark.parametrize("fault", SMTP_FAULTS)
def test_smtp_never_sends_twice(smtp_run: _SmtpRun, fault: str) -> None:
    """Each lead's step 1 went out once, or is ``unknown`` (its body was cut or never
    answered), and an unknown one never reaches the server afterwards."""
    handler = smtp_run.servers[fault]
    received = Counter(rcpt for message in handler.messages for rcpt in message.rcpt_tos)
    final = smtp_run.final(fault)
    unknown = {email for email, outcomes in final.items() if outcomes == ["unknown"]}
    print(f"{fault}: sent={sum(received.values())} unknown={len(unknown)}")
    assert all(len(outcomes) == 1 for outcomes in final.values()), final
    assert set(received.values()) <= {1}
    assert not unknown & set(received)
    assert set(received) | unknown == set(final)
    lost = len(handler.cut) + len(handler.swallowed)
    assert len(unknown) == lost  # one lead per broken connection, not the whole batch
    assert {r for rcpts in handler.swallowed for r in rcpts} <= unknown
    if fault in ("cut-data", "stall-after-data"):
        assert 1 <= lost <= len(smtp_run.attempts[fault])


@pytest.mark.parametrize("fault", SMTP_FAULTS)
def test_smtp_operator_sees_why(smtp_run: _SmtpRun, fault: str) -> None:
    """Each failed try logs a WARNING that names the campaign, the credential and the
    server's answer or the local reason; ``status`` counts the unknown outcomes."""
    lines = _lines(smtp_run.log, fault)
    warnings = [line for line in lines if " WARNING " in line]
    assert warnings, lines
    assert all(EXPECTED_LOG[fault] in line for line in warnings), warnings[0]
    print(warnings[0])
    row = next(c for c in smtp_run.status["campaigns"] if c["id"] == fault)
    unknown = sum(1 for o in smtp_run.final(fault).values() if o == ["unknown"])
    assert row["smtp_credentials"][0]["unknown_outcomes"] == unknown


@pytest.mark.parametrize("fault", SMTP_FAULTS)
def test_smtp_recovers(smtp_run: _SmtpRun, fault: str) -> None:
    """Once the server behaves, mail flows again as soon as the pending backoff is over."""
    waited = smtp_run.retries_s(fault)[-1] / SPEED
    recovered = smtp_run.recovered_s.get(fault)
    print(f"{fault}: recovered after {recovered} s (pending backoff {waited:.2f} s)")
    assert recovered is not None, "nothing was accepted after the server recovered"
    assert recovered <= waited + 2 + SMTP_TIMEOUT_S
    assert all(smtp_run.final(fault).values())


def test_smtp_cpu_stays_low(smtp_run: _SmtpRun) -> None:
    """Facing ten misbehaving servers at once, then sending, the daemon uses little CPU:
    it sleeps between its tries instead of spinning."""
    print(
        {name: f"{cpu.cpu_s:.2f} s CPU / {cpu.wall_s:.1f} s" for name, cpu in smtp_run.cpu.items()}
    )
    assert smtp_run.cpu["window"].ratio < MAX_CPU_RATIO
    assert smtp_run.cpu["recovery"].ratio < MAX_CPU_RATIO


def test_smtp_stops_cleanly(smtp_run: _SmtpRun) -> None:
    """SIGTERM after all this ends the daemon with exit code 0."""
    assert smtp_run.exit_code == 0
    assert "stopping signal=SIGTERM" in smtp_run.log


# Regression: one cut connection used to cost the whole batch ------------------------------


def test_cut_during_data_costs_one_lead_and_backs_off(tmp_path: Path, test_ca: TestCA) -> None:
    """A connection cut during DATA makes that one send ``unknown``, stops the rest of the
    credential's batch and backs the credential off; after the backoff the others go out
    and the unknown one never does."""
    server = _start_faulty({"ok": test_ca.server_context()}, test_ca)
    handler = _handler(server)
    handler.mode = "cut-data"
    path = write_campaign(tmp_path, {"a": credential(server, "cut")}, leads=5, steps=1)
    clock = [START]
    try:
        with in_process_daemon(path, tmp_path / "state", clock) as running:
            running.dispatch()
            assert (len(handler.connections), len(handler.cut)) == (1, 1)
            clock[0] = START + timedelta(seconds=20)  # the first backoff is 30 s
            running.dispatch()
            assert len(handler.connections) == 1
            handler.mode = "ok"
            clock[0] = START + timedelta(minutes=2)
            running.dispatch()
    finally:
        server.controller.stop()
    done = "SELECT email, outcome FROM sends WHERE step = 1 AND outcome IN ('sent', 'unknown')"
    outcomes = dict(_rows(tmp_path / "state", done))
    received = [rcpt for message in handler.messages for rcpt in message.rcpt_tos]
    unknown = [email for email, outcome in outcomes.items() if outcome == "unknown"]
    assert len(unknown) == 1
    assert sorted(received) == sorted(set(outcomes) - set(unknown))
    assert len(received) == 4


# A misbehaving IMAP server ----------------------------------------------------------------

IMAP_FAULTS = ("imap-stall", "imap-drop")
UIDVALIDITY = "uidvalidity"
POLL_INTERVAL_S = 10  # the shortest the config allows
DROP_AFTER_READS = 6  # CAPABILITY, STARTTLS, the TLS handshake, CAPABILITY, LOGIN: then


def _reset(sock: socket.socket) -> None:
    """Make closing ``sock`` send a reset rather than a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass
class _ImapFront:
    """A TCP front to dovecot on loopback that passes connections through, or misbehaves.

    ``mode`` is read at each connection: ``pass``; ``stall`` accepts and never says a word;
    ``drop`` passes the greeting, STARTTLS and the TLS handshake, then resets both sides.
    """

    target_port: int
    mode: str = "pass"
    connections: list[float] = field(default_factory=list)
    listener: socket.socket = field(default_factory=socket.socket)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def start(self) -> None:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self._spawn(self._accept)

    def stop(self) -> None:
        self.stopping.set()
        for thread in list(self.threads):
            thread.join(timeout=5)
        self.listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="imap-front", daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            client.settimeout(5)
            with self.lock:
                self.connections.append(time.monotonic())
            self._spawn(self._serve, client, self.mode)

    def _serve(self, client: socket.socket, mode: str) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            if mode == "stall":
                self._hold(client)
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            stack.enter_context(upstream)
            with contextlib.suppress(OSError):
                self._pump(client, upstream, DROP_AFTER_READS if mode == "drop" else None)

    def _hold(self, client: socket.socket) -> None:
        client.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                if client.recv(4096) == b"":
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _pump(self, client: socket.socket, upstream: socket.socket, drop: int | None) -> None:
        reads = 0
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=0.1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    reads += source is client
                    if drop is not None and reads >= drop:
                        _reset(client)
                        _reset(upstream)
                        return
                    key.data.sendall(data)


# IMAP: the run --------------------------------------------------------------------------


@dataclass
class _ImapRun:
    """What one daemon run against stalling, dropping and renumbering IMAP servers left."""

    attempts: dict[str, list[float]]  # connections during the window, seconds into it
    status_during: str  # ``mailopsd status`` in the middle of the window
    recovered_s: dict[str, float]  # from the window's end until the mailbox reads again
    cpu: dict[str, _Cpu]
    log: str
    status_text: str
    received: list[str]  # the recipient of each message the SMTP server took
    sends: list[tuple[str, str, int, str, str]]  # campaign, email, step, outcome, intent_at
    replies: list[tuple[str, str]]  # campaign, email
    cursors: dict[str, tuple[int, str]]  # campaign: (uidvalidity, last result)
    validities: tuple[int, int]  # UIDVALIDITY before and after the change
    rescan: tuple[int, str] | None  # the cursor as the poll that read lead 1's reply left it
    exit_code: int


def _cursor(state: Path, campaign: str) -> tuple[int, str, str]:
    rows = _rows(
        state,
        "SELECT coalesce(uidvalidity, 0), coalesce(last_result, ''), coalesce(last_poll_at, '') "
        "FROM imap_cursors WHERE campaign_id = ?",
        campaign,
    )
    return rows[0] if rows else (0, "", "")


def _inbox_error(state: Path, campaign: str) -> str | None:
    return load_state(state).credential(f"{campaign}/a").inbox_error


@contextlib.contextmanager
def _cli_logging_kept() -> Iterator[None]:
    """``mailopsd run`` in this process sets up the root logger: put it back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _prepare_imap(directory: Path, dovecot: Dovecot, smtp: SmtpServer) -> None:
    """Step 1 to every lead and a first poll, by ``run --once``; lead 0 of the
    UIDVALIDITY campaign has answered by then."""
    state = directory / "state"
    with _cli_logging_kept():
        assert run_once(directory / "c.yaml", state, _stamp(START - timedelta(minutes=2))) == 0
        user = _imap_user(directory, UIDVALIDITY)
        dovecot.append(user, inbox_mail.reply(_lead(UIDVALIDITY, 0), _from(UIDVALIDITY), None))
        assert run_once(directory / "c.yaml", state, _stamp(START - timedelta(minutes=1))) == 0
    assert len(smtp.handler.messages) == LEADS * 3


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _from(campaign: str) -> str:
    return f"{campaign}@sender.example.com"


def _imap_user(directory: Path, campaign: str) -> str:
    config = yaml.safe_load((directory / "c.yaml").read_text())
    return str(config["campaigns"][campaign]["smtp_credentials"]["a"]["imap_username"])


def _renumber(directory: Path, dovecot: Dovecot, smtp: SmtpServer) -> tuple[int, int]:
    """Change the UIDVALIDITY of the mailbox (as a restored or rebuilt server does) and
    deliver lead 1's threaded reply; return the UIDVALIDITY before and after."""
    before = _cursor(directory / "state", UIDVALIDITY)[0]
    user = _imap_user(directory, UIDVALIDITY)
    dovecot.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(before + 1000), "INBOX")
    lead = _lead(UIDVALIDITY, 1)
    first = next(m for m in smtp.handler.messages if lead in m.rcpt_tos)
    dovecot.append(user, inbox_mail.reply(lead, _from(UIDVALIDITY), parsed(first)["Message-ID"]))
    return before, before + 1000


def _imap_recovered(state: Path, replied: Callable[[], bool]) -> dict[str, Callable[[], bool]]:
    def reads(campaign: str) -> Callable[[], bool]:
        return lambda: (
            _inbox_error(state, campaign) is None and _cursor(state, campaign)[1].startswith("ok")
        )

    return {**{fault: reads(fault) for fault in IMAP_FAULTS}, UIDVALIDITY: replied}


@dataclass
class _Rescan:
    """Notes the cursor of the UIDVALIDITY campaign as the poll that read lead 1's reply
    left it; true from then on."""

    state: Path
    seen: tuple[int, str] | None = None

    def __call__(self) -> bool:
        if self.seen is None and (UIDVALIDITY, _lead(UIDVALIDITY, 1)) in _replies(self.state):
            validity, result, _ = _cursor(self.state, UIDVALIDITY)
            self.seen = (validity, result)
        return self.seen is not None


def _watch_until(deadline: float, daemon: _DaemonProcess, rescan: _Rescan) -> None:
    while time.monotonic() < deadline:
        daemon.check()
        rescan()
        time.sleep(0.1)


def _run_imap(
    directory: Path, fronts: dict[str, _ImapFront], dovecot: Dovecot, smtp: SmtpServer
) -> _ImapRun:
    state = directory / "state"
    for fault in IMAP_FAULTS:
        fronts[fault].mode = fault.removeprefix("imap-")
    for front in fronts.values():
        with front.lock:
            front.connections.clear()  # the polls of the preparation
    cpu: dict[str, _Cpu] = {}
    polled = _cursor(state, UIDVALIDITY)[2]
    rescan = _Rescan(state)
    with _running(directory) as daemon:
        started = time.monotonic()
        with _measured(daemon, cpu, "window"):
            poll_until(
                lambda: _cursor(state, UIDVALIDITY)[2] != polled,
                timeout_s=WAIT_S,
                what="a poll",
                between=daemon.check,
            )
            validities = _renumber(directory, dovecot, smtp)
            _watch_until(started + WINDOW_S - 1.5, daemon, rescan)
            status_during = _status(state)
            _watch_until(started + WINDOW_S, daemon, rescan)
        attempts = {}
        for name, front in fronts.items():
            with front.lock:
                front.mode = "pass"
                attempts[name] = [at - started for at in front.connections]
        switched = time.monotonic()
        waiting = _imap_recovered(state, rescan)
        recovered: dict[str, float] = {}

        def done() -> bool:
            for name, check in waiting.items():
                if name not in recovered and check():
                    recovered[name] = time.monotonic() - switched
            return len(recovered) == len(waiting)

        with _measured(daemon, cpu, "recovery"), contextlib.suppress(AssertionError):
            poll_until(
                done,
                timeout_s=WINDOW_S + 15,
                what="the mailboxes to read again",
                between=daemon.check,
            )
        exit_code = daemon.stop()
    status_text = _status(state)
    return _ImapRun(
        attempts=attempts,
        status_during=status_during,
        recovered_s=recovered,
        cpu=cpu,
        log=daemon.text(),
        status_text=status_text,
        received=[m.rcpt_tos[0] for m in smtp.handler.messages],
        sends=_rows(state, "SELECT campaign_id, email, step, outcome, intent_at FROM sends"),
        replies=_replies(state),
        cursors={
            c: (v, r)
            for c, v, r in _rows(
                state, "SELECT campaign_id, uidvalidity, last_result FROM imap_cursors"
            )
        },
        validities=validities,
        rescan=rescan.seen,
        exit_code=exit_code,
    )


def _replies(state: Path) -> list[tuple[str, str]]:
    return [(c, e) for c, e in _rows(state, "SELECT campaign_id, email FROM replies")]


@pytest.fixture(scope="module")
def imap_run(
    tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA, dovecot: Dovecot
) -> _ImapRun:
    """One daemon sending for three campaigns whose mailboxes stall, drop the connection
    and change UIDVALIDITY while it runs."""
    directory = tmp_path_factory.mktemp("imap-faults")
    names = (*IMAP_FAULTS, UIDVALIDITY)
    smtp = start_smtp(test_ca, {name: f"pw-{name}" for name in names})
    fronts = {name: _ImapFront(dovecot.port) for name in names}
    try:
        for front in fronts.values():
            front.start()
        credentials = {}
        for name in names:
            user, _ = dovecot.add_user()
            imap = imap_fields(dovecot, user, imap_port=fronts[name].port)
            credentials[name] = credential(smtp, name, daily_limit=1000, **imap)
        every = f"0:00:{POLL_INTERVAL_S:02d}"
        _write_config(directory, credentials, follow_up="0:08:00", imap_poll_interval=every)
        _prepare_imap(directory, dovecot, smtp)
        run = _run_imap(directory, fronts, dovecot, smtp)
    finally:
        for front in fronts.values():
            front.stop()
        smtp.controller.stop()
    print(run.log)
    print(run.status_during)
    return run


def _most_polls(window_s: float, cost_s: float) -> int:
    """Polls the inbox's backoff allows in ``window_s`` when each failure costs ``cost_s``,
    plus two: one made as the window opened, one as it closed."""
    at, failures, polls = 0.0, 0, 1
    while True:
        failures += 1
        at += cost_s + IMAP_RETRY_S * 2 ** (failures - 1)
        if at > window_s:
            return polls + 2
        polls += 1


def _poll_cost_s(fault: str) -> float:
    """What one failed poll takes: a stall waits for the timeout, a drop fails at once."""
    return IMAP_TIMEOUT_S if fault == "imap-stall" else 0.0


EXPECTED_IMAP_ERROR = {
    "imap-stall": "connect: timed out",
    "imap-drop": "login: command: LOGIN => socket error: EOF",
}


# IMAP: the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("fault", IMAP_FAULTS)
def test_imap_backs_off(imap_run: _ImapRun, fault: str) -> None:
    """Polls of a stalling or dropping mailbox are retried after doubling delays: a few
    connections, never a loop."""
    attempts = imap_run.attempts[fault]
    print(f"{fault}: connections at {[round(a, 2) for a in attempts]} s")
    assert 2 <= len(attempts) <= _most_polls(WINDOW_S, _poll_cost_s(fault))
    for n, (before, after) in enumerate(itertools.pairwise(attempts)):
        assert after - before >= IMAP_RETRY_S * 2**n * 0.9


@pytest.mark.parametrize("fault", IMAP_FAULTS)
def test_imap_operator_sees_why(imap_run: _ImapRun, fault: str) -> None:
    """The log says once that the mailbox cannot be read and why, ``mailopsd status``
    shows it under the credential meanwhile, and the log says when it reads again."""
    lines = _lines(imap_run.log, fault)
    failed = [line for line in lines if "imap unavailable" in line]
    print(failed, [line for line in imap_run.status_during.splitlines() if "inbox:" in line])
    assert len(failed) == 1
    assert f"error={EXPECTED_IMAP_ERROR[fault]}" in failed[0]
    assert sum("imap reachable again" in line for line in lines) == 1
    shown = imap_run.status_during.split(f"campaign {fault} ", 1)[1].split("\ncampaign ", 1)[0]
    assert f"    inbox: {EXPECTED_IMAP_ERROR[fault]} (since " in shown
    assert "inbox:" not in imap_run.status_text


@pytest.mark.parametrize("fault", IMAP_FAULTS)
def test_imap_trouble_does_not_stop_sending(imap_run: _ImapRun, fault: str) -> None:
    """Follow-ups that fall due while the mailbox cannot be read go out on time, each
    lead getting each step once."""
    sent = [
        (email, step, at)
        for c, email, step, outcome, at in imap_run.sends
        if c == fault and outcome == "sent"
    ]
    window_end = START + timedelta(seconds=WINDOW_S * SPEED)
    assert Counter((email, step) for email, step, _ in sent) == {
        (_lead(fault, i), step): 1 for i in range(LEADS) for step in (1, 2)
    }
    assert all(datetime.fromisoformat(at) < window_end for _, step, at in sent if step == 2)
    received = Counter(rcpt for rcpt in imap_run.received if rcpt.startswith(f"{fault}-"))
    assert set(received.values()) == {2}


@pytest.mark.parametrize("fault", IMAP_FAULTS)
def test_imap_recovers(imap_run: _ImapRun, fault: str) -> None:
    """Once the server behaves, the next retry reads the mailbox and clears the error."""
    attempts = imap_run.attempts[fault]
    pending = IMAP_RETRY_S * 2 ** (len(attempts) - 1) + _poll_cost_s(fault)
    recovered = imap_run.recovered_s.get(fault)
    print(f"{fault}: read again after {recovered} s (pending backoff {pending:.1f} s)")
    assert recovered is not None, "the mailbox was not read again"
    assert recovered <= pending + 2.5
    assert imap_run.cursors[fault][1].startswith("ok")


def test_uidvalidity_change_while_sending(imap_run: _ImapRun) -> None:
    """The mailbox gets a new UIDVALIDITY while the daemon runs: the next poll reads it
    again from the first send, records the new reply once and the earlier one not again,
    and the lead that had replied gets no follow-up."""
    before, after = imap_run.validities
    assert imap_run.rescan == (after, "ok: 1 new, 1 seen before")
    assert imap_run.cursors[UIDVALIDITY][0] == after
    replies = Counter(email for c, email in imap_run.replies if c == UIDVALIDITY)
    assert replies == {_lead(UIDVALIDITY, 0): 1, _lead(UIDVALIDITY, 1): 1}
    steps = Counter(
        (email, step)
        for c, email, step, outcome, _ in imap_run.sends
        if c == UIDVALIDITY and outcome == "sent"
    )
    assert steps[_lead(UIDVALIDITY, 0), 2] == 0
    assert set(steps.values()) == {1}
    assert len(steps) == LEADS * 2 - 1
    print(f"UIDVALIDITY {before} -> {after}; connections at {imap_run.attempts[UIDVALIDITY]}")
    assert len(imap_run.attempts[UIDVALIDITY]) <= WINDOW_S // POLL_INTERVAL_S + 2


def test_imap_cpu_stays_low(imap_run: _ImapRun) -> None:
    """Polling stalled and dropping mailboxes while sending costs little CPU."""
    print(
        {name: f"{cpu.cpu_s:.2f} s CPU / {cpu.wall_s:.1f} s" for name, cpu in imap_run.cpu.items()}
    )
    assert imap_run.cpu["window"].ratio < MAX_CPU_RATIO
    assert imap_run.cpu["recovery"].ratio < MAX_CPU_RATIO
    assert imap_run.exit_code == 0

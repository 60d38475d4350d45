"""The ledger under a daemon that serves HTTP while other processes read the database.

SQLite's locks are POSIX locks, held per process: closing any descriptor of the database
file drops every lock the process holds on it. A reader in another process (the
``sqlite3`` shell, ``mailopsd status``) that then closed last would think the daemon
gone and delete the write-ahead log under it.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mailopsd.config.loader import LoadOptions, load_config
from mailopsd.http.app import LinkApp, Site
from mailopsd.http.ledgers import ThreadLedgers
from mailopsd.http.metrics import ReloadCounts
from mailopsd.state.ledger import LEDGER_FILE
from mailopsd.state.statefile import StateFile
from tests.daemons import in_process
from tests.dispatch_setup import credential, parsed, write_campaign
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KEY = "test-signing-key-0123456789abcdefghijklmnop"
HTTP = {"listen": "127.0.0.1:0", "public_base_url": "https://x.example", "signing_key": KEY}
SQLITE3 = shutil.which("sqlite3")


def _config(tmp_path: Path, smtp: SmtpServer, leads: int) -> Path:
    return write_campaign(tmp_path, {"a": credential(smtp, "ada")}, leads=leads, steps=2, http=HTTP)


def _get(listen: str, path: str) -> tuple[int, str]:
    host, _, port = listen.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _outside_readers(state: Path) -> None:
    """The ``sqlite3`` shell and ``mailopsd status`` read the ledger, each in its own process."""
    assert SQLITE3 is not None, "the sqlite3 shell is missing: the test command installs it"
    shell = subprocess.run(
        [SQLITE3, str(state / LEDGER_FILE), "select count(*) from sends"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    status = subprocess.run(
        [sys.executable, "-m", "mailopsd", "status", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr


def test_outside_readers_keep_the_write_ahead_log(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """HTTP reads and outside readers leave the WAL in place; nothing is sent twice."""
    path = _config(tmp_path, smtp_server, leads=6)
    state, clock = tmp_path / "state", [START]
    wal = state / f"{LEDGER_FILE}-wal"
    with in_process(path, state, clock) as daemon:
        daemon.start_http()
        listen = daemon.http_listen
        assert listen is not None
        assert daemon.dispatch() == 6
        first_wal = wal.stat().st_ino
        for round_ in range(3):
            for page in ("/metrics", "/readyz", "/healthz"):
                code, body = _get(listen, page)
                assert code == 200, f"round {round_} {page}: {body}"
                if page == "/metrics":
                    assert "mailopsd_ledger_readable 1.0" in body
            _outside_readers(state)
            assert wal.exists(), f"the write-ahead log vanished under the daemon (round {round_})"
            assert wal.stat().st_ino == first_wal, f"the write-ahead log was replaced ({round_})"
        clock[0] += timedelta(days=2)
        assert daemon.dispatch() == 6  # the follow-ups, recorded in the same ledger
        code, body = _get(listen, "/metrics")
        assert code == 200
        assert "mailopsd_ledger_readable 1.0" in body
    with smtp_server.handler.lock:
        received = list(smtp_server.handler.messages)
    sent = Counter((m.rcpt_tos[0], str(parsed(m)["Subject"])) for m in received)
    assert len(received) == 12
    assert max(sent.values()) == 1
    database = sqlite3.connect(state / LEDGER_FILE)
    try:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert database.execute("select count(*) from sends").fetchone()[0] == 12
    finally:
        database.close()


def test_readyz_fails_when_the_ledger_cannot_be_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``/readyz`` answers 503 and names the ledger when the ledger cannot be read."""
    (tmp_path / "leads.csv").write_text("email\nx@example.net\n")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"http": HTTP}))
    loaded = load_config(config, LoadOptions(allow_plaintext_secrets=True))
    state = tmp_path / "state"
    state.mkdir()
    (state / LEDGER_FILE).write_bytes(b"this is not a database\n" * 100)
    ledgers = ThreadLedgers(state)
    site = Site(
        signing_key=lambda: None,
        not_ready=lambda: None,
        ledger=ledgers.get,
        clock=lambda: START,
        loaded=lambda: loaded,
        state=StateFile,
        reloads=lambda: ReloadCounts(ok=0, failed=0),
        polls=dict,
    )
    app = LinkApp(site)
    caplog.set_level(logging.INFO, logger="mailopsd.http")
    try:
        responses = [app.respond({"REQUEST_METHOD": "GET", "PATH_INFO": "/readyz"}) for _ in "ab"]
    finally:
        ledgers.close()
    for response in responses:
        assert response.status.startswith("503")
        assert response.body == b"not ready: ledger cannot be read\n"
    warned = [r for r in caplog.records if "ledger not readable" in r.getMessage()]
    assert len(warned) == 1  # a probe every few seconds logs it once

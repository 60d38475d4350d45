"""A state directory that stops taking writes: disk full, low space, read-only.

The state directory lives on a small tmpfs of its own. The daemon must stop sending
(a send whose outcome cannot be recorded could go twice), say why in its log and in
``mailopsd status``, keep the state file whole, and resume by itself once writes
succeed again, without sending anything twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailopsd import cli
from mailopsd.daemon import Daemon
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.daemons import in_process
from tests.dispatch_setup import ADA, credential, imap_fields, parsed, sent_ids, write_campaign
from tests.servers.imap import Dovecot
from tests.servers.smtp import Handler, SmtpServer, start_smtp
from tests.servers.tlsca import TestCA
from tests.waiting import poll_until

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
_MOUNT = shutil.which("mount") or "mount"
_UMOUNT = shutil.which("umount") or "umount"


@contextlib.contextmanager
def _small_fs(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``, unmounted afterwards."""
    where.mkdir()
    mounted = subprocess.run(
        [_MOUNT, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"these tests mount a small tmpfs (as root): {mounted.stderr}"
    try:
        yield where
    finally:
        subprocess.run([_UMOUNT, "-l", str(where)], check=False)


def _fill(directory: Path, leave: int = 0) -> Path:
    """Fill the file system of ``directory`` until at most ``leave`` bytes are free."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        while True:
            stats = os.statvfs(directory)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave:
                break
            try:
                out.write(b"\0" * min(65536, max(free - leave, 4096)))
                out.flush()
            except OSError:
                break
    return filler


def _checkpoint(state: Path) -> None:
    """Empty the ledger's write-ahead log, so its next write needs new disk blocks."""
    connection = sqlite3.connect(state / "ledger.sqlite3")
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _daemon(
    path: Path, state: Path, clock: list[datetime], headroom: int
) -> AbstractContextManager[Daemon]:
    return in_process(path, state, clock, storage_headroom_bytes=headroom)


class _FillsDisk(Handler):
    """Accepts mail; fills the state directory's disk when the ``at``-th message arrives."""

    def __init__(self, fill: Callable[[], None], at: int) -> None:
        super().__init__({})
        self.fill, self.at = fill, at

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.at:
            self.fill()
        return reply


def _witness(server: SmtpServer) -> Counter[tuple[str, str]]:
    return Counter((m.rcpt_tos[0], str(parsed(m)["Subject"])) for m in server.handler.messages)


def _status(state: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli.main(["status", "--state-dir", str(state)]) == 0
    return capsys.readouterr().out


def test_disk_fills_mid_batch(
    tmp_path: Path,
    test_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills while a batch is out: the batch's outcomes wait, nothing more goes.

    Once space returns, the batch's sends are marked ``unknown`` (never sent again),
    and the campaign goes on to its end with every lead getting every step once.
    """
    disk = tmp_path / "disk"
    state = disk / "state"
    fillers: list[Path] = []

    def fill() -> None:
        _checkpoint(state)
        fillers.append(_fill(disk))

    server = start_smtp(test_ca, {"ada": "pw-ada"})
    server.handler = _FillsDisk(fill, at=30)
    server.controller.handler = server.handler
    path = write_campaign(
        tmp_path,
        {"a": credential(server, "ada", daily_limit=1000)},
        leads=120,
        steps=2,
        delay="0:01:00",
    )
    clock = [START]
    try:
        with _small_fs(disk), _daemon(path, state, clock, headroom=0) as daemon:
            state_text = (state / "state.yaml").read_bytes()
            with caplog.at_level(logging.INFO, logger="mailopsd"):
                daemon.dispatch()
            assert fillers, "the disk never filled"
            batch = len(server.handler.messages)
            assert batch >= 30  # the batch that was out when the disk filled went on
            assert daemon.storage_problem is not None
            assert "No space left" in daemon.storage_problem or "full" in daemon.storage_problem
            assert "state directory not writable, work paused" in caplog.text
            assert (state / "state.yaml").read_bytes() == state_text  # whole, as it was

            for _ in range(3):  # paused: time passes, nothing is sent
                clock[0] += timedelta(minutes=5)
                assert daemon.dispatch() == 0
                daemon.inbox_tick()
            assert len(server.handler.messages) == batch
            assert "not writable" in daemon.status_line()
            shown = _status(state, capsys)
            assert "not writable: no space left on the device" in shown

            fillers.pop().unlink()
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="mailopsd"):
                for _ in range(20):
                    clock[0] += timedelta(minutes=2)
                    daemon.dispatch()
            assert daemon.storage_problem is None
            assert "state directory writable again, work resumes" in caplog.text
            assert "StateWritable=True" in _status(state, capsys)
            ledger = Ledger.open(state)
            try:
                assert ledger.integrity_ok()
                outcomes: Counter[str] = Counter()
                for (_, _, outcome), count in ledger.totals.read().sends.items():
                    outcomes[outcome] += count
            finally:
                ledger.close()
    finally:
        server.controller.stop()
    seen = _witness(server)
    assert max(seen.values()) == 1, "a lead got a step twice"
    assert outcomes["unknown"] == batch  # the batch out when the disk filled
    assert outcomes["sent"] + outcomes["unknown"] == len(server.handler.messages) == 240


def _stop_reason(state: Path, email: str) -> str | None:
    ledger = Ledger.open_readonly(state)
    assert ledger is not None
    try:
        lead = ledger.leads.get("camp", email)
    finally:
        ledger.close()
    assert lead is not None
    return lead.stop_reason


def test_low_space_pauses_before_the_disk_is_full(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Below the reserve, sending stops while writes still work, and status says so."""
    disk = tmp_path / "disk"
    state = disk / "state"
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", daily_limit=1000)}, leads=100, steps=1
    )
    clock = [START]
    with _small_fs(disk, "8m"), _daemon(path, state, clock, headroom=2 << 20) as daemon:
        filler = _fill(disk, leave=1 << 20)
        assert daemon.dispatch() == 0
        assert smtp_server.handler.messages == []
        assert daemon.storage_problem is not None
        assert "kept in reserve for recording sends" in daemon.storage_problem
        shown = _status(state, capsys)  # there was room to record why
        assert "StateWritable=False NotWritable: work paused, nothing is sent:" in shown
        assert "Ready=False StateNotWritable" in shown
        filler.unlink()
        clock[0] += timedelta(minutes=1)
        assert daemon.dispatch() == 100
        assert "StateWritable=True" in _status(state, capsys)


def test_poll_recorded_once_space_returns(
    tmp_path: Path, smtp_server: SmtpServer, own_dovecot: Dovecot
) -> None:
    """A poll that finds a reply while the disk is full is recorded once space returns."""
    user, _ = own_dovecot.add_user()
    disk = tmp_path / "disk"
    state = disk / "state"
    box = credential(smtp_server, "ada", daily_limit=10, **imap_fields(own_dovecot, user))
    path = write_campaign(tmp_path, {"a": box}, leads=4, steps=2)
    clock = [START]
    with _small_fs(disk), _daemon(path, state, clock, headroom=0) as daemon:
        assert daemon.dispatch() == 4
        ids = sent_ids(smtp_server)
        own_dovecot.append(
            user, inbox_mail.reply("lead0001@example.net", ADA, ids["lead0001@example.net"])
        )
        _checkpoint(state)
        filler = _fill(disk)
        daemon.poll_inbox()
        assert daemon.storage_problem is not None
        assert _stop_reason(state, "lead0001@example.net") is None  # not recorded yet
        filler.unlink()
        daemon.inbox_tick()  # the poll held back is recorded now
        assert daemon.storage_problem is None
        assert _stop_reason(state, "lead0001@example.net") == "replied"
        clock[0] += timedelta(days=1, minutes=1)
        daemon.dispatch()
    followed = {m.rcpt_tos[0] for m in smtp_server.handler.messages[4:]}
    assert "lead0001@example.net" not in followed
    assert len(followed) == 3


def _mailopsd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailopsd", *args]


def test_read_only_state_directory_at_start(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started on a read-only state directory, the daemon waits and says why; made
    writable again, it starts its work by itself."""
    disk = tmp_path / "disk"
    state = disk / "state"
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", daily_limit=1000)}, leads=20, steps=1
    )
    run = ["run", "--config", str(path), "--state-dir", str(state), "--allow-plaintext-secrets"]
    with _small_fs(disk, "64m"):  # room for the daemon's reserve
        first = subprocess.run(
            _mailopsd(*run, "--once", "--now", "2026-11-23T10:00:00Z"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        assert len(smtp_server.handler.messages) == 20, first.stderr
        before = (state / "state.yaml").read_bytes()
        (tmp_path / "leads.csv").write_text(
            "email,first_name\n" + "".join(f"new{i}@example.net,New{i}\n" for i in range(10))
        )
        subprocess.run([_MOUNT, "-o", "remount,ro", str(disk)], check=True)
        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            daemon = subprocess.Popen(
                _mailopsd(*run, "--log-format", "text"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            poll_until(
                lambda: "state directory not writable, waiting" in log.read_text(),
                timeout_s=60,
                interval_s=0.1,
                what="the daemon to wait for its state directory",
                between=lambda: _still_running(daemon),
            )
            assert "Read-only file system" in log.read_text() or "readonly" in log.read_text()
            shown = _status(state, capsys)
            assert "not writable: the file system is read-only" in shown
            assert len(smtp_server.handler.messages) == 20
            assert daemon.poll() is None  # waiting, not exited
            subprocess.run([_MOUNT, "-o", "remount,rw", str(disk)], check=True)
            poll_until(
                lambda: len(smtp_server.handler.messages) == 30,
                timeout_s=60,
                interval_s=0.1,
                what="the daemon to send the 10 new leads",
                between=lambda: _still_running(daemon),
            )
            assert "state directory writable again" in log.read_text()
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        assert load_state(state).daemon.applied_revision is not None
        assert (state / "state.yaml").read_bytes() != before
    assert max(_witness(smtp_server).values()) == 1


def _still_running(process: subprocess.Popen[bytes]) -> None:
    assert process.poll() is None, f"the daemon exited with {process.returncode}"


def test_a_config_the_ledger_refuses_keeps_the_last_applied_one(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid push that cannot be applied is reported (Ready=False) and changes nothing;
    the daemon keeps working on what it applied, and the next push that applies clears it."""
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", daily_limit=1000)}, leads=3, steps=1
    )
    state = tmp_path / "state"
    clock = [START]
    with _daemon(path, state, clock, headroom=0) as daemon:
        revision = daemon.state.daemon.applied_revision
        with sqlite3.connect(state / "ledger.sqlite3") as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON leads WHEN NEW.email = 'new@example.net' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        with (tmp_path / "leads.csv").open("a") as leads:
            leads.write("new@example.net,New\n")
        daemon._reload_now(notify=False)
        ready = daemon.state.condition("Ready")
        assert ready is not None
        assert (ready.status, ready.reason) == ("False", "ReconcileFailed")
        assert f"not applied, running on revision {revision}: " in ready.message
        assert "refused by the test" in ready.message
        assert daemon.state.daemon.applied_revision == revision
        assert daemon.state.daemon.last_reload_result == "error"
        assert daemon.dispatch() == 3
        assert "Ready=False ReconcileFailed" in _status(state, capsys)
        with sqlite3.connect(state / "ledger.sqlite3") as db:
            db.execute("DROP TRIGGER refuse")
        daemon._reload_now(notify=False)
        ready = daemon.state.condition("Ready")
        assert ready is not None
        assert ready.status == "True"
        clock[0] += timedelta(minutes=1)
        assert daemon.dispatch() == 1
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages)[-1] == "new@example.net"

"""The inbox when things go wrong: dead, hung or refusing IMAP servers; IDLE; disposal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from mailopsd import cli
from mailopsd.config.models import Config, Credential
from mailopsd.daemon import Daemon
from mailopsd.inbox.imap import ImapError, MailboxAccess, poll
from tests import inbox_mail
from tests.daemons import in_process
from tests.dispatch_setup import ADA, credential, imap_fields, sent_ids, write_campaign
from tests.ledger_setup import read_ledger
from tests.servers.imap import Dovecot, HungServer, agreeable_imap
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def daemon(path: Path, state: Path, clock: list[datetime]) -> AbstractContextManager[Daemon]:
    """A daemon in this process, with short IMAP timeouts and retries, on a test clock."""
    return in_process(path, state, clock, imap_timeout_s=1.0, imap_retry_s=0.2)


def _tick_until(
    running: Daemon, check: Callable[[], object], *, what: str, timeout_s: float = 15
) -> None:
    """Tick the daemon's inbox until ``check()`` holds."""
    poll_until(check, timeout_s=timeout_s, what=what, between=running.inbox_tick)


def _error(running: Daemon) -> str | None:
    return running.state.credential("camp/a").inbox_error


def _sends(server: SmtpServer) -> int:
    return len(server.handler.messages)


def _campaign(tmp_path: Path, smtp: SmtpServer, imap: dict[str, Any], leads: int = 6) -> Path:
    return write_campaign(
        tmp_path,
        {"a": credential(smtp, "ada", daily_limit=2, **imap)},
        leads=leads,
        steps=1,
    )


def test_wrong_password_is_reported_and_sending_goes_on(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused login: one log line, an inbox_error in the state, and sends continue."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user, imap_password="wrong-password-canary")  # noqa: S106
    path = _campaign(tmp_path, smtp_server, imap)
    clock = [START]
    caplog.set_level(logging.INFO)
    with daemon(path, tmp_path / "state", clock) as running:
        running.dispatch()
        _tick_until(running, lambda: _error(running) is not None, what="the mailbox error")
        error = _error(running)
        assert error is not None
        assert error.startswith("login: ")
        assert "AUTHENTICATIONFAILED" in error or "Authentication failed" in error
        for _ in range(5):  # retries keep failing: still one line
            time.sleep(0.3)
            running.inbox_tick()
        clock[0] = START.replace(day=24)
        running.dispatch()
        assert _sends(smtp_server) == 4
    lines = [r.getMessage() for r in caplog.records if "imap unavailable" in r.getMessage()]
    assert len(lines) == 1
    capsys.readouterr()
    assert cli.main(["status", "--state-dir", str(tmp_path / "state"), "--now", "2026-11-24"]) == 0
    shown = capsys.readouterr().out
    assert "    inbox: login: " in shown  # refused, then slowed down by the server
    assert "wrong-password-canary" not in shown
    assert "wrong-password-canary" not in caplog.text
    assert "wrong-password-canary" not in (tmp_path / "state" / "state.yaml").read_text()


def test_server_stopped_mid_run_then_back(
    tmp_path: Path, smtp_server: SmtpServer, own_dovecot: Dovecot
) -> None:
    """The IMAP server goes away: sending goes on; it comes back: the poller recovers by
    itself and reads what arrived meanwhile."""
    user, _ = own_dovecot.add_user()
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada", daily_limit=2, **imap_fields(own_dovecot, user))},
        leads=6,
    )
    clock = [START]
    state = tmp_path / "state"
    with daemon(path, state, clock) as running:
        running.dispatch()
        running.inbox_tick()
        _tick_until(running, lambda: _last_result(state).startswith("ok"), what="a good poll")
        own_dovecot.stop()
        running.poll_inbox()
        assert _error(running) == "connect: Connection refused"
        clock[0] = START.replace(day=24)
        running.dispatch()
        assert _sends(smtp_server) == 6  # dispatching went on: 2 follow-ups and 2 new
        own_dovecot.start()
        ids = sent_ids(smtp_server)
        own_dovecot.append(
            user, inbox_mail.reply("lead0002@example.net", ADA, ids["lead0002@example.net"])
        )
        _tick_until(running, lambda: _error(running) is None, what="the mailbox to read again")
        assert _stop_reason(state, "lead0002@example.net") == "replied"


def test_hung_server_does_not_hold_dispatch(
    tmp_path: Path, smtp_server: SmtpServer, hung_imap: HungServer, dovecot: Dovecot
) -> None:
    """A server that accepts and never answers times out in a worker; sends go on."""
    imap = {
        **imap_fields(dovecot, "user1"),
        "imap_port": hung_imap.port,
    }
    path = _campaign(tmp_path, smtp_server, imap)
    clock = [START]
    with daemon(path, tmp_path / "state", clock) as running:
        running.dispatch()
        started = time.monotonic()
        running.inbox_tick()
        clock[0] = START.replace(day=24)
        running.dispatch()
        assert time.monotonic() - started < 1.0  # the poll is still hanging in its worker
        assert _sends(smtp_server) == 4
        _tick_until(running, lambda: _error(running) is not None, what="the mailbox error")
        assert _error(running) == "connect: timed out"


def test_idle_reads_a_reply_at_once(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """With imap_idle the reply is read within seconds, long before the next poll."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user, imap_idle=True, imap_poll_interval="1 hour")
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **imap)}, leads=2)
    clock = [START]
    state = tmp_path / "state"
    with daemon(path, state, clock) as running:
        running.dispatch()
        running.inbox_tick()
        _tick_until(running, lambda: _last_result(state).startswith("ok"), what="a good poll")
        time.sleep(0.5)  # the IDLE connection is waiting
        ids = sent_ids(smtp_server)
        dovecot.append(
            user, inbox_mail.reply("lead0001@example.net", ADA, ids["lead0001@example.net"])
        )
        _tick_until(
            running,
            lambda: _stop_reason(state, "lead0001@example.net") == "replied",
            what="the reply to stop the lead",
            timeout_s=10,
        )


@pytest.mark.parametrize("route", ["drop", "forward"])
def test_bounce_notifications(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, route: str
) -> None:
    """drop moves a processed report to Trash; an address gets it forwarded by SMTP; a
    reply is never touched."""
    user, _ = dovecot.add_user()
    target = "postmaster@sender.example.com"
    notifications = "drop" if route == "drop" else target
    imap = imap_fields(dovecot, user, bounce_notifications=notifications)
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **imap)}, leads=2)
    if route == "drop":
        client = dovecot.connect(user)
        client.create("Trash")
        client.logout()
    clock = [START]
    state = tmp_path / "state"
    with daemon(path, state, clock) as running:
        running.dispatch()
        ids = sent_ids(smtp_server)
        report = inbox_mail.postfix_dsn("lead0000@example.net", ADA, ids["lead0000@example.net"])
        dovecot.append(user, report)
        dovecot.append(
            user, inbox_mail.reply("lead0001@example.net", ADA, ids["lead0001@example.net"])
        )
        running.poll_inbox()
    if route == "drop":
        assert dovecot.uids(user) == [2]  # the reply stays
        assert len(dovecot.uids(user, "Trash")) == 1
    else:
        forwarded = smtp_server.handler.received_by(target)
        assert len(forwarded) == 1
        assert b"Final-Recipient: rfc822; lead0000@example.net" in forwarded[0].data
        assert dovecot.uids(user) == [1, 2]
    assert all("\\Seen" not in flags for flags in dovecot.flags(user).values())


def _last_result(state: Path) -> str:
    with read_ledger(state) as ledger:
        polls = ledger.inbox.polls()
    return polls[0].last_result or "" if polls else ""


def _stop_reason(state: Path, email: str) -> str | None:
    with read_ledger(state) as ledger:
        lead = ledger.leads.get("camp", email)
    return None if lead is None else lead.stop_reason


def _hostile(to: str) -> list[bytes]:
    big = b"A" * (20 * 1024 * 1024)
    attachment = b"\r\n".join(big[i : i + 76] for i in range(0, len(big), 76))
    return [
        (
            b"From: MAILER-DAEMON@mx.example.net\r\nTo: " + to.encode() + b"\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
            b"Content-Type: text/plain\r\n\r\nHuge.\r\n--B\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + attachment
            + b"\r\n--B--\r\n"
        ),
        (
            b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Delivery Status Notification\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n'
            b"--X\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
            b"Action: failed\r\nStatus: 5.1.1\r\n--X--\r\n"
        ),
        (
            b"From: lead0000@example.net\r\nSubject: =?x-unknown?B?////?=\r\n"
            b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\xff\xfe broken\r\n"
        ),
        (
            b"From: postmaster@mx.example.net\r\nContent-Type: multipart/report; boundary=\r\n\r\n"
            b"--\r\n--\r\nno closing boundary \x00\x01\x02\r\n"
        ),
    ]


def test_hostile_messages_never_stop_the_poller(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """Broken MIME, unknown charsets, a 20 MB report, a DSN without a recipient: the poll
    reads them all, downloads at most its body limit of each, and nothing crashes."""
    user, _ = dovecot.add_user()
    path = _campaign(tmp_path, smtp_server, imap_fields(dovecot, user))
    for raw in _hostile(ADA):
        dovecot.append(user, raw)
    state = tmp_path / "state"
    with daemon(path, state, [START]) as running:
        running.dispatch()
        running.poll_inbox()
        assert _error(running) is None
    assert _last_result(state) == "ok: 4 new"
    credential_config = yaml_credential(path)
    access = MailboxAccess.of(("camp", "a"), credential_config, path.parent)
    result = poll(access, {}, START)
    sizes = {arrival.uid: (arrival.size, arrival.complete) for arrival in result.arrivals}
    assert sizes[1][0] > 20 * 1024 * 1024
    assert sizes[1][1] is False  # read up to the body limit only
    assert result.bodies_fetched == 3  # the three that look like reports


def yaml_credential(path: Path) -> Credential:
    """Credential ``a`` of the campaign file, as the daemon reads it."""
    data = yaml.safe_load(path.read_text())
    return Config.model_validate(data).campaigns["camp"].smtp_credentials["a"]


def _access(server: Dovecot, user: str, **changes: Any) -> MailboxAccess:
    values: dict[str, Any] = {
        "campaign_id": "camp",
        "credential_id": "a",
        "host": server.host,
        "port": server.port,
        "username": SecretStr(user),
        "password": SecretStr(server.users[user]),
        "tls": "starttls",
        "ca_file": server.ca.ca_file,
        "folders": ("INBOX",),
        "timeout_s": 5.0,
    }
    values.update(changes)
    return MailboxAccess(**values)


def test_implicit_tls_and_certificate_checks(dovecot: Dovecot) -> None:
    """Implicit TLS works against the IMAPS port; a certificate from an unknown CA is
    refused before any login, with a message that says so."""
    user, _ = dovecot.add_user()
    dovecot.append(user, inbox_mail.stranger(ADA))
    since = datetime.now(UTC)
    access = _access(dovecot, user, port=dovecot.imaps_port, tls="implicit")
    result = poll(access, {}, since)
    assert len(result.arrivals) == 1
    again = poll(access, result.cursors, since)  # nothing new: nothing searched or fetched
    assert (again.arrivals, again.headers_fetched, again.bodies_fetched) == ((), 0, 0)
    assert again.cursors == result.cursors
    for port, tls in ((dovecot.imaps_port, "implicit"), (dovecot.port, "starttls")):
        with pytest.raises(ImapError, match=r"^tls: certificate not trusted"):
            poll(_access(dovecot, user, port=port, tls=tls, ca_file=None), {}, since)


def test_no_login_without_starttls(no_starttls_imap: list[bytes]) -> None:
    """A server that does not offer STARTTLS never sees the login."""
    port = int(no_starttls_imap[0])
    access = MailboxAccess(
        campaign_id="camp",
        credential_id="a",
        host="127.0.0.1",
        port=port,
        username=SecretStr("ada"),
        password=SecretStr("canary-password"),
        tls="starttls",
        ca_file=None,
        folders=("INBOX",),
        timeout_s=5.0,
    )
    with pytest.raises(ImapError, match=r"^tls: the server does not offer STARTTLS"):
        poll(access, {}, datetime.now(UTC))
    received = b"".join(no_starttls_imap[1:])
    assert b"LOGIN" not in received.upper()
    assert b"canary-password" not in received


@pytest.fixture
def no_starttls_imap() -> Iterator[list[bytes]]:
    """An IMAP server on loopback that offers no STARTTLS; item 0 is its port, then every
    line it received."""
    with agreeable_imap(b"IMAP4rev1 AUTH=PLAIN", "no-starttls-imap") as seen:
        yield seen


def test_only_the_held_campaigns_mailboxes_are_read(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """On a shared ledger the inbox reads, and keeps IDLE to, only the mailboxes of the
    campaigns its daemon holds: another's holder reads those."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user, imap_idle=True, imap_poll_interval="1 hour")
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **imap)}, leads=2)
    with daemon(path, tmp_path / "state", [START]) as running:
        running.dispatch()
        inbox, loaded = running._inbox, running.loaded
        assert inbox is not None
        assert loaded is not None
        inbox.hold(frozenset())  # another daemon holds camp
        assert inbox.start_due(loaded) == 0
        assert [mailbox.idle for mailbox in inbox._mailboxes.values()] == [None]
        inbox.hold(frozenset({"camp"}))
        assert inbox.start_due(loaded) == 1
        assert [mailbox.idle is not None for mailbox in inbox._mailboxes.values()] == [True]

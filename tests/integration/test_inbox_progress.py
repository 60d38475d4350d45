"""How far reading a mailbox is: each poll's folders, and the polls of run --once as one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from mailopsd.inbox.imap import BATCH, MailboxAccess, poll
from mailopsd.progress import Work
from tests.daemons import in_process
from tests.dispatch_setup import credential, imap_fields, write_campaign
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _fill(dovecot: Dovecot, user: str, count: int, folder: str = "INBOX") -> None:
    """Put ``count`` ordinary messages in ``user``'s folder (made if need be)."""
    client = dovecot.connect(user)
    try:
        if folder != "INBOX":
            client.create(folder)
        for number in range(count):
            message = (
                f"From: news@shop.example.org\r\nTo: {user}@example.com\r\n"
                f"Subject: Offer {number}\r\nMessage-ID: <offer-{number}@shop.example.org>\r\n"
                "\r\nEverything must go.\r\n"
            )
            client.append(folder, "", None, message.encode())
    finally:
        client.logout()


def _course(reports: list[Work], what: str) -> list[tuple[int, int | None, bool]]:
    return [(work.done, work.total, work.finished) for work in reports if work.what == what]


def test_a_poll_reports_each_folder(dovecot: Dovecot) -> None:
    """A first poll reports, folder by folder, the messages it read of those it found."""
    user, _ = dovecot.add_user()
    _fill(dovecot, user, 2 * BATCH + 6)
    _fill(dovecot, user, 5, folder="Junk")
    access = MailboxAccess(
        campaign_id="camp",
        credential_id="a",
        host=dovecot.host,
        port=dovecot.port,
        username=SecretStr(user),
        password=SecretStr(dovecot.users[user]),
        tls="starttls",
        ca_file=dovecot.ca.ca_file,
        folders=("INBOX", "Junk"),
        timeout_s=30.0,
    )
    reports: list[Work] = []
    found = poll(access, {}, START, progress=reports.append)
    assert len(found.arrivals) == 2 * BATCH + 11
    total = 2 * BATCH + 6
    assert _course(reports, "reading camp/a INBOX") == [
        (0, total, False),
        (BATCH, total, False),
        (2 * BATCH, total, False),
        (total, total, True),
    ]
    assert _course(reports, "reading camp/a Junk") == [(0, 5, False), (5, 5, True)]
    assert {work.unit for work in reports} == {"message"}


def test_run_once_reports_its_polls_as_one(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """The polls of run --once go to the daemon's progress as one piece of work."""
    first, _ = dovecot.add_user()
    second, _ = dovecot.add_user()
    credentials = {
        "a": credential(smtp_server, "ada", **imap_fields(dovecot, first)),
        "b": credential(smtp_server, "box2", **imap_fields(dovecot, second)),
    }
    path = write_campaign(tmp_path, credentials, leads=4)
    _fill(dovecot, first, BATCH + 8)
    _fill(dovecot, second, 3)
    reports: list[Work] = []
    with in_process(path, tmp_path / "state", [START], progress=reports.append) as running:
        running.dispatch()  # a first send: mail is read from its day on
        running.poll_inbox()
    course = _course(reports, "reading mailboxes")
    assert course[-1] == (BATCH + 11, BATCH + 11, True)
    assert [done for done, _, _ in course] == sorted(done for done, _, _ in course)
    assert [finished for _, _, finished in course].count(True) == 1

"""The inbox: an idle poll against a small and a large mailbox, and classification speed.

    python -m bench imap [--quick]

A private dovecot on loopback (Debian ``dovecot-imapd``) holds two mailboxes, one of 10
messages and one of 10,000, written straight into their Maildirs. After a first
poll has set the cursors, each round times one poll with nothing new (connect, STARTTLS,
login, one EXAMINE per folder, logout) on each mailbox in turn; an idle poll must cost the
same whatever the mailbox holds, so the ratio large/small should be about 1. Then the
two labelled bounce corpora are classified over and over (10,000 messages) for messages/s.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from bench.report import Row
from bench.timing import alternate
from mailopsd.inbox.classify import classify
from mailopsd.inbox.imap import Cursor, MailboxAccess, poll
from tests.servers.imap import Dovecot, start_dovecot
from tests.servers.tlsca import make_ca

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CORPORA = (DATA / "bounces", DATA / "bounces-more")


def _fill(server: Dovecot, user: str, count: int) -> None:
    """Write ``count`` messages into the user's Maildir (faster than APPEND)."""
    new = server.directory / "mail" / user / "Maildir" / "new"
    for name in ("new", "cur", "tmp"):
        (new.parent / name).mkdir(parents=True, exist_ok=True)
    for number in range(count):
        body = (
            f"From: person{number}@example.net\r\nTo: {user}@sender.example.com\r\n"
            f"Subject: message {number}\r\nMessage-ID: <m{number}@example.net>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello there.\r\n"
        )
        (new / f"{1700000000 + number}.M{number}P1.bench").write_text(body)
    for path in (server.directory / "mail" / user).rglob("*"):
        shutil.chown(path, "dovecot", "dovecot")
    shutil.chown(server.directory / "mail" / user, "dovecot", "dovecot")


def _access(server: Dovecot, user: str) -> MailboxAccess:
    return MailboxAccess(
        campaign_id="bench",
        credential_id=user,
        host=server.host,
        port=server.port,
        username=SecretStr(user),
        password=SecretStr(server.users[user]),
        tls="starttls",
        ca_file=server.ca.ca_file,
        folders=("INBOX",),
    )


def _idle_polls(server: Dovecot, sizes: dict[str, int], rounds: int) -> dict[str, float]:
    since = datetime.now(UTC) - timedelta(days=3650)
    accesses: dict[str, tuple[MailboxAccess, dict[str, Cursor]]] = {}
    for label, count in sizes.items():
        user, _ = server.add_user()
        _fill(server, user, count)
        access = _access(server, user)
        first = poll(access, {}, since)  # indexes the mailbox and sets the cursor
        print(f"  first poll of {label}: {len(first.arrivals)} messages in {first.seconds:.2f} s")
        accesses[label] = (access, first.cursors)

    def idle(label: str) -> None:
        access, cursors = accesses[label]
        result = poll(access, cursors, since)
        if result.arrivals or result.headers_fetched:
            raise RuntimeError(f"an idle poll of {label} read messages")

    return alternate({label: (lambda label=label: idle(label)) for label in sizes}, rounds)


def _classification(count: int) -> float:
    samples = [path.read_bytes() for corpus in CORPORA for path in sorted(corpus.glob("*.eml"))]
    messages = [samples[i % len(samples)] for i in range(count)]
    start = time.perf_counter()
    for raw in messages:
        classify(raw)
    return count / (time.perf_counter() - start)


def run(quick: bool) -> list[Row]:
    """Idle polls on a small and a large mailbox, then classification speed."""
    if shutil.which("dovecot") is None:
        raise RuntimeError("dovecot is not installed (Debian package dovecot-imapd)")
    large = 200 if quick else 10_000
    rounds = 1 if quick else 20
    work = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    server = start_dovecot(make_ca(work))
    try:
        sizes = {"10 messages": 10, f"{large:,} messages": large}
        medians = _idle_polls(server, sizes, rounds)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    small_s, large_s = medians.values()
    rates = [_classification(500 if quick else 10_000) for _ in range(3)]
    rate = statistics.median(rates)
    full = not quick
    note = f"median of {rounds}"
    return [
        Row("imap", "idle poll, 10 messages", small_s * 1000, "ms", note=note),
        Row(
            "imap",
            f"idle poll, {large:,} messages",
            large_s * 1000,
            "ms",
            "idle poll, 10 messages",
            small_s * 1000,
            large_s / small_s,
            "ratio ≤ 1.2" if full else "",
            large_s / small_s <= 1.2 if full else None,
            note,
        ),
        Row(
            "imap",
            "classification",
            rate,
            "msg/s",
            target="≥ 2,000 msg/s" if full else "",
            met=rate >= 2000 if full else None,
            note="median of 3, the labelled corpus over and over",
        ),
    ]

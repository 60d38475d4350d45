"""The inbox: an idle poll against a small and a large mailbox, and classification speed.

    python -m bench.imap [--messages 10000] [--rounds 30]

A private dovecot on loopback (Debian ``dovecot-imapd``) holds two mailboxes, one of 10
messages and one of ``--messages``, written straight into their Maildirs. After a first
poll has set the cursors, each round times one poll with nothing new (connect, STARTTLS,
login, one EXAMINE per folder, logout) on each mailbox in turn; an idle poll must cost the
same whatever the mailbox holds, so the ratio large/small should be about 1. Then the
labelled bounce corpus is classified over and over (10,000 messages) for messages/s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from bench.timing import alternate, machine
from mailopsd.inbox.classify import classify
from mailopsd.inbox.imap import Cursor, MailboxAccess, poll
from tests.servers.imap import Dovecot, start_dovecot
from tests.servers.tlsca import make_ca

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "bounces"


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
    samples = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    messages = [samples[i % len(samples)] for i in range(count)]
    start = time.perf_counter()
    for raw in messages:
        classify(raw)
    return count / (time.perf_counter() - start)


def main() -> None:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--classify", type=int, default=10_000)
    args = parser.parse_args()
    if shutil.which("dovecot") is None:
        sys.exit("dovecot is not installed (Debian package dovecot-imapd)")
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    server = start_dovecot(make_ca(work))
    try:
        sizes = {"10 messages": 10, f"{args.messages:,} messages": args.messages}
        medians = _idle_polls(server, sizes, args.rounds)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    small, large = medians.values()
    for label, seconds in medians.items():
        print(f"  idle poll, {label:<20} {seconds * 1000:8.1f} ms (median of {args.rounds})")
    print(f"  ratio large/small: {large / small:.2f}")
    rates = [_classification(args.classify) for _ in range(3)]
    print(f"  classification: {statistics.median(rates):,.0f} messages/s (median of 3)")


if __name__ == "__main__":
    main()

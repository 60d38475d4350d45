"""Hostile mail: thousands of malformed messages through the classifier and the IMAP path.

The messages come from ``tests.reliability.malformed_mail``: the real-world corpus broken
on purpose (truncated, boundaries lost or repeated, nested hundreds deep, header fields of
megabytes, bad charsets and encodings, NUL and 8-bit bytes, odd line endings, broken
delivery reports and complaints, encoded-word and JSON bombs). ``tests/unit`` fuzzes the
classifier with random bytes and small edits; here whole families of breakage are
applied at every size, then:

- a few thousand go straight through ``classify``, in a thread watched for hangs; the
  slowest message is compared with the dearest well-formed report of the same size (a
  ratio, not seconds), and ``tracemalloc`` bounds what one message may take by its size
  and what a batch may leave behind;
- a batch is APPENDed to the real dovecot and read by a daemon's inbox whose leads the
  messages name, so that they reach the recording code: one poll must finish, account
  for every message once, keep its memory bounded by the header and body limits rather
  than the size of the mailbox, and leave every message unread; polling again, with the
  cursor or from scratch, records nothing new;
- a poll of four batches takes the memory of one, and reports nested thousands deep or
  with 8-bit headers are forwarded (``bounce_notifications``) byte for byte.

``MAILOPSD_RELIABILITY=full`` runs 30,000, 3,000 and 4,000 messages instead of 3,000, 300
and 400; ``MAILOPSD_SEED`` replays a run.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import imaplib
import itertools
import json
import logging
import sqlite3
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mailopsd.config.loader import LoadedConfig
from mailopsd.daemon import Daemon
from mailopsd.inbox import imap, record
from mailopsd.inbox.classify import KINDS, Classification, classify
from mailopsd.state.ledger import Ledger
from tests.daemons import in_process
from tests.dispatch_setup import ADA, credential, imap_fields, sent_ids, write_campaign
from tests.reliability.counts import count, seeded
from tests.reliability.malformed_mail import Malformed, Targets, generate
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

MiB = 2**20
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HANG_S = 120.0  # no message may take this long: only a hang detector, never a benchmark
SLOWEST_RATIO = 10.0  # slowest message / the dearest well-formed report of its size
READ = 2 * MiB  # what the classifier reads of a message


# --- Watching a batch for hangs -----------------------------------------------------------


@dataclass
class _Watch:
    """The message a worker thread is on, and since when (monotonic seconds)."""

    current: str = ""
    since: float = 0.0
    error: BaseException | None = None

    def on(self, name: str) -> None:
        self.current, self.since = name, time.monotonic()


def _watched(work: Callable[[_Watch], None], *, name: str) -> None:
    """Run ``work`` in a daemon thread; fail, naming the message, if one takes ``HANG_S``."""
    watch = _Watch()

    def run() -> None:
        try:
            work(watch)
        except BaseException as err:  # handed to the test thread, which raises it
            watch.error = err

    thread = threading.Thread(target=run, name=name, daemon=True)
    watch.on("start")
    thread.start()
    while thread.is_alive():
        thread.join(1.0)
        if thread.is_alive() and time.monotonic() - watch.since > HANG_S:
            pytest.fail(f"{name}: no progress for {HANG_S:.0f} s on {watch.current} (a hang)")
    if watch.error is not None:
        raise watch.error


# --- Timing against well-formed reports ---------------------------------------------------

_LINE = b"The quick brown fox jumps over the lazy dog while the mail server retries later.\r\n"


_HEAD = (
    b"From: MAILER-DAEMON@mx.example.net\r\nTo: ada@sender.example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
)


def _well_formed(size: int) -> tuple[bytes, ...]:
    """Delivery reports of about ``size`` bytes, each dear in its way: one of many text
    parts (the classifier reads them all), two of a single part naming no recipient (read
    to the end of every reader, ``flufl.bounce`` included), of prose or of short lines."""
    head = _HEAD + b'Content-Type: multipart/report; boundary="r"\r\n\r\n'
    part = b"--r\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + _LINE * 600
    report = (
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; lead@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--r--\r\n"
    )
    parts = head + part * max(1, (size - len(head)) // len(part)) + report
    prose = _HEAD + b"\r\n" + _LINE * max(1, size // len(_LINE))
    return parts, prose, _HEAD + b"\r\n" + b"x\r\n" * (size // 3)


def _seconds(raw: bytes, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        classify(raw)
        best = min(best, time.perf_counter() - started)
    return best


@dataclass
class _References:
    """Classify times of well-formed reports at sizes 4 KiB..4 MiB (the dearest of each
    size, best of three)."""

    sizes: list[int] = field(default_factory=lambda: [2**k for k in range(12, 23)])
    seconds: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seconds = [
            max(_seconds(raw, repeat=3) for raw in _well_formed(size)) for size in self.sizes
        ]

    def ratio(self, raw: bytes, seconds: float) -> float:
        """How many times slower than well-formed reports of the next size up."""
        index = min(bisect.bisect_left(self.sizes, len(raw)), len(self.sizes) - 1)
        return seconds / self.seconds[index]


# --- Stage one: the classifier ------------------------------------------------------------


def _check(message: Malformed, result: Classification) -> None:
    """A class, no last-resort guard, printable as UTF-8 (as the ledger and the CLI need)."""
    assert result.kind in KINDS, message.describe()
    assert not any(n.startswith("unreadable") for n in result.notes), (
        message.describe(),
        result.notes,
    )
    json.dumps(dataclasses.asdict(result), ensure_ascii=False).encode()


@dataclass(frozen=True)
class _Timed:
    """One message's classify time and its ratio to a well-formed report of its size; the
    bytes are kept only for the slow ones, to time them again."""

    ratio: float
    seconds: float
    name: str
    raw: bytes = b""


def test_classifier_survives_thousands_of_malformed_messages() -> None:
    """Every generated message gets a class without the last-resort guard, none hangs, and
    the slowest costs at most SLOWEST_RATIO times the dearest well-formed report of its
    size."""
    rng = seeded("hostile classify")
    references = _References()
    rows: list[_Timed] = []
    sizes: list[int] = []

    def work(watch: _Watch) -> None:
        for message in generate(rng, count(2000, 30000), max_size=4 * MiB):
            watch.on(message.describe())
            started = time.perf_counter()
            result = classify(message.raw)
            seconds = time.perf_counter() - started
            _check(message, result)
            ratio = references.ratio(message.raw, seconds)
            kept = message.raw if ratio > 0.5 else b""  # a shared machine's stalls are noise
            rows.append(_Timed(ratio, seconds, message.describe(), kept))
            sizes.append(len(message.raw))

    _watched(work, name="hostile-classify")
    worst = _retimed(rows, references)
    median = statistics.median(row.seconds for row in rows)
    print(
        f"classified {len(rows)} messages, {sum(sizes) / MiB:.0f} MiB, largest "
        f"{max(sizes) / MiB:.1f} MiB; median {median * 1e3:.2f} ms; slowest "
        f"{worst[0].seconds * 1e3:.1f} ms = {worst[0].ratio:.1f}x the dearest well-formed "
        f"report of its size: {worst[0].name}"
    )
    assert worst[0].ratio <= SLOWEST_RATIO, [f"{r.ratio:.1f}x {r.name}" for r in worst[:5]]


def _retimed(rows: list[_Timed], references: _References) -> list[_Timed]:
    """The ten worst ratios timed again, best of three, worst first."""
    again = []
    for row in sorted(rows, key=lambda row: row.ratio, reverse=True)[:10]:
        if row.raw:
            seconds = _seconds(row.raw, repeat=3)
            row = _Timed(references.ratio(row.raw, seconds), seconds, row.name, row.raw)
        again.append(row)
    return sorted(again, key=lambda row: row.ratio, reverse=True)


def _peaks(messages: Iterable[Malformed]) -> tuple[float, int, str]:
    """Classify each, checking its traced peak against its bound; the highest share of the
    bound, that peak (bytes) and the message's name."""
    worst = (0.0, 0, "")
    for message in messages:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        classify(message.raw)
        peak = tracemalloc.get_traced_memory()[1] - before
        bound = 8 * min(len(message.raw), READ) + 16 * MiB
        assert peak <= bound, f"{peak / MiB:.1f} MiB for {message.describe()}"
        worst = max(worst, (peak / bound, peak, message.describe()))
    return worst


def test_classifier_memory_is_bounded_by_the_message() -> None:
    """Classifying one message never traces more than a small multiple of what is read of
    it plus a constant, and a batch leaves nothing behind but bounded caches."""
    rng = seeded("hostile memory")
    total = count(300, 3000)
    messages = generate(rng, total, max_size=4 * MiB)
    tracemalloc.start()
    try:
        first = _peaks(itertools.islice(messages, total // 3))  # warms the caches
        kept = tracemalloc.get_traced_memory()[0]
        worst = max(first, _peaks(messages))
        grown = tracemalloc.get_traced_memory()[0] - kept
    finally:
        tracemalloc.stop()
    print(
        f"memory: highest peak {worst[1] / MiB:.1f} MiB = {worst[0]:.2f} of its bound, for "
        f"{worst[2]}; retained growth after warm-up {grown / MiB:.2f} MiB"
    )
    assert grown <= 4 * MiB


# --- Stage two: a batch through dovecot and the daemon's inbox ----------------------------


def _daemon(path: Path, state: Path, clock: list[datetime]) -> AbstractContextManager[Daemon]:
    return in_process(path, state, clock, imap_timeout_s=30.0, imap_retry_s=0.2)


def _append(client: imaplib.IMAP4, raw: bytes) -> bool:
    """APPEND one message; whether the server took it (dovecot refuses an empty one)."""
    status, data = client.append("INBOX", "", None, raw)
    assert status == "OK" or not raw.strip(), data
    return status == "OK"


def _classify_and_append(
    server: Dovecot, user: str, messages: Iterable[Malformed], watch: _Watch
) -> list[int]:
    """Classify each message on its own (a hang fails here, not in a poll), then APPEND it
    over one connection; the sizes of those the server took."""
    stored = []
    client = server.connect(user)
    try:
        for message in messages:
            watch.on(message.describe())
            _check(message, classify(message.raw))
            if _append(client, message.raw):
                stored.append(len(message.raw))
    finally:
        client.logout()
    return stored


def _rows(state: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(state / "ledger.sqlite3") as db:
        return db.execute(sql).fetchall()


def _counts(state: Path) -> dict[str, int]:
    tables = ("inbox_messages", "replies", "bounces", "suppressions")
    return {t: int(_rows(state, f"SELECT count(*) FROM {t}")[0][0]) for t in tables}  # noqa: S608


def _poll_once(running: Daemon, state: Path) -> tuple[str, int, int]:
    """Tick the daemon's inbox until its first poll is recorded: the result line, and the
    traced peak and growth (bytes) meanwhile. Fails on an inbox error or a hang."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]

        def finished() -> str:
            running.inbox_tick()
            result = str((_rows(state, "SELECT last_result FROM imap_cursors") or [("",)])[0][0])
            error = running.state.credential("camp/a").inbox_error
            assert error is None, error
            return result if result.startswith("ok") else ""

        result = poll_until(finished, timeout_s=5 * HANG_S, what="the first poll to finish")
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before, current - before


def test_hostile_batch_through_the_imap_path(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch APPENDed to dovecot is read by one poll of a daemon's inbox: no error, every
    message recorded once (or counted as a copy), bounded memory, a second poll and a
    re-read from scratch record nothing new, and no message is marked read."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))},
        leads=40,
        steps=2,
    )
    state = tmp_path / "state"
    clock = [START]
    caplog.set_level(logging.INFO)
    with _daemon(path, state, clock) as running:
        running.dispatch()
        targets = Targets(ADA, tuple(sent_ids(smtp_server).items()))
        batch = generate(
            seeded("hostile imap"), count(400, 4000), max_size=2 * MiB, targets=targets
        )
        stored: list[int] = []
        _watched(
            lambda watch: stored.extend(_classify_and_append(dovecot, user, batch, watch)),
            name="hostile-imap-append",
        )
        clock[0] = START + timedelta(hours=2)
        started = time.monotonic()
        result, peak, grown = _poll_once(running, state)
        seconds = time.monotonic() - started
        recorded = _counts(state)
        new, copies = _parse(result)
        print(
            f"imap: {len(stored)} messages, {sum(stored) / MiB:.0f} MiB, largest "
            f"{max(stored) / MiB:.1f} MiB; {result} in {seconds:.1f} s; poll peak "
            f"{peak / MiB:.1f} MiB, kept {grown / MiB:.1f} MiB; recorded {recorded}"
        )
        assert new + copies == len(stored)
        assert recorded["inbox_messages"] == new
        assert recorded["bounces"] > 0  # the messages reached the recording code
        assert recorded["replies"] > 0
        assert peak <= _poll_bound(len(stored)), f"poll peak {peak / MiB:.1f} MiB"
        running.poll_inbox()  # nothing new: nothing read, nothing recorded
        assert running.state.credential("camp/a").inbox_error is None
        assert _counts(state) == recorded
        loaded = running.loaded
    assert loaded is not None
    _reread(state, path, loaded, expected=len(stored))
    assert _counts(state) == recorded
    assert all("\\Seen" not in flags for flags in dovecot.flags(user).values())
    assert len(dovecot.uids(user)) == len(stored)
    crashes = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("mailopsd")
        and r.levelno >= logging.ERROR
        and not r.getMessage().startswith("credential disabled")  # 40 leads, many bounces
    ]
    assert not crashes
    flufl = [r for r in caplog.records if r.name.startswith("flufl")]
    errors = sum(r.levelno >= logging.ERROR for r in flufl)
    print(f"log: {len(caplog.records)} records, flufl.bounce {len(flufl)} ({errors} errors)")


def _poll_bound(messages: int) -> int:
    """What a poll may trace: one batch of messages cut to the header and body limits, twice
    (imaplib's response and the copies), one classification's working memory, and the
    small classification it keeps of every message until it is recorded."""
    batch = 2 * imap.BATCH * (imap.HEADER_LIMIT + imap.BODY_LIMIT)
    return batch + 8 * (imap.HEADER_LIMIT + imap.BODY_LIMIT) + messages * 16 * 2**10 + 16 * MiB


def _parse(result: str) -> tuple[int, int]:
    """``ok: 12 new, 3 seen before`` -> (12, 3)."""
    words = result.replace(",", "").split()
    new = int(words[1])
    copies = int(words[3]) if len(words) > 3 else 0
    return new, copies


def _reread(state: Path, path: Path, loaded: LoadedConfig, *, expected: int) -> None:
    """Poll from scratch (no cursor) and record: every message is a copy of one recorded."""
    access = imap.MailboxAccess.of(
        ("camp", "a"),
        loaded.config.campaigns["camp"].smtp_credentials["a"],
        path.parent,
        timeout_s=30.0,
    )
    found: list[imap.PollResult] = []
    _watched(lambda _: found.append(imap.poll(access, {}, START)), name="hostile-reread")
    ledger = Ledger.open(state)
    try:
        done = record.record_poll(ledger, loaded, ("camp", "a"), found[0], START)
    finally:
        ledger.close()
    assert (done.new, done.duplicates) == (0, expected)


def _report(number: int) -> bytes:
    """A delivery report with a 300 KiB header field and a 300 KiB body."""
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
        b"Message-ID: <big-%d@mx.example.net>\r\nX-Junk: "
        % number
        + b"j" * (300 * 2**10)
        + b"\r\n\r\n"
        + _LINE * (300 * 2**10 // len(_LINE))
    )


def _poll_peak(access: imap.MailboxAccess) -> tuple[int, int]:
    """Messages read and the traced peak (bytes) of a poll from scratch."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        found = imap.poll(access, {}, START)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return len(found.arrivals), peak


def test_poll_memory_does_not_grow_with_the_mailbox(dovecot: Dovecot) -> None:
    """A poll holds one batch of messages at a time, each cut to the header and body
    limits: four times the messages take about the same memory, not four times as much."""
    user, _ = dovecot.add_user()
    access = imap.MailboxAccess(
        campaign_id="camp",
        credential_id="a",
        host=dovecot.host,
        port=dovecot.port,
        username=SecretStr(user),
        password=SecretStr(dovecot.users[user]),
        tls="starttls",
        ca_file=dovecot.ca.ca_file,
        folders=("INBOX",),
        timeout_s=30.0,
    )
    client = dovecot.connect(user)
    try:
        assert all(_append(client, _report(n)) for n in range(4 * imap.BATCH))
    finally:
        client.logout()
    read_all, peak_all = _poll_peak(access)
    client = dovecot.connect(user)  # keep one batch: the rest are flagged and expunged
    try:
        client.select("INBOX")
        client.uid("STORE", f"{imap.BATCH + 1}:*", "+FLAGS.SILENT", "(\\Deleted)")
        client.expunge()
    finally:
        client.logout()
    read_one, peak_one = _poll_peak(access)
    print(
        f"poll peak: {read_one} messages {peak_one / MiB:.1f} MiB, {read_all}: {peak_all / MiB:.1f}"
    )
    assert (read_one, read_all) == (imap.BATCH, 4 * imap.BATCH)
    assert peak_all <= 1.5 * peak_one + 2 * MiB


def _nested_report(depth: int) -> bytes:
    """A delivery report whose returned message nests ``depth`` messages deep, 8-bit."""
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail \xe9\r\n"
        b"Message-ID: <nested-%d@mx.example.net>\r\n"
        % depth
        + b'Content-Type: multipart/report; boundary="r"\r\n\r\n--r\r\n'
        + b"Content-Type: message/rfc822\r\n\r\n" * depth
        + b"From: ada@sender.example.com\r\nTo: lead0000@example.net\r\n\r\nHi\r\n--r--\r\n"
    )


def test_hostile_reports_are_forwarded_as_they_came(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    """With bounce_notifications set to an address, reports nested thousands deep or with
    8-bit headers are forwarded as attachments, byte for byte, like the clean ones."""
    user, _ = dovecot.add_user()
    target = "postmaster@sender.example.com"
    imap_config = imap_fields(dovecot, user, bounce_notifications=target)
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **imap_config)}, leads=2)
    reports = [_nested_report(depth) for depth in (1, 3000)]
    with _daemon(path, tmp_path / "state", [START]) as running:
        running.dispatch()
        client = dovecot.connect(user)
        try:
            assert all(_append(client, raw) for raw in reports)
        finally:
            client.logout()
        running.poll_inbox()
    forwarded = [m.data for m in smtp_server.handler.received_by(target)]
    assert len(forwarded) == len(reports)
    for raw in reports:
        encoded = base64.encodebytes(raw).replace(b"\n", b"\r\n")
        assert any(encoded in data for data in forwarded)
    assert not [r for r in caplog.records if "not disposed" in r.getMessage()]

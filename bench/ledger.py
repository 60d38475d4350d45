"""The ledger: recording sends, and answering the per-credential counts at 1,000,000 rows.

    python -m bench ledger [--quick]

Recording: 100,000 sends go through the dispatcher's path, in ticks of 500 (ten
credentials, 50 each): ``sends.record_intents`` (one transaction, the leads marked
``sending``), then one transaction of ``sends.set_outcome`` and ``leads.update`` per
send. The reference, alternating with it over the rounds, is the same SQL written by
bare ``executemany`` on a ledger of the same schema: what SQLite itself costs.

Counts: a ledger whose ``sends`` holds 1,000,000 rows of one campaign, spread over 5,000
credentials and 30 days (some deferred, bounced or unknown, with their bounces), is asked
what the dispatcher and ``status`` ask on every tick: ``sends.usage`` (every
credential's step-1 sends today, last send with its drawn gap, and first send),
``sends.counts`` of one credential, and ``sends.since`` an hour ago (rate limits).
Medians of many calls; the target is 5 ms each.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import Row
from mailopsd.config.leads import LeadRow, iter_leads
from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.schema import stamp
from mailopsd.state.sends import Intent

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
DAY_START = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
CAMPAIGN = "bench"
TICK = 500
CREDENTIALS_PER_TICK = 10
COUNTS_TARGET_MS = 5.0
QUICK_NOTE = "; quick run: shows it works, measures nothing"


def _leads(count: int) -> list[LeadRow]:
    return [
        LeadRow(
            email=f"lead{i}@example.net",
            fields={"email": f"lead{i}@example.net", "first_name": f"Lead{i}"},
            row_hash=f"{i:064x}",
            line=i + 2,
        )
        for i in range(count)
    ]


def _fresh_ledger(directory: Path, leads: list[LeadRow]) -> Ledger:
    """A ledger holding the campaign and its leads, imported as a leads file is."""
    path = directory / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("email", "first_name"))
        writer.writerows((lead.email, lead.fields["first_name"]) for lead in leads)
    ledger = Ledger.open(directory)
    stage = ledger.imports.stage(CAMPAIGN, iter_leads(path, "leads.csv"), name="leads.csv")
    with ledger.transaction():
        ledger.campaigns.put(CAMPAIGN, "default", {"name": "bench"}, NOW)
        ledger.imports.apply_stage(
            CAMPAIGN, stage.number, account="default", digest="bench", now=NOW
        )
    return ledger


def _record_with_ledger(directory: Path, leads: list[LeadRow]) -> float:
    """Record every lead's step 1 through the Ledger, tick by tick; return seconds."""
    ledger = _fresh_ledger(directory, leads)
    try:
        start = time.perf_counter()
        for first in range(0, len(leads), TICK):
            batch = leads[first : first + TICK]
            at = NOW + timedelta(seconds=first)
            intents = [
                Intent(
                    CAMPAIGN,
                    f"c{n % CREDENTIALS_PER_TICK}",
                    lead.email,
                    1,
                    f"<{first + n}.bench@example.com>",
                    f"Hello Lead{first + n}",
                    at,
                )
                for n, lead in enumerate(batch)
            ]
            ids = ledger.sends.record_intents(intents)
            with ledger.transaction():
                for send_id, intent, lead in zip(ids, intents, batch, strict=True):
                    ledger.sends.set_outcome(
                        send_id, outcome="sent", code=250, detail="250 ok", at=at
                    )
                    ledger.leads.update(
                        LeadProgress(
                            campaign_id=CAMPAIGN,
                            email=lead.email,
                            fields=lead.fields,
                            state="waiting",
                            step=1,
                            credential_id=intent.credential_id,
                            next_due_at=stamp(at + timedelta(days=3)),
                            attempts=0,
                            message_ids=(intent.message_id,),
                            first_subject=intent.subject,
                        )
                    )
        return time.perf_counter() - start
    finally:
        ledger.close()


def _record_bare(directory: Path, leads: list[LeadRow]) -> float:
    """The same writes as bare executemany calls on the same schema; return seconds."""
    _fresh_ledger(directory, leads).close()
    db = sqlite3.connect(directory / LEDGER_FILE, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=FULL")
        start = time.perf_counter()
        for first in range(0, len(leads), TICK):
            batch = leads[first : first + TICK]
            at = stamp(NOW + timedelta(seconds=first))
            rows = [
                (
                    CAMPAIGN,
                    f"c{n % CREDENTIALS_PER_TICK}",
                    lead.email,
                    f"<{first + n}.bench@example.com>",
                    at,
                    f"Hello Lead{first + n}",
                    at[:10],
                    lead.email.partition("@")[2],
                )
                for n, lead in enumerate(batch)
            ]
            db.execute("BEGIN IMMEDIATE")
            before = db.execute("SELECT coalesce(max(id), 0) FROM sends").fetchone()[0]
            db.executemany(
                "INSERT OR ROLLBACK INTO sends (campaign_id, credential_id, email, step, "
                "message_id, intent_at, subject, day, domain) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "UPDATE leads SET state = 'sending' WHERE campaign_id = ? AND email = ?",
                [(CAMPAIGN, lead.email) for lead in batch],
            )
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "UPDATE OR ROLLBACK sends SET outcome = 'sent', smtp_code = 250, "
                "detail = '250 ok', outcome_at = ? WHERE id = ?",
                [(at, before + 1 + n) for n in range(len(batch))],
            )
            db.executemany(
                "UPDATE leads SET state = 'waiting', step = 1, credential_id = ?, "
                "next_due_at = ?, attempts = 0, message_ids = ?, first_subject = ?, "
                "last_error = NULL, stop_reason = NULL WHERE campaign_id = ? AND email = ?",
                [(row[1], at, f'["{row[3]}"]', row[5], CAMPAIGN, row[2]) for row in rows],
            )
            db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


def _recording(quick: bool) -> list[Row]:
    sends = 10_000 if quick else 100_000
    rounds = 1 if quick else 3
    leads = _leads(sends)
    rates: dict[str, list[float]] = {"ledger": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        for number in range(rounds):
            for name, record in (("ledger", _record_with_ledger), ("bare", _record_bare)):
                directory = Path(tmp) / f"{name}-{number}"
                directory.mkdir()
                rates[name].append(sends / record(directory, leads))
    ours, bare = statistics.median(rates["ledger"]), statistics.median(rates["bare"])
    return [
        Row(
            benchmark="ledger",
            metric=f"record {sends:,} sends (intent + outcome)",
            value=ours,
            unit="sends/s",
            reference="bare executemany",
            reference_value=bare,
            ratio=ours / bare,
            note=(
                f"ticks of {TICK} sends over {CREDENTIALS_PER_TICK} credentials, two "
                f"transactions per tick (synchronous=FULL); median of {rounds} rounds"
                + (QUICK_NOTE if quick else "")
            ),
        )
    ]


_OUTCOMES = ("sent",) * 90 + ("deferred",) * 3 + ("bounced",) * 3 + ("unknown",) + ("not_sent",) * 3


def _fill(directory: Path, rows: int, credentials: int, days: int) -> None:
    """Write ``rows`` sends (and their bounces and IMAP polls) straight into the ledger."""
    Ledger.open(directory).close()
    span = timedelta(days=days).total_seconds()
    first = NOW - timedelta(days=days)
    db = sqlite3.connect(directory / LEDGER_FILE, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        rng = random.Random(7)

        def sends() -> Iterator[tuple[object, ...]]:
            for i in range(rows):
                at = stamp(first + timedelta(seconds=span * i / rows))
                outcome = rng.choice(_OUTCOMES)
                step = rng.choice((1, 1, 1, 2, 3))
                yield (
                    i + 1,
                    CAMPAIGN,
                    f"cred{i % credentials:05d}",
                    f"lead{i // 3}@example.net",
                    step,
                    f"<{i}.bench@example.com>",
                    at,
                    outcome,
                    at,
                    at[:10],
                    "example.net",
                )

        db.executemany(
            "INSERT INTO sends (id, campaign_id, credential_id, email, step, message_id, "
            "intent_at, outcome, outcome_at, day, domain) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sends(),
        )
        db.execute(
            "INSERT INTO bounces (campaign_id, credential_id, email, send_id, at, permanent, "
            "status, source) SELECT campaign_id, credential_id, email, id, outcome_at, 1, "
            "'550', 'smtp' FROM sends WHERE outcome = 'bounced'"
        )
        db.executemany(
            "INSERT INTO imap_cursors (campaign_id, credential_id, folder, uidvalidity, "
            "last_uid, last_poll_at, last_result) VALUES (?, ?, 'INBOX', 1, 10, ?, 'ok')",
            ((CAMPAIGN, f"cred{c:05d}", stamp(NOW)) for c in range(credentials)),
        )
        db.execute("COMMIT")
    finally:
        db.close()


def _median_ms(call: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _counting(quick: bool) -> list[Row]:
    rows, credentials, days = (10_000, 50, 30) if quick else (1_000_000, 5_000, 30)
    calls = 3 if quick else 101
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        directory = Path(tmp)
        _fill(directory, rows, credentials, days)
        ledger = Ledger.open(directory)
        try:
            one = f"cred{credentials // 2:05d}"
            window = NOW - timedelta(days=7)
            hour_ago = NOW - timedelta(hours=1)
            queries: dict[str, Callable[[], object]] = {
                f"usage (all {credentials:,} credentials)": lambda: ledger.sends.usage(
                    CAMPAIGN, DAY_START
                ),
                "counts (one credential, 7-day window)": lambda: ledger.sends.counts(
                    CAMPAIGN, one, day_start=DAY_START, window_start=window
                ),
                "sends_since (one hour, all credentials)": lambda: ledger.sends.since(
                    CAMPAIGN, hour_ago
                ),
            }
            usage = ledger.sends.usage(CAMPAIGN, DAY_START)
            if len(usage) != credentials:
                raise RuntimeError(f"usage saw {len(usage)} of {credentials} credentials")
            results = {name: _median_ms(query, calls) for name, query in queries.items()}
        finally:
            ledger.close()
    return [
        Row(
            benchmark="ledger",
            metric=name,
            value=value,
            unit="ms",
            target=f"≤ {COUNTS_TARGET_MS:g} ms",
            met=None if quick else value <= COUNTS_TARGET_MS,
            note=(
                f"{rows:,} sends of one campaign over {credentials:,} credentials and "
                f"{days} days; median of {calls} calls" + (QUICK_NOTE if quick else "")
            ),
        )
        for name, value in results.items()
    ]


def run(quick: bool) -> list[Row]:
    """Time recording sends, then the count queries on a large ``sends`` table."""
    return [*_recording(quick), *_counting(quick)]

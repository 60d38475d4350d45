"""Each bounce's reason in the ledger: recorded, counted toward the rate its reason names."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailopsd.config.reasons import counted_reasons
from mailopsd.state import schema
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.schema import stamp
from mailopsd.state.sends import _BOUNCED_SQL, BounceReason
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)


def _bounce(ledger: Ledger, email: str, kind: str, reason: str | None) -> None:
    ledger.sends.add_bounce(
        None, "acme", "a", email, status="550", source="imap", at=NOW, kind=kind, reason=reason
    )


def _with_bounces(ledger: Ledger) -> Ledger:
    """``ledger``, given bounces of every kind, one reason each (two for userunknown)."""
    with ledger.transaction():
        _bounce(ledger, "a@example.net", "hard", "userunknown")
        _bounce(ledger, "A@example.net", "hard", "userunknown")  # the same address
        _bounce(ledger, "b@example.net", "hard", "userunknown")
        _bounce(ledger, "c@example.net", "hard", "undefined")  # a 5xx that said nothing
        _bounce(ledger, "d@example.net", "soft", "undefined")  # a 4xx that said nothing
        _bounce(ledger, "e@example.net", "soft", "mailboxfull")
        _bounce(ledger, "f@example.net", "block", "spamdetected")
        _bounce(ledger, "g@example.net", "unconfirmed", "userunknown")
        _bounce(ledger, "h@example.net", "unconfirmed", "mailboxfull")
    return ledger


class TestCounts:
    def test_default_counts_every_hard_bounce_and_every_block(self, ledgers: Ledgers) -> None:
        """By default the hard bounces (a permanent undefined too) count toward the bounce
        rate and the blocks toward the block rate, by address; unconfirmed ones never."""
        ledger = _with_bounces(ledgers.open())
        try:
            counts = ledger.sends.counts("acme", "a", day_start=NOW, window_start=WEEK_AGO)
        finally:
            ledger.close()
        assert (counts.bounces_in_window, counts.blocks_in_window) == (3, 1)
        assert counts.unconfirmed_in_window == 2

    def test_named_reasons_count_toward_their_rate(self, ledgers: Ledgers) -> None:
        """A campaign's lists decide: a soft reason can count, a block can count as a
        bounce; undefined counts only when permanent; unconfirmed reports never."""
        ledger = _with_bounces(ledgers.open())
        reasons = counted_reasons(["mailboxfull", "undefined"], ["userunknown", "spamdetected"])
        try:
            counts = ledger.sends.counts(
                "acme", "a", day_start=NOW, window_start=WEEK_AGO, reasons=reasons
            )
        finally:
            ledger.close()
        assert (counts.bounces_in_window, counts.blocks_in_window) == (2, 3)

    def test_bounces_before_reasons_count_by_kind(self, ledgers: Ledgers) -> None:
        """A bounce recorded without a reason counts by its kind, whatever the lists."""
        ledger = ledgers.open()
        try:
            with ledger.transaction():
                _bounce(ledger, "a@example.net", "hard", None)
                _bounce(ledger, "b@example.net", "block", None)
                _bounce(ledger, "c@example.net", "soft", None)
            counts = ledger.sends.counts(
                "acme",
                "a",
                day_start=NOW,
                window_start=WEEK_AGO,
                reasons=counted_reasons(["mailboxfull"], ["ratelimited"]),
            )
            reasons = ledger.sends.reasons("acme", "a", since=WEEK_AGO)
        finally:
            ledger.close()
        assert (counts.bounces_in_window, counts.blocks_in_window) == (1, 1)
        assert reasons == [
            BounceReason("unknown", "block", 1),
            BounceReason("unknown", "hard", 1),
            BounceReason("unknown", "soft", 1),
        ]

    def test_the_count_reads_the_credentials_index(self, tmp_path: Path) -> None:
        """The count by reason seeks the credential's bounces in the window in the index of
        a credential's bounces by time: it never reads the whole table."""
        ledger = _with_bounces(Ledger.open(tmp_path))  # SQLite's plan
        try:
            db = ledger._database.connection
            plan = db.execute(
                f"EXPLAIN QUERY PLAN {_BOUNCED_SQL}",
                {"campaign": "acme", "credential": "a", "since": "", "bounces": "", "blocks": ""},
            ).fetchall()
        finally:
            ledger.close()
        steps = [row[3] for row in plan]
        assert any("USING INDEX bounces_by_credential" in step for step in steps), steps
        assert not any(step.startswith("SCAN bounces") for step in steps), steps


class TestReasons:
    def test_addresses_by_reason_and_kind(self, ledgers: Ledgers) -> None:
        """A credential's bounced addresses in the window by reason and kind, most first."""
        ledger = _with_bounces(ledgers.open())
        try:
            with ledger.transaction():
                ledger.sends.add_bounce(
                    None,
                    "acme",
                    "a",
                    "old@example.net",
                    status="550",
                    source="smtp",
                    at=WEEK_AGO - timedelta(seconds=1),
                    kind="hard",
                    reason="hostunknown",
                )
            found = ledger.sends.reasons("acme", "a", since=WEEK_AGO)
            kept = {bounce.email: bounce.reason for bounce in ledger.sends.bounces("acme")}
        finally:
            ledger.close()
        assert found == [
            BounceReason("userunknown", "hard", 2),
            BounceReason("mailboxfull", "soft", 1),
            BounceReason("mailboxfull", "unconfirmed", 1),
            BounceReason("spamdetected", "block", 1),
            BounceReason("undefined", "hard", 1),
            BounceReason("undefined", "soft", 1),
            BounceReason("userunknown", "unconfirmed", 1),
        ]
        assert kept["old@example.net"] == "hostunknown"


def test_schema_12_ledger_keeps_its_bounces_without_a_reason(tmp_path: Path) -> None:
    """Migrating a ledger of schema 12 adds the reason column: the bounces already there
    have none (shown as unknown) and count by their kind as before."""
    db = sqlite3.connect(tmp_path / LEDGER_FILE, isolation_level=None)
    for version in range(1, 13):
        for statement in schema._statements(schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 12")
    db.execute(
        "INSERT INTO bounces (campaign_id, credential_id, email, at, permanent, source, kind) "
        "VALUES ('acme', 'a', 'x@example.net', ?, 1, 'imap', 'hard')",
        (stamp(NOW),),
    )
    db.close()
    ledger = Ledger.open(tmp_path)
    try:
        assert schema.schema_version(ledger._database.connection) == schema.SCHEMA_VERSION
        [bounce] = ledger.sends.bounces("acme")
        counts = ledger.sends.counts("acme", "a", day_start=NOW, window_start=WEEK_AGO)
    finally:
        ledger.close()
    assert (bounce.kind, bounce.reason) == ("hard", "unknown")
    assert counts.bounces_in_window == 1

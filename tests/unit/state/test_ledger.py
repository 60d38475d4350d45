"""The ledger file: private, WAL, versioned, and refused when newer than this mailopsd."""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailopsd.errors import StateError
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import _MIGRATIONS, SCHEMA_VERSION, _statements, stamp
from mailopsd.state.tracking import Tracked
from tests.ledger_setup import import_leads

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_new_ledger_is_private_wal_and_current(tmp_path: Path) -> None:
    """A new ledger is 0600, in WAL mode, at the current schema, and passes integrity."""
    ledger = Ledger.open(tmp_path)
    ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
    ledger.close()
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
    reopened = Ledger.open(tmp_path)
    assert reopened.integrity_ok()
    assert reopened.campaigns.active() == {"acme": {"name": "ACME"}}
    reopened.close()


def test_newer_schema_refused(tmp_path: Path) -> None:
    """A ledger written by a newer mailopsd is refused, not migrated down."""
    Ledger.open(tmp_path).close()
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    newer = SCHEMA_VERSION + 1
    connection.execute(f"PRAGMA user_version = {newer}")
    connection.close()
    with pytest.raises(StateError, match=f"has schema {newer}, newer than this mailopsd"):
        Ledger.open(tmp_path)


def test_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite gives a clear error."""
    (tmp_path / "ledger.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match=r"ledger .* cannot be used"):
        Ledger.open(tmp_path)


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    """A failure inside a transaction leaves nothing of it."""
    ledger = Ledger.open(tmp_path)
    ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)

    def import_then_fail() -> None:
        with ledger.transaction():
            import_leads(ledger, "acme", ["a@x.io"], now=NOW)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        import_then_fail()
    assert ledger.leads.count("acme") == 0
    assert ledger.campaigns.leads_digests() == {}
    ledger.close()


def test_readonly_open_of_missing_ledger(tmp_path: Path) -> None:
    """status on a state directory without a ledger sees none (and creates none)."""
    assert Ledger.open_readonly(tmp_path) is None
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_schema_2_ledger_is_migrated_keeping_its_bounces(tmp_path: Path) -> None:
    """A ledger of the previous schema opens; its bounces count as hard ones."""
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    for version in (1, 2):
        connection.executescript(_MIGRATIONS[version])
    connection.execute(
        "INSERT INTO bounces (campaign_id, credential_id, email, at, permanent, status, source) "
        "VALUES ('acme', 'primary', 'a@example.net', '2026-11-23T11:00:00.000000Z', 1, '550', "
        "'smtp')"
    )
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()
    ledger = Ledger.open(tmp_path)
    counts = ledger.sends.counts("acme", "primary", day_start=NOW, window_start=NOW.replace(hour=0))
    assert (counts.bounces_in_window, counts.blocks_in_window) == (1, 0)
    assert ledger.inbox.cursors("acme", "primary") == {}
    ledger.close()


def test_schema_4_ledger_gets_tracking_tables(tmp_path: Path) -> None:
    """A ledger of schema 4 is migrated to 5: its data stays, opens and clicks start empty."""
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    for version in range(1, 5):
        for statement in _statements(_MIGRATIONS[version]):
            connection.execute(statement)
    connection.execute(
        "INSERT INTO campaigns (id, account, snapshot, added_at) "
        "VALUES ('acme', 'default', '{}', '2026-11-23T11:00:00.000000Z')"
    )
    connection.execute("PRAGMA user_version = 4")
    connection.commit()
    connection.close()
    ledger = Ledger.open(tmp_path)
    assert ledger.campaigns.account("acme") == "default"
    assert ledger.tracking.opens("acme", "a@example.net") is None
    assert ledger.tracking.clicks("acme", "a@example.net") == {}
    ledger.close()
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


class TestTracking:
    def test_opens_keep_the_first_time_and_count(self, tmp_path: Path) -> None:
        """Each open counts; the first time stays, the last time moves on."""
        ledger = Ledger.open(tmp_path)
        later = NOW + timedelta(hours=3)
        with ledger.transaction():
            ledger.tracking.record_open("acme", "a@example.net", NOW)
            ledger.tracking.record_open("acme", "a@example.net", later)
            ledger.tracking.record_open("acme", "b@example.net", later)
        assert ledger.tracking.opens("acme", "a@example.net") == Tracked(NOW, later, 2)
        assert ledger.tracking.opens("acme", "b@example.net") == Tracked(later, later, 1)
        ledger.close()

    def test_clicks_count_per_link(self, tmp_path: Path) -> None:
        """Clicks are counted per lead and link."""
        ledger = Ledger.open(tmp_path)
        with ledger.transaction():
            for url in ("https://a.example/x", "https://a.example/x", "https://b.example/"):
                ledger.tracking.record_click("acme", "a@example.net", url, NOW)
        assert ledger.tracking.clicks("acme", "a@example.net") == {
            "https://a.example/x": Tracked(NOW, NOW, 2),
            "https://b.example/": Tracked(NOW, NOW, 1),
        }
        ledger.close()


def test_a_lead_stopped_meanwhile_stays_stopped(tmp_path: Path) -> None:
    """A lead stopped while its step was being sent keeps its stop when the send is recorded."""
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.campaigns.put("acme", "default", {}, NOW)
        import_leads(ledger, "acme", ["a@x.io"], now=NOW)
    lead = ledger.leads.get("acme", "a@x.io")
    assert lead is not None
    with ledger.transaction():
        assert ledger.leads.stop("acme", "a@x.io", "unsubscribed")
        ledger.leads.update(replace(lead, state="waiting", step=1, next_due_at=stamp(NOW)))
    after = ledger.leads.get("acme", "a@x.io")
    assert after is not None
    assert (after.state, after.stop_reason, after.step, after.next_due_at) == (
        "stopped",
        "unsubscribed",
        1,
        None,
    )
    ledger.close()


def _schema_5_ledger(path: Path, leads: list[tuple[str, str, int]]) -> sqlite3.Connection:
    """A ledger of schema 5 (keys as written, lower-cased) with ``(email, state, step)`` leads."""
    connection = sqlite3.connect(path / "ledger.sqlite3")
    for version in range(1, 6):
        for statement in _statements(_MIGRATIONS[version]):
            connection.execute(statement)
    connection.execute(
        "INSERT INTO campaigns (id, account, snapshot, added_at) "
        "VALUES ('acme', 'default', '{}', '2026-11-23T11:00:00.000000Z')"
    )
    connection.executemany(
        "INSERT INTO leads (campaign_id, email, account, fields, row_hash, line, added_at, "
        "state, step, credential_id) VALUES ('acme', ?, 'default', '{}', 'h', ?, "
        "'2026-11-23T11:00:00.000000Z', ?, ?, 'primary')",
        [(email, line, state, step) for line, (email, state, step) in enumerate(leads, 2)],
    )
    return connection


def test_schema_5_keys_of_idn_addresses_are_rewritten(tmp_path: Path) -> None:
    """Migration 6 keys IDN addresses in A-labels: two spellings of one mailbox become one
    lead (the stopped one), and its suppression, sends and opens follow."""
    connection = _schema_5_ledger(
        tmp_path,
        [
            ("a@bücher.de", "stopped", 1),
            ("a@xn--bcher-kva.de", "new", 0),
            ("b@bücher.de", "waiting", 1),
            ("ok@example.com", "waiting", 1),
        ],
    )
    connection.execute(
        "INSERT INTO suppressions VALUES ('default', 'a@bücher.de', 'hard bounce', "
        "'2026-11-23T11:00:00.000000Z')"
    )
    connection.execute(
        "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
        "outcome) VALUES ('acme', 'primary', 'b@bücher.de', 1, '<m>', "
        "'2026-11-23T11:00:00.000000Z', 'sent')"
    )
    connection.executemany(
        "INSERT INTO opens VALUES ('acme', ?, ?, ?, ?)",
        [
            ("b@bücher.de", "2026-11-23T11:00:00.000000Z", "2026-11-23T11:30:00.000000Z", 2),
            ("b@xn--bcher-kva.de", "2026-11-23T10:00:00.000000Z", stamp(NOW), 1),
        ],
    )
    connection.execute("PRAGMA user_version = 5")
    connection.commit()
    connection.close()
    ledger = Ledger.open(tmp_path)
    a_lead = ledger.leads.get("acme", "a@xn--bcher-kva.de")
    b_lead = ledger.leads.get("acme", "b@xn--bcher-kva.de")
    assert ledger.leads.count("acme") == 3
    assert a_lead is not None
    assert (a_lead.state, a_lead.step) == ("stopped", 1)
    assert b_lead is not None
    assert (b_lead.state, b_lead.step) == ("waiting", 1)
    assert ledger.suppressions.reason("default", "a@xn--bcher-kva.de") == "hard bounce"
    assert ledger.sends.last_to("acme", "primary", "B@Bücher.de") is not None
    assert ledger.tracking.opens("acme", "b@xn--bcher-kva.de") == Tracked(
        datetime(2026, 11, 23, 10, tzinfo=UTC), NOW, 3
    )
    assert ledger.leads.get("acme", "ok@example.com") is not None
    ledger.close()

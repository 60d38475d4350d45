"""The ledger file: private, WAL, versioned, and refused when newer than this mailopsd."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.config.leads import LeadRow
from mailopsd.errors import StateError
from mailopsd.state.ledger import _MIGRATIONS, SCHEMA_VERSION, Ledger

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_new_ledger_is_private_wal_and_current(tmp_path: Path) -> None:
    """A new ledger is 0600, in WAL mode, at the current schema, and passes integrity."""
    ledger = Ledger.open(tmp_path)
    ledger.put_campaign("acme", "default", {"name": "ACME"}, NOW)
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
    assert reopened.active_campaigns() == {"acme": {"name": "ACME"}}
    reopened.close()


def test_newer_schema_refused(tmp_path: Path) -> None:
    """A ledger written by a newer mailopsd is refused, not migrated down."""
    Ledger.open(tmp_path).close()
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    connection.execute("PRAGMA user_version = 9")
    connection.close()
    with pytest.raises(StateError, match="has schema 9, newer than this mailopsd"):
        Ledger.open(tmp_path)


def test_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite gives a clear error."""
    (tmp_path / "ledger.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match=r"ledger .* cannot be used"):
        Ledger.open(tmp_path)


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    """A failure inside a transaction leaves nothing of it."""
    ledger = Ledger.open(tmp_path)
    ledger.put_campaign("acme", "default", {"name": "ACME"}, NOW)

    def import_then_fail() -> None:
        with ledger.transaction():
            ledger.import_leads(
                "acme",
                account="default",
                digest="d",
                upserts=[LeadRow("a@x.io", {"email": "a@x.io"}, "h", 2)],
                removals=[],
                now=NOW,
            )
            raise RuntimeError

    with pytest.raises(RuntimeError):
        import_then_fail()
    assert ledger.lead_count("acme") == 0
    assert ledger.leads_digests() == {}
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
    counts = ledger.counts("acme", "primary", day_start=NOW, window_start=NOW.replace(hour=0))
    assert (counts.bounces_in_window, counts.blocks_in_window) == (1, 0)
    assert ledger.imap_cursors("acme", "primary") == {}
    ledger.close()

"""The ledger's lead time zones: resolved at import, read zone by zone, migrated from 9."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.config.leads import iter_leads
from mailopsd.state import schema
from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
ROWS = [
    ("a@example.net", "Asia/Tokyo"),
    ("b@example.net", " America/New_York "),
    ("c@example.net", "Mars/Olympus"),
    ("d@example.net", ""),
    ("e@example.net", "Asia/Tokyo"),
]


def _import(ledger: Ledger, path: Path, rows: list[tuple[str, str]], column: str | None) -> int:
    path.write_text("email,tz\n" + "".join(f"{email},{zone}\n" for email, zone in rows))
    stage = ledger.imports.stage("acme", iter_leads(path), name="leads.csv", zone_column=column)
    with ledger.transaction():
        ledger.imports.apply_stage("acme", stage.number, account="default", digest="d", now=NOW)
    return stage.updated


@pytest.fixture
def ledger(ledgers: Ledgers, tmp_path: Path) -> Iterator[Ledger]:
    opened = ledgers.open()
    with opened.transaction():
        opened.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
    _import(opened, tmp_path / "leads.csv", ROWS, "tz")
    yield opened
    opened.close()


def _emails(leads: list[LeadProgress]) -> list[str]:
    return [lead.email for lead in leads]


def test_zones_are_resolved_at_import(ledger: Ledger) -> None:
    assert ledger.leads.zones("acme") == {"Asia/Tokyo", "America/New_York", None}
    assert ledger.leads.by_zone("acme") == {"Asia/Tokyo": 2, "America/New_York": 1, None: 2}
    assert ledger.leads.without_zone("acme", 1) == (2, [4])


def test_new_leads_are_read_zone_by_zone_in_file_order(ledger: Ledger) -> None:
    new = ledger.leads.new
    assert _emails(new("acme", "default", NOW, 10, zones=["Asia/Tokyo"])) == [
        "a@example.net",
        "e@example.net",
    ]
    both = new("acme", "default", NOW, 10, zones=["Asia/Tokyo", None])
    assert _emails(both) == ["a@example.net", "c@example.net", "d@example.net", "e@example.net"]
    assert _emails(new("acme", "default", NOW, 2, zones=["Asia/Tokyo", None])) == [
        "a@example.net",
        "c@example.net",
    ]
    assert new("acme", "default", NOW, 10, zones=[]) == []
    assert len(new("acme", "default", NOW, 10)) == len(ROWS)


def test_a_new_column_changes_the_zones_of_the_leads_it_moves(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Imported again without a zone column, the three leads with a zone are updated."""
    assert _import(ledger, tmp_path / "leads.csv", ROWS, None) == 3
    assert ledger.leads.zones("acme") == {None}


def test_the_zone_indexes_are_used(ledger: Ledger) -> None:
    db = ledger._database.connection
    query = (
        "SELECT email FROM leads WHERE campaign_id = 'acme' AND state = 'waiting' "
        "AND zone = 'Asia/Tokyo' AND next_due_at <= 'x' ORDER BY next_due_at"
    )
    if ledger.dialect.name == "sqlite":
        plan = db.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
    else:  # the rows are few: would the planner use the index at all?
        db.execute("SET enable_seqscan = off")
        plan = db.execute(f"EXPLAIN {query}").fetchall()
    assert "leads_waiting_by_zone" in str(plan)


def test_schema_9_ledger_gets_zones(tmp_path: Path) -> None:
    """Its leads keep the campaign's zone; a plan may stage against it unmigrated."""
    db = sqlite3.connect(tmp_path / LEDGER_FILE, isolation_level=None)
    for version in range(1, 10):
        for statement in schema._statements(schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 9")
    db.execute(
        "INSERT INTO leads (campaign_id, email, account, fields, row_hash, line, added_at) "
        "VALUES ('acme', 'a@example.net', 'default', '{}', 'h', 2, '2026-11-01T00:00:00Z')"
    )
    db.close()
    readonly = Ledger.open_readonly(tmp_path)
    assert readonly is not None
    try:
        path = tmp_path / "leads.csv"
        path.write_text("email,tz\na@example.net,Asia/Tokyo\nb@example.net,\n")
        stage = readonly.imports.stage("acme", iter_leads(path), name="leads.csv")
        assert (stage.added, stage.updated) == (1, 1)
    finally:
        readonly.close()
    ledger = Ledger.open(tmp_path)
    try:
        assert schema.schema_version(ledger._database.connection) == schema.SCHEMA_VERSION
        assert ledger.leads.zones("acme") == {None}
        assert _emails(ledger.leads.new("acme", "default", NOW, 5, zones=[None])) == [
            "a@example.net"
        ]
    finally:
        ledger.close()

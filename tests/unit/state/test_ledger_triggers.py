"""Schema 11's counter triggers count exactly as the triggers of schemas 7 and 9 did.

Each test runs the same writes on a ledger of schema 10 (migrations 1 to 10, its
triggers as they were) and on a current one (SQLite's, then PostgreSQL's, whose counters
one PL/pgSQL trigger keeps), and compares their counters row for row, or checks the
counters against a count made from the ``sends`` table itself.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailopsd.lifecycle import SendOutcome
from mailopsd.state import schema, sends
from mailopsd.state.engine import ENGINE_ERRORS, Connection
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.schema import stamp
from mailopsd.state.sends import Intent
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
OUTCOMES = [outcome.value for outcome in SendOutcome]
COUNTERS = {
    "credential_days": "SELECT campaign_id, day, credential_id, step1, followups "
    "FROM credential_days ORDER BY 1, 2, 3",
    "credential_last_send": "SELECT campaign_id, credential_id, at, day_step1, gap_s, first_at "
    "FROM credential_last_send ORDER BY 1, 2",
    "domain_days": "SELECT campaign_id, day, domain, sends FROM domain_days ORDER BY 1, 2, 3",
}


def _counters(db: Connection) -> dict[str, list[tuple[object, ...]]]:
    return {table: db.execute(query).fetchall() for table, query in COUNTERS.items()}


def _schema_10(directory: Path) -> sqlite3.Connection:
    """A ledger of schema 10, as the migrations of that version left it."""
    db = sqlite3.connect(directory / LEDGER_FILE, isolation_level=None)
    for version in range(1, 11):
        for statement in schema._statements(schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 10")
    return db


def _recounted(db: Connection) -> dict[str, list[tuple[object, ...]]]:
    """What the counters hold (rows taken back to nothing left out), from the sends."""
    days = db.execute(
        "SELECT campaign_id, substr(intent_at, 1, 10), credential_id, "
        "sum(CASE WHEN step = 1 THEN 1 ELSE 0 END), sum(CASE WHEN step > 1 THEN 1 ELSE 0 END) "
        "FROM sends WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced') "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).fetchall()
    last = db.execute(
        "SELECT campaign_id, credential_id, max(intent_at), min(intent_at) FROM sends "
        "WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced') GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    step1 = {(c, d, k): s for c, d, k, s, _ in days}
    last_sends = []
    for campaign, credential, at, first in last:
        (gap,) = db.execute(
            "SELECT gap_s FROM sends WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced') "
            "AND campaign_id = ? AND credential_id = ? AND intent_at = ?",
            (campaign, credential, at),
        ).fetchone()
        day_step1 = step1[(campaign, at[:10], credential)]
        last_sends.append((campaign, credential, at, day_step1, gap, first))
    domains = db.execute(
        "SELECT campaign_id, substr(intent_at, 1, 10), substr(email, instr(email, '@') + 1), "
        "count(*) FROM sends WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced') "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).fetchall()
    return {"credential_days": days, "credential_last_send": last_sends, "domain_days": domains}


def _kept(db: Connection) -> dict[str, list[tuple[object, ...]]]:
    """The counters, without the rows whose sends were all taken back."""
    counters = _counters(db)
    return {
        "credential_days": [row for row in counters["credential_days"] if row[3] or row[4]],
        "credential_last_send": [row for row in counters["credential_last_send"] if row[2]],
        "domain_days": [row for row in counters["domain_days"] if row[3]],
    }


def _step_sends(db: Connection) -> list[tuple[object, ...]]:
    """The counted sends by step and version as schema 12 keeps them (none left out)."""
    return db.execute(
        "SELECT campaign_id, step, variant, sends FROM step_sends WHERE sends <> 0 ORDER BY 1, 2, 3"
    ).fetchall()


def _steps_recounted(db: Connection) -> list[tuple[object, ...]]:
    return db.execute(
        "SELECT campaign_id, step, variant, count(*) FROM sends "
        "WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced') GROUP BY 1, 2, 3 "
        "ORDER BY 1, 2, 3"
    ).fetchall()


class _Twins:
    """The same sends written on a ledger of schema 10 and on a current one."""

    def __init__(self, directory: Path, ledgers: Ledgers) -> None:
        (directory / "10").mkdir()
        self.old = _schema_10(directory / "10")
        self.ledger = ledgers.open()
        self.new = self.ledger._database.connection
        self.times = itertools.count()

    def intent(self, credential: str, email: str, *, step: int, hours: float, gap: int) -> int:
        """Record an intent on both (``hours`` before NOW; times never tie)."""
        at = NOW - timedelta(hours=hours, microseconds=next(self.times))
        self.old.execute(
            "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
            "subject, gap_s) VALUES ('acme', ?, ?, ?, '<m>', ?, 's', ?)",
            (credential, email, step, stamp(at), gap),
        )
        [send_id] = self.ledger.sends.record_intents(
            [Intent("acme", credential, email, step, "<m>", "s", at, gap)]
        )
        assert send_id == self.old.execute("SELECT max(id) FROM sends").fetchone()[0]
        return send_id

    def outcome(self, send_id: int, outcome: str) -> None:
        """Set a send's outcome on both: as SQL would, and as the dispatcher does."""
        self.old.execute(
            "UPDATE sends SET outcome = ?, outcome_at = ? WHERE id = ?",
            (outcome, stamp(NOW), send_id),
        )
        with self.ledger.transaction():
            self.ledger.sends.set_outcome(send_id, outcome=outcome, code=None, detail="", at=NOW)

    def move(self, send_id: int, **columns: object) -> None:
        """Change a send's columns on both (on the current one, its day and domain with
        its time and address)."""
        derived = dict(columns)
        if "intent_at" in columns:
            derived["day"] = str(columns["intent_at"])[:10]
        if "email" in columns:
            derived["domain"] = str(columns["email"]).partition("@")[2]
        for db, values in ((self.old, columns), (self.new, derived)):
            sets = ", ".join(f"{name} = ?" for name in values)
            sql = f"UPDATE sends SET {sets} WHERE id = ?"  # noqa: S608 - the test's own columns
            db.execute(sql, (*values.values(), send_id))

    def delete(self, send_id: int) -> None:
        """Delete a send from both."""
        for db in (self.old, self.new):
            db.execute("DELETE FROM sends WHERE id = ?", (send_id,))

    def assert_same(self) -> None:
        """Both hold the same counters, row for row; the current one's steps too."""
        assert _counters(self.new) == _counters(self.old)
        assert _kept(self.new) == _recounted(self.new)
        assert _step_sends(self.new) == _steps_recounted(self.new)

    def close(self) -> None:
        """Close both ledgers."""
        self.old.close()
        self.ledger.close()


@pytest.fixture
def twins(tmp_path: Path, ledgers: Ledgers) -> Iterator[_Twins]:
    """A ledger of schema 10 and a current one (on each engine), both empty."""
    pair = _Twins(tmp_path, ledgers)
    yield pair
    pair.close()


def test_every_outcome_then_every_other(twins: _Twins) -> None:
    """From pending to each outcome, then to each outcome again: the same counts."""
    rng = random.Random(11)
    for first, second in itertools.product(OUTCOMES, OUTCOMES):
        send_id = twins.intent(
            rng.choice(("a", "b")),
            rng.choice(("x@one.example", "y@one.example", "z@two.example")),
            step=rng.choice((1, 1, 2)),
            hours=rng.uniform(0, 72),  # sends of earlier days among later ones
            gap=rng.randrange(1000),
        )
        twins.assert_same()
        twins.outcome(send_id, first)
        twins.assert_same()
        twins.outcome(send_id, second)
        twins.assert_same()


def test_sends_moved_and_deleted(twins: _Twins) -> None:
    """A send moved to another credential, time, step or address, or deleted (the daemon
    does neither; a person might): the same counts."""
    ids = [
        twins.intent(credential, email, step=step, hours=hours, gap=60)
        for credential, email, step, hours in (
            ("a", "x@one.example", 1, 1),
            ("a", "y@two.example", 2, 30),
            ("b", "z@one.example", 1, 2),
            ("a", "w@one.example", 1, 50),
        )
    ]
    twins.outcome(ids[3], "deferred")
    twins.assert_same()
    twins.move(ids[0], credential_id="b")
    twins.assert_same()
    twins.move(ids[1], intent_at=stamp(NOW + timedelta(minutes=5)))  # the last send now
    twins.assert_same()
    twins.move(ids[2], intent_at=stamp(NOW - timedelta(days=4)))  # the first send now
    twins.assert_same()
    twins.move(ids[2], step=3)
    twins.assert_same()
    twins.move(ids[0], email="v@three.example")
    twins.assert_same()
    twins.move(ids[3], outcome="sent", credential_id="c")
    twins.assert_same()
    for send_id in (ids[1], ids[3]):
        twins.delete(send_id)
        twins.assert_same()


def test_a_send_keeps_the_day_and_domain_sql_takes(ledgers: Ledgers) -> None:
    """Each send's day and domain are what the ledger's SQL takes from its time and
    address, whatever the address holds."""
    ledger = ledgers.open()
    emails = ["a@example.net", "a@xn--bcher-kva.de", "a@b@c.example", "no-at-sign", "é@é.fr"]
    ledger.sends.record_intents(
        [Intent("acme", "a", email, 1, "<m>", "s", NOW, None) for email in emails]
    )
    rows = ledger._database.connection.execute(
        "SELECT day = substr(intent_at, 1, 10), domain = substr(email, instr(email, '@') + 1), "
        "domain FROM sends ORDER BY id"
    ).fetchall()
    ledger.close()
    assert rows == [
        (1, 1, "example.net"),
        (1, 1, "xn--bcher-kva.de"),
        (1, 1, "b@c.example"),
        (1, 1, "no-at-sign"),
        (1, 1, "é.fr"),
    ]


def test_a_send_written_without_its_day_is_refused(ledgers: Ledgers) -> None:
    """A send written straight into the table without its day and domain fails (it
    could not be counted), rather than count nowhere."""
    ledger = ledgers.open()
    db = ledger._database.connection
    try:
        with pytest.raises(ENGINE_ERRORS, match=r"(?i)NOT NULL|null value"):
            db.execute(
                "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, "
                "intent_at) VALUES ('acme', 'a', 'x@example.net', 1, '<m>', ?)",
                (stamp(NOW),),
            )
    finally:
        ledger.close()


def test_schema_10_ledger_keeps_its_counts(tmp_path: Path) -> None:
    """A ledger of schema 10 with sends is migrated: its counters are left as they were,
    its sends get their day and domain, and the counts stay exact from then on, for its
    old sends as for new ones."""
    db = _schema_10(tmp_path)
    rng = random.Random(10)
    for n in range(60):
        db.execute(
            "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
            "gap_s) VALUES (?, ?, ?, ?, '<m>', ?, ?)",
            (
                rng.choice(("acme", "beta")),
                rng.choice(("a", "b", "c")),
                f"lead{n}@{rng.choice(('one', 'two'))}.example",
                rng.choice((1, 1, 2)),
                stamp(NOW - timedelta(minutes=rng.randrange(3 * 24 * 60), microseconds=n)),
                rng.randrange(100),
            ),
        )
        db.execute("UPDATE sends SET outcome = ? WHERE id = ?", (rng.choice(OUTCOMES[1:]), n + 1))
    before = _counters(db)
    db.close()
    ledger = Ledger.open(tmp_path)
    db = ledger._database.connection
    try:
        assert schema.schema_version(db) == schema.SCHEMA_VERSION
        assert _counters(db) == before
        assert _kept(db) == _recounted(db)
        assert db.execute(
            "SELECT count(*) FROM sends WHERE day IS NOT substr(intent_at, 1, 10) "
            "OR domain IS NOT substr(email, instr(email, '@') + 1)"
        ).fetchone() == (0,)
        new = ledger.sends.record_intents(
            [Intent("acme", "a", "new@one.example", 1, "<n>", "s", NOW, 30)]
        )
        with ledger.transaction():
            for send_id in (*new, 3, 7, 11, 19):  # old sends taken back, or counted again
                outcome = rng.choice(OUTCOMES)
                ledger.sends.set_outcome(send_id, outcome=outcome, code=None, detail="", at=NOW)
        db.execute("DELETE FROM sends WHERE id IN (5, 23)")
        assert _kept(db) == _recounted(db)
        assert ledger.integrity_ok()
    finally:
        ledger.close()


@pytest.mark.parametrize(
    "statement", [sends._INSERT_INTENT, sends._SET_OUTCOME], ids=["intent", "outcome"]
)
def test_a_send_is_written_without_a_statement_journal(tmp_path: Path, statement: str) -> None:
    """Nothing in writing an intent or an outcome, triggers included, may stop the
    statement halfway (an aborting constraint, a function call): SQLite then keeps no
    statement journal, which would copy every page the statement writes."""
    ledger = Ledger.open(tmp_path)
    try:
        params = [None] * statement.count("?")
        program = ledger._database.connection.execute(f"EXPLAIN {statement}", params).fetchall()
    finally:
        ledger.close()
    aborting = [
        row
        for row in program
        if row[1] in ("Function", "PureFunc") or (row[1] in ("Halt", "HaltIfNull") and row[3] == 2)
    ]
    assert any(row[1] == "Program" for row in program), "the counters' trigger runs"
    assert aborting == []


def test_schema_11_ledger_gets_its_step_counts(tmp_path: Path) -> None:
    """Migrating a ledger of schema 11 counts its sends by step and version, and gives
    each bounce its send's step and version; new sends count from then on."""
    db = sqlite3.connect(tmp_path / LEDGER_FILE, isolation_level=None)
    for version in range(1, 12):
        for statement in schema._statements(schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 11")
    for number, (step, variant, outcome) in enumerate(
        [(1, "a", "sent"), (1, "a", "bounced"), (1, "b", "sent"), (2, None, "not_sent")]
    ):
        at = stamp(NOW - timedelta(hours=number))
        db.execute(
            "INSERT INTO sends (campaign_id, credential_id, email, step, variant, message_id, "
            "intent_at, subject, outcome, day, domain) "
            "VALUES ('acme', 'c', ?, ?, ?, '<m>', ?, 's', ?, ?, 'example.com')",
            (f"l{number}@example.com", step, variant, at, outcome, at[:10]),
        )
    db.execute(
        "INSERT INTO bounces (campaign_id, credential_id, email, send_id, at, permanent, source) "
        "VALUES ('acme', 'c', 'l1@example.com', 2, ?, 1, 'smtp')",
        (stamp(NOW),),
    )
    db.close()
    ledger = Ledger.open(tmp_path)
    try:
        connection = ledger._database.connection
        assert _step_sends(connection) == [("acme", 1, "a", 2), ("acme", 1, "b", 1)]
        assert connection.execute("SELECT step, variant FROM bounces").fetchall() == [(1, "a")]
        [counts] = [c for c in ledger.stats.of("acme") if (c.step, c.variant) == (1, "a")]
        assert (counts.sends, counts.bounces) == (2, 1)
    finally:
        ledger.close()

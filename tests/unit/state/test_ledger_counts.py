"""The per-credential counters kept by triggers answer as the sends table itself would."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailopsd.state.engine import Connection
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import _MIGRATIONS, SCHEMA_VERSION, _statements, stamp
from mailopsd.state.sends import Intent
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
MIDNIGHT = NOW.replace(hour=0, minute=0)
OUTCOMES = ("sent", "sent", "sent", "deferred", "bounced", "unknown", "not_sent", "auth_failed")


def _usage(db: Connection, campaign: str, day: datetime) -> dict[str, object]:
    """What usage answers, read from the whole sends table: step-1 sends since ``day``,
    the last send with its gap, the first send."""
    rows = db.execute(
        "SELECT credential_id, coalesce(sum(CASE WHEN step = 1 AND intent_at >= ? THEN 1 END), 0), "
        "max(intent_at), "
        "min(intent_at) FROM sends "
        "WHERE campaign_id = ? AND outcome IN ('pending', 'sent', 'unknown', 'bounced') "
        "GROUP BY credential_id",
        (stamp(day), campaign),
    ).fetchall()
    usage = {}
    for credential, sent, last, first in rows:
        gaps = db.execute(
            "SELECT DISTINCT gap_s FROM sends WHERE campaign_id = ? AND credential_id = ? "
            "AND intent_at = ? AND outcome IN ('pending', 'sent', 'unknown', 'bounced')",
            (campaign, credential, last),
        ).fetchall()
        assert len(gaps) == 1, "one gap per send time (a credential with a gap sends one a tick)"
        usage[credential] = (credential, sent, last, gaps[0][0], first)
    return usage


def _sends_since(db: Connection, campaign: str, since: datetime) -> dict[str, int]:
    rows = db.execute(
        "SELECT credential_id, count(*) FROM sends WHERE campaign_id = ? AND intent_at >= ? "
        "AND outcome IN ('pending', 'sent', 'unknown', 'bounced') GROUP BY credential_id",
        (campaign, stamp(since)),
    )
    return dict(rows.fetchall())


def _counts(
    db: Connection, campaign: str, credential: str, day: datetime, window: datetime
) -> tuple[int, ...]:
    row = db.execute(
        "SELECT coalesce(sum(CASE WHEN step = 1 AND intent_at >= :day THEN 1 END), 0), "
        "coalesce(sum(CASE WHEN step > 1 AND intent_at >= :day THEN 1 END), 0), "
        "coalesce(sum(CASE WHEN intent_at >= :window THEN 1 END), 0), "
        "coalesce(sum(CASE WHEN outcome = 'unknown' THEN 1 END), 0) "
        "FROM sends WHERE campaign_id = :campaign AND credential_id = :credential "
        "AND outcome IN ('pending', 'sent', 'unknown', 'bounced')",
        {
            "day": stamp(day),
            "window": stamp(window),
            "campaign": campaign,
            "credential": credential,
        },
    ).fetchone()
    return tuple(row)


def _first_send(db: Connection, campaign: str, credential: str) -> str | None:
    row = db.execute(
        "SELECT min(intent_at) FROM sends WHERE campaign_id = ? AND credential_id = ? "
        "AND outcome IN ('pending', 'sent', 'unknown', 'bounced')",
        (campaign, credential),
    ).fetchone()
    return row[0]  # type: ignore[no-any-return]


def _check(ledger: Ledger, db: Connection) -> None:
    """Every question a tick or status asks gets the answer a full scan gives."""
    for campaign in ("acme", "beta"):
        for day in (MIDNIGHT, MIDNIGHT - timedelta(days=1), NOW - timedelta(hours=5)):
            assert ledger.sends.usage(campaign, day) == _usage(db, campaign, day)
        for since in (NOW - timedelta(hours=1), NOW - timedelta(days=2)):
            assert ledger.sends.since(campaign, since) == _sends_since(db, campaign, since)
        for credential in ("a", "b", "c", "z"):
            window = NOW - timedelta(days=3)
            counts = ledger.sends.counts(
                campaign, credential, day_start=MIDNIGHT, window_start=window
            )
            assert (
                counts.sent_today,
                counts.followups_today,
                counts.sends_in_window,
                counts.unknown,
            ) == _counts(db, campaign, credential, MIDNIGHT, window)
            first = ledger.sends.first_at(campaign, credential)
            assert (stamp(first) if first else None) == _first_send(db, campaign, credential)


def test_counters_follow_every_send_and_outcome(ledgers: Ledgers) -> None:
    """Random intents over four days, outcomes set (and taken back): counters stay exact."""
    rng = random.Random(20261123)
    ledger = ledgers.open()
    reader = ledgers.open()
    db = reader._database.connection
    sent: list[int] = []
    for tick in range(40):
        intents = [
            Intent(
                rng.choice(("acme", "beta")),
                rng.choice(("a", "b", "c")),
                f"lead{rng.randrange(50)}@example.net",
                rng.choice((1, 1, 2, 3)),
                f"<{tick}.{n}@example.com>",
                "subject",
                NOW - timedelta(minutes=rng.randrange(4 * 24 * 60), seconds=tick * 6 + n),
                rng.choice((None, 60, 90, 600)),
            )
            for n in range(rng.randrange(1, 6))
        ]
        ids = ledger.sends.record_intents(intents)
        if tick % 5 == 0:
            _check(ledger, db)  # pending intents count
        with ledger.transaction():
            for send_id in ids:
                ledger.sends.set_outcome(
                    send_id, outcome=rng.choice(OUTCOMES), code=None, detail="", at=NOW
                )
            for send_id in rng.sample(sent, min(2, len(sent))):
                ledger.sends.set_outcome(
                    send_id, outcome=rng.choice(OUTCOMES), code=None, detail="", at=NOW
                )
        sent.extend(ids)
        _check(ledger, db)
    with reader.transaction():  # the daemon never deletes a send: the trigger that takes
        db.execute("DELETE FROM sends WHERE id % 3 = 0")  # one back is tested here
    _check(ledger, db)


def test_a_send_after_today_still_counts(ledgers: Ledgers) -> None:
    """If the clock went back, sends dated later than today count as today's, as before."""
    ledger = ledgers.open()
    db = ledgers.open()._database.connection
    for at in (NOW, NOW + timedelta(days=1), NOW + timedelta(days=2, hours=1)):
        ledger.sends.record_intents([Intent("acme", "a", "x@example.net", 1, "<m>", "s", at)])
    assert ledger.sends.usage("acme", MIDNIGHT) == {
        "a": ("a", 3, stamp(NOW + timedelta(days=2, hours=1)), None, stamp(NOW))
    }
    _check(ledger, db)


def test_schema_3_ledger_gets_its_counters(tmp_path: Path) -> None:
    """A ledger of schema 3 is migrated: counters built from its sends, then kept."""
    assert SCHEMA_VERSION >= 7  # migrations 4 and on (7: gaps, first sends) run over these
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    for version in (1, 2, 3):
        connection.executescript(_MIGRATIONS[version])
    rows = [
        ("acme", "a", 1, NOW - timedelta(days=1), "sent"),
        ("acme", "a", 1, NOW - timedelta(hours=2), "sent"),
        ("acme", "a", 2, NOW - timedelta(hours=1), "unknown"),
        ("acme", "a", 1, NOW, "deferred"),
        ("acme", "b", 1, NOW - timedelta(days=2), "bounced"),
        ("beta", "a", 1, NOW - timedelta(minutes=5), "pending"),
    ]
    connection.executemany(
        "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
        "outcome) VALUES (?, ?, 'x@example.net', ?, '<m>', ?, ?)",
        [(c, k, step, stamp(at), outcome) for c, k, step, at, outcome in rows],
    )
    connection.execute("PRAGMA user_version = 3")
    connection.commit()
    connection.close()
    ledger = Ledger.open(tmp_path)
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert ledger.sends.usage("acme", MIDNIGHT) == {
        "a": ("a", 1, stamp(NOW - timedelta(hours=1)), None, stamp(NOW - timedelta(days=1))),
        "b": ("b", 0, stamp(NOW - timedelta(days=2)), None, stamp(NOW - timedelta(days=2))),
    }
    _check(ledger, db)
    ledger.sends.record_intents([Intent("acme", "b", "y@example.net", 1, "<n>", "s", NOW, 90)])
    assert ledger.sends.usage("acme", MIDNIGHT)["b"] == (
        "b",
        1,
        stamp(NOW),
        90,
        stamp(NOW - timedelta(days=2)),
    )
    _check(ledger, db)
    assert ledger.integrity_ok()
    db.close()
    ledger.close()


def test_many_reports_about_one_address_count_once(tmp_path: Path) -> None:
    """Bounces count addresses, not reports: repeated (or forged) reports about the same
    leads never push the rate past what the sends allow."""
    ledger = Ledger.open(tmp_path)
    try:
        with ledger.transaction():
            for _ in range(5):
                for email in ("a@example.net", "A@example.net", "b@example.net"):
                    ledger.sends.add_bounce(
                        None, "acme", "a", email, status="5.1.1", source="imap", at=NOW
                    )
                ledger.sends.add_bounce(
                    None,
                    "acme",
                    "a",
                    "c@example.net",
                    status="5.7.1",
                    source="imap",
                    at=NOW,
                    kind="block",
                )
        counts = ledger.sends.counts("acme", "a", day_start=MIDNIGHT, window_start=MIDNIGHT)
    finally:
        ledger.close()
    assert (counts.bounces_in_window, counts.blocks_in_window) == (2, 1)


def test_schema_6_ledger_gets_gaps_and_first_sends(tmp_path: Path) -> None:
    """A ledger of schema 6 is migrated to 7: each credential's first send is found in its
    sends, no gap is made up for them, and the new triggers keep both from then on."""
    connection = sqlite3.connect(tmp_path / "ledger.sqlite3")
    for version in range(1, 7):
        for statement in _statements(_MIGRATIONS[version]):
            connection.execute(statement)
    connection.executemany(
        "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
        "outcome) VALUES ('acme', ?, 'x@example.net', 1, '<m>', ?, ?)",
        [
            ("a", stamp(NOW - timedelta(days=9)), "deferred"),  # not counted: not the first
            ("a", stamp(NOW - timedelta(days=3)), "sent"),
            ("a", stamp(NOW - timedelta(hours=1)), "sent"),
            ("b", stamp(NOW - timedelta(days=1)), "bounced"),
        ],
    )
    connection.execute("PRAGMA user_version = 6")
    connection.commit()
    connection.close()
    ledger = Ledger.open(tmp_path)
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert ledger.sends.usage("acme", MIDNIGHT) == {
        "a": ("a", 1, stamp(NOW - timedelta(hours=1)), None, stamp(NOW - timedelta(days=3))),
        "b": ("b", 0, stamp(NOW - timedelta(days=1)), None, stamp(NOW - timedelta(days=1))),
    }
    ledger.sends.record_intents([Intent("acme", "a", "y@example.net", 1, "<n>", "s", NOW, 120)])
    assert ledger.sends.usage("acme", MIDNIGHT)["a"] == (
        "a",
        2,
        stamp(NOW),
        120,
        stamp(NOW - timedelta(days=3)),
    )
    _check(ledger, db)
    assert ledger.integrity_ok()
    db.close()
    ledger.close()

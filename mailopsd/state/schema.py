"""The ledger's schema: its version, its migrations, and how it stores values.

The migrations are kept as they were first written, each run once in order and
recorded in ``PRAGMA user_version``; a ledger's file is never rewritten otherwise.
Times are stored as RFC 3339 UTC text with microseconds, which sorts in time order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from mailopsd.config import addresses
from mailopsd.lifecycle import COUNTED_OUTCOMES
from mailopsd.state import counters, postgres_schema
from mailopsd.state.db import Database
from mailopsd.state.engine import POSTGRESQL, Connection
from mailopsd.state.errors import StorageMissingError, StorageTooNewError

__all__ = [
    "COUNTED_SQL",
    "SCHEMA_VERSION",
    "ZONES_SCHEMA",
    "check_version",
    "migrate",
    "schema_version",
    "stamp",
    "unstamp",
]

SCHEMA_VERSION = 15
ZONES_SCHEMA = 10
"""The first schema that keeps each lead's time zone."""
DAEMONS_SCHEMA = 15
"""The first schema whose daemons' rows say which campaigns each holds."""
COUNTED_SQL = "(" + ", ".join(f"'{outcome.value}'" for outcome in COUNTED_OUTCOMES) + ")"
"""The outcomes of sends that count (toward limits and rates), as an SQL list."""

# Migration 7's: a lead's or a send's recipient domain, as config/domains.py takes it
# from an address key (what follows its one @), and the counted outcomes spelled out as
# migration 4's triggers do.
_DOMAIN = "substr({0}email, instr({0}email, '@') + 1)"
_COUNTED = (
    "({0}outcome = 'pending' OR {0}outcome = 'sent' OR {0}outcome = 'unknown' "
    "OR {0}outcome = 'bounced')"
)
_DOMAIN_KEY_MOVED = (
    "new.campaign_id IS NOT old.campaign_id OR new.intent_at IS NOT old.intent_at "
    "OR new.email IS NOT old.email"
)
_COUNT_DOMAIN_SEND = f"""\
    BEGIN
        INSERT INTO domain_days (campaign_id, day, domain, sends)
            VALUES (new.campaign_id, substr(new.intent_at, 1, 10), {_DOMAIN.format("new.")}, 1)
            ON CONFLICT (campaign_id, day, domain) DO UPDATE SET sends = sends + 1;
    END;
"""
_UNCOUNT_DOMAIN_SEND = f"""\
    BEGIN
        UPDATE domain_days SET sends = sends - 1
            WHERE campaign_id = old.campaign_id AND day = substr(old.intent_at, 1, 10)
            AND domain = {_DOMAIN.format("old.")};
    END;
"""

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        leads_digest TEXT,
        added_at TEXT NOT NULL,
        removed_at TEXT
    );
    CREATE TABLE credentials (
        campaign_id TEXT NOT NULL,
        id TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT,
        PRIMARY KEY (campaign_id, id)
    );
    CREATE TABLE leads (
        campaign_id TEXT NOT NULL,
        email TEXT NOT NULL,
        account TEXT NOT NULL,
        fields TEXT NOT NULL,
        row_hash TEXT NOT NULL,
        line INTEGER NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT,
        state TEXT NOT NULL DEFAULT 'new',
        step INTEGER NOT NULL DEFAULT 0,
        credential_id TEXT,
        next_due_at TEXT,
        PRIMARY KEY (campaign_id, email)
    ) WITHOUT ROWID;
    CREATE TABLE sends (
        id INTEGER PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        email TEXT NOT NULL,
        step INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        intent_at TEXT NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'pending',
        outcome_at TEXT,
        smtp_code INTEGER,
        detail TEXT
    );
    CREATE INDEX sends_by_credential ON sends (campaign_id, credential_id, intent_at);
    CREATE TABLE bounces (
        id INTEGER PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        email TEXT NOT NULL,
        send_id INTEGER,
        at TEXT NOT NULL,
        permanent INTEGER NOT NULL,
        status TEXT,
        source TEXT NOT NULL
    );
    CREATE INDEX bounces_by_credential ON bounces (campaign_id, credential_id, at);
    CREATE TABLE replies (
        id INTEGER PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        credential_id TEXT,
        email TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_id TEXT
    );
    CREATE TABLE imap_cursors (
        campaign_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER,
        last_uid INTEGER,
        last_poll_at TEXT,
        last_result TEXT,
        PRIMARY KEY (campaign_id, credential_id, folder)
    );
    CREATE TABLE suppressions (
        account TEXT NOT NULL,
        email TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (account, email)
    );
    """,
    2: """
    ALTER TABLE leads ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE leads ADD COLUMN last_error TEXT;
    ALTER TABLE leads ADD COLUMN message_ids TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE leads ADD COLUMN first_subject TEXT;
    ALTER TABLE leads ADD COLUMN stop_reason TEXT;
    ALTER TABLE sends ADD COLUMN subject TEXT;
    CREATE TABLE lead_problems (
        campaign_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (campaign_id, position)
    );
    CREATE INDEX leads_due ON leads (campaign_id, state, next_due_at);
    CREATE INDEX sends_pending ON sends (outcome) WHERE outcome = 'pending';
    """,
    3: """
    ALTER TABLE bounces ADD COLUMN kind TEXT NOT NULL DEFAULT 'hard';
    ALTER TABLE bounces ADD COLUMN detail TEXT;
    CREATE INDEX sends_by_message_id ON sends (message_id);
    CREATE INDEX sends_by_email ON sends (email, credential_id);
    CREATE TABLE inbox_messages (
        campaign_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        key TEXT NOT NULL,
        folder TEXT NOT NULL,
        uid INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        email TEXT,
        PRIMARY KEY (campaign_id, credential_id, key)
    ) WITHOUT ROWID;
    """,
    # Counters kept by triggers, so that a tick's questions cost the same whatever the
    # history holds: each credential's counted sends per UTC day (step 1 and follow-ups
    # apart), and its last counted send with the step-1 sends of that send's day (what a
    # tick asks for every credential: one row each). An index for a campaign's sends
    # since a time (rate limits), one for unknown outcomes. The triggers spell the
    # counted outcomes out with OR, and no index is partial on them: an IN list there
    # builds a temporary table on every UPDATE of sends, several times the update's cost.
    # The triggers' text is in state/counters.py.
    4: f"""
    CREATE TABLE credential_days (
        campaign_id TEXT NOT NULL,
        day TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        step1 INTEGER NOT NULL DEFAULT 0,
        followups INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (campaign_id, day, credential_id)
    ) WITHOUT ROWID;
    CREATE TABLE credential_last_send (
        campaign_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        at TEXT,
        day_step1 INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (campaign_id, credential_id)
    ) WITHOUT ROWID;
    INSERT INTO credential_days (campaign_id, day, credential_id, step1, followups)
        SELECT campaign_id, substr(intent_at, 1, 10), credential_id, sum(step = 1), sum(step > 1)
        FROM sends WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced')
        GROUP BY campaign_id, substr(intent_at, 1, 10), credential_id;
    INSERT INTO credential_last_send (campaign_id, credential_id, at)
        SELECT campaign_id, credential_id, max(intent_at)
        FROM sends WHERE outcome IN ('pending', 'sent', 'unknown', 'bounced')
        GROUP BY campaign_id, credential_id;
    UPDATE credential_last_send SET day_step1 = coalesce((
        SELECT step1 FROM credential_days AS d
        WHERE d.campaign_id = credential_last_send.campaign_id
        AND d.day = substr(credential_last_send.at, 1, 10)
        AND d.credential_id = credential_last_send.credential_id), 0);
    CREATE INDEX sends_by_time ON sends (campaign_id, intent_at, credential_id, outcome);
    CREATE INDEX sends_unknown ON sends (campaign_id, credential_id) WHERE outcome = 'unknown';
{counters.TRIGGERS_4}    """,
    # Tracking: one row per lead for opens and one per lead and link for clicks,
    # counters rather than events, so a pixel loaded a thousand times costs one row.
    5: """
    CREATE TABLE opens (
        campaign_id TEXT NOT NULL,
        email TEXT NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, email)
    ) WITHOUT ROWID;
    CREATE TABLE clicks (
        campaign_id TEXT NOT NULL,
        email TEXT NOT NULL,
        url TEXT NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, email, url)
    ) WITHOUT ROWID;
    """,
    # Addresses kept under their normal form (see config/addresses.py); the rows are
    # rewritten by _rekey_addresses, run with this migration.
    6: "",
    # Pacing: the gap drawn after each send (min_interval), each credential's first send
    # (ramps); the counter triggers are replaced (see state/counters.py).
    7: counters.MIGRATION_7,
    # A/B/n variants: the version of each step a lead was given (by step number, as
    # JSON), the version each send carried, and the index that counts sends by step and
    # version without reading the table.
    8: """
    ALTER TABLE leads ADD COLUMN variants TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE sends ADD COLUMN variant TEXT;
    CREATE INDEX sends_by_step ON sends (campaign_id, step, variant, outcome);
    """,
    # Recipient domains. Suppression lists from the config: the entries of each account's
    # lists as last applied, with the lists' digest; a lead is held back while its address
    # or its domain is listed for its campaign's account. Leads by domain (stopping the
    # colleagues of a lead who replied; counting the leads a listed domain holds back).
    # New leads in file order, so that a tick reads them until it has enough, checking
    # only those for what holds them back, rather than checking and sorting every new
    # lead of the campaign. Counted sends per campaign, UTC day and recipient domain, kept
    # by triggers like migration 4's counters (the per-domain daily cap asks one row per
    # lead it reads).
    9: f"""
    CREATE TABLE suppression_lists (
        account TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        files TEXT NOT NULL,
        applied_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE listed_addresses (
        account TEXT NOT NULL,
        email TEXT NOT NULL,
        PRIMARY KEY (account, email)
    ) WITHOUT ROWID;
    CREATE TABLE listed_domains (
        account TEXT NOT NULL,
        domain TEXT NOT NULL,
        PRIMARY KEY (account, domain)
    ) WITHOUT ROWID;
    CREATE INDEX leads_by_domain ON leads (campaign_id, {_DOMAIN.format("")});
    CREATE INDEX leads_new_by_line ON leads (campaign_id, line) WHERE state = 'new';
    CREATE TABLE domain_days (
        campaign_id TEXT NOT NULL,
        day TEXT NOT NULL,
        domain TEXT NOT NULL,
        sends INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (campaign_id, day, domain)
    ) WITHOUT ROWID;
    INSERT INTO domain_days (campaign_id, day, domain, sends)
        SELECT campaign_id, substr(intent_at, 1, 10), {_DOMAIN.format("")}, count(*)
        FROM sends WHERE {_COUNTED.format("")}
        GROUP BY campaign_id, substr(intent_at, 1, 10), {_DOMAIN.format("")};
    CREATE TRIGGER sends_domain_count AFTER INSERT ON sends
    WHEN {_COUNTED.format("new.")}
{_COUNT_DOMAIN_SEND}    CREATE TRIGGER sends_domain_recount AFTER UPDATE ON sends
    WHEN {_COUNTED.format("new.")}
        AND (NOT {_COUNTED.format("old.")} OR {_DOMAIN_KEY_MOVED})
{_COUNT_DOMAIN_SEND}    CREATE TRIGGER sends_domain_uncount AFTER UPDATE ON sends
    WHEN {_COUNTED.format("old.")}
        AND (NOT {_COUNTED.format("new.")} OR {_DOMAIN_KEY_MOVED})
{_UNCOUNT_DOMAIN_SEND}    CREATE TRIGGER sends_domain_uncount_deleted AFTER DELETE ON sends
    WHEN {_COUNTED.format("old.")}
{_UNCOUNT_DOMAIN_SEND}    """,
    # Recipient time zones: the IANA zone of each lead's send window, read from its row
    # when its leads file is imported (NULL: the campaign's zone). A tick reads the new
    # and the waiting leads of each zone whose window is open from these indexes, and
    # finds a campaign's zones by seeking from one to the next in them.
    10: """
    ALTER TABLE leads ADD COLUMN zone TEXT;
    CREATE INDEX leads_new_by_zone ON leads (campaign_id, zone, line) WHERE state = 'new';
    CREATE INDEX leads_waiting_by_zone ON leads (campaign_id, zone, next_due_at)
        WHERE state = 'waiting';
    """,
    # The counters of migrations 7 and 9 kept by one trigger per kind of statement on
    # sends, which needs each send's UTC day and recipient domain as columns (filled here
    # for the sends already made): see state/counters.py.
    11: counters.MIGRATION_11,
    # The counted sends of each step and version, kept by the same triggers, and each
    # bounce's step and version: the steps table reads these (see state/counters.py).
    12: counters.MIGRATION_12,
    # Each bounce's reason (diagnosis.Reason: userunknown, spamdetected, ...), from which
    # its kind follows; NULL for the bounces recorded before, shown as unknown. No new
    # index: the rates by reason (and status's counts by reason) seek a credential's
    # bounces in its window in migration 1's bounces_by_credential, as the rates by kind
    # did, and read the few rows found (EXPLAIN QUERY PLAN: SEARCH ... USING INDEX).
    13: """
    ALTER TABLE bounces ADD COLUMN reason TEXT;
    """,
    # The daemons that work on the ledger or stand by for it, one row each, written by
    # each daemon every few seconds, and each mailbox's state (disabled, re-enabled, AUTH
    # failures: a credential's entry of the state file, as JSON), written by the working
    # daemon as it changes, so the next one to work goes on from it (see
    # daemon/cluster.py). Only a shared ledger (PostgreSQL) has rows in them. Times are
    # the writer's (UTC, as stamp() writes them).
    14: """
    CREATE TABLE mailbox_states (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        written_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE daemons (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        role TEXT NOT NULL,
        revision TEXT,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    """,
    # The campaigns each daemon holds the lease of (a JSON list of their ids), which
    # ``status`` shows and the daemons read to share the work evenly; and the keys the
    # daemons of a shared ledger must agree on (the secret fingerprints' HMAC key: see
    # Ledger.fingerprint_key).
    15: """
    ALTER TABLE daemons ADD COLUMN holds TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE ledger_keys (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
}
_REKEY_MIGRATION = 6


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (a trigger's body holds semicolons of its own)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending


# Before schema 6 an address's key was the address as written, lower-cased. For an
# ASCII address the normal form is exactly that (email-validator lower-cases only the
# domain, and the key the local part too), so only keys with non-ASCII characters (an
# IDN domain, which is now in A-labels) can change; an address now refused keeps its
# key, and its lead goes when its leads file is next imported.
_NON_ASCII_KEYS = " UNION ".join(
    f"SELECT email FROM {table} WHERE email GLOB '*[^ -~]*'"
    for table in ("leads", "suppressions", "sends", "bounces", "replies", "opens", "clicks")
)
_MERGE_TRACKED = {  # table: its key's columns, and what a rewritten row's key is
    "opens": ("campaign_id, email", "campaign_id, ?"),
    "clicks": ("campaign_id, email, url", "campaign_id, ?, url"),
}


def _rekey_addresses(db: Connection) -> None:
    """Rewrite addresses kept under an old spelling to their normal form (migration 6).

    Two rows that become one are merged: a lead keeps the row that went further (a
    stopped lead stays stopped), a suppression its first reason, opens and clicks add up.
    """
    found = [str(row[0]) for row in db.execute(_NON_ASCII_KEYS)]
    for old, new in ((old, addresses.key_of(old)) for old in found):
        if new == old:
            continue
        for table in ("sends", "bounces", "replies", "inbox_messages"):
            db.execute(f"UPDATE {table} SET email = ? WHERE email = ?", (new, old))
        db.execute(
            "INSERT OR IGNORE INTO suppressions (account, email, reason, at) "
            "SELECT account, ?, reason, at FROM suppressions WHERE email = ?",
            (new, old),
        )
        db.execute("DELETE FROM suppressions WHERE email = ?", (old,))
        for table, (columns, rewritten) in _MERGE_TRACKED.items():
            db.execute(
                f"INSERT INTO {table} ({columns}, first_at, last_at, count) "
                f"SELECT {rewritten}, first_at, last_at, count FROM {table} WHERE email = ? "
                f"ON CONFLICT ({columns}) DO UPDATE SET "
                "first_at = min(first_at, excluded.first_at), "
                "last_at = max(last_at, excluded.last_at), count = count + excluded.count",
                (new, old),
            )
            db.execute(f"DELETE FROM {table} WHERE email = ?", (old,))
        _rekey_leads(db, old, new)


def _rekey_leads(db: Connection, old: str, new: str) -> None:
    """Move each campaign's lead ``old`` to ``new``, keeping the row that went further."""
    best: dict[str, str] = {}
    rows = db.execute(
        "SELECT campaign_id, email FROM leads WHERE email IN (?, ?) "
        "ORDER BY campaign_id, state = 'stopped' DESC, step DESC, email = ? DESC",
        (old, new, new),
    )
    for campaign_id, email in rows.fetchall():
        best.setdefault(str(campaign_id), str(email))
    for campaign_id, email in best.items():
        db.execute(
            "DELETE FROM leads WHERE campaign_id = ? AND email IN (?, ?) AND email <> ?",
            (campaign_id, old, new, email),
        )
        if email == old:
            db.execute(
                "UPDATE leads SET email = ? WHERE campaign_id = ? AND email = ?",
                (new, campaign_id, old),
            )


def schema_version(db: Connection, *, postgresql: bool = False) -> int:
    """The schema version a ledger records (0: a new, empty one).

    Args:
        db: A connection to it.
        postgresql: The connection is PostgreSQL's (whose version is a table's row).
    """
    if not postgresql:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    if db.execute("SELECT to_regclass('ledger_schema')").fetchone()[0] is None:
        return 0
    return int(db.execute("SELECT coalesce(max(version), 0) FROM ledger_schema").fetchone()[0])


def migrate(database: Database) -> None:
    """Bring a ledger to :data:`SCHEMA_VERSION`, one migration per transaction.

    Raises:
        StorageTooNewError: The ledger's schema is newer than this program's.
        sqlite3.Error: The schema could not be read.
        StorageError: A migration could not be written (it was rolled back).
    """
    db = database.connection
    if database.dialect is POSTGRESQL:
        _migrate_postgresql(database)
        return
    version = schema_version(db)
    _check_not_newer(database, version)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with database.transaction():
            for statement in _statements(_MIGRATIONS[target]):
                db.execute(statement)
            if target == _REKEY_MIGRATION:
                _rekey_addresses(db)
            db.execute(f"PRAGMA user_version = {target}")


def check_version(database: Database) -> None:
    """Check a PostgreSQL ledger can be read as it is (``open_readonly``'s check).

    Raises:
        StorageMissingError: It has no tables yet.
        StorageTooNewError: Its schema is newer than this program's.
    """
    version = schema_version(database.connection, postgresql=True)
    if version == 0:
        raise StorageMissingError(f"ledger {database.name} has no tables yet")
    _check_not_newer(database, version)


def _check_not_newer(database: Database, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StorageTooNewError(
            f"ledger {database.name} has schema {version}, newer than this mailopsd "
            f"({SCHEMA_VERSION}); upgrade mailopsd"
        )


def _migrate_postgresql(database: Database) -> None:
    """Bring a PostgreSQL ledger to :data:`SCHEMA_VERSION` (see :mod:`.postgres_schema`).

    Daemons starting at once on one ledger take turns: each migration holds an advisory
    lock until its transaction ends, and reads the version again under it.
    """
    db = database.connection
    if schema_version(db, postgresql=True) == SCHEMA_VERSION:
        return
    with database.transaction():
        db.execute(f"SELECT pg_advisory_xact_lock({postgres_schema.MIGRATION_LOCK})")
        db.execute(postgres_schema.VERSION_TABLE)
        version = schema_version(db, postgresql=True)
        _check_not_newer(database, version)
        if version == 0:
            db.execute(postgres_schema.SCHEMA_13)
            db.execute("INSERT INTO ledger_schema (one, version) VALUES (1, 13)")
            version = 13
        for target in range(version + 1, SCHEMA_VERSION + 1):  # written for both engines
            for statement in _statements(_MIGRATIONS[target]):
                db.execute(statement)
            db.execute("UPDATE ledger_schema SET version = ? WHERE one = 1", (target,))


def stamp(moment: datetime) -> str:
    """Format a time as the ledger stores it (UTC, microseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    """Read a time the ledger stored.

    ``fromisoformat`` reads its form (``Z`` included, from Python 3.11) some 30 times
    faster than ``strptime``: a tick reads one or two for every mailbox.
    """
    return datetime.fromisoformat(text)

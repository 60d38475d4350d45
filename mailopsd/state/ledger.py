"""The ledger: every lead's progress, every send, reply and bounce, IMAP cursors.

SQLite in WAL mode (readers such as ``mailopsd status`` never block the daemon), with
``synchronous=FULL`` so a recorded send intent survives a crash. All SQL of mailopsd
lives in this module, with a schema version and migrations, so another engine can take
its place. Times are stored as RFC 3339 UTC text with microseconds, which sorts in time
order.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailopsd.config.leads import LeadRow
from mailopsd.errors import StateError

__all__ = [
    "COUNTED_OUTCOMES",
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "CredentialCounts",
    "Intent",
    "LeadProgress",
    "Ledger",
    "stamp",
    "unstamp",
]

# Outcomes that count against daily limits and rate limits: the message was (or may
# have been) handed to the server.
COUNTED_OUTCOMES = ("pending", "sent", "unknown", "bounced")
_COUNTED_SQL = "('pending', 'sent', 'unknown', 'bounced')"

LEDGER_FILE = "ledger.sqlite3"
SCHEMA_VERSION = 3

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
}


def stamp(moment: datetime) -> str:
    """Format a time as the ledger stores it (UTC, microseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    """Read a time the ledger stored."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class LeadProgress:
    """Where a lead is in its sequence.

    ``step`` counts the steps sent (0: none yet); ``state`` is ``new`` (step 1 due),
    ``waiting`` (next step due at ``next_due_at``), ``sending`` (an intent without its
    outcome), ``done``, ``stopped`` (replied, bounced, unsubscribed) or ``failed``.
    """

    campaign_id: str
    email: str
    fields: Mapping[str, str]
    state: str
    step: int
    credential_id: str | None
    next_due_at: str | None
    attempts: int
    message_ids: tuple[str, ...]
    first_subject: str | None
    last_error: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class Intent:
    """A send about to happen: recorded before the message leaves."""

    campaign_id: str
    credential_id: str
    email: str
    step: int
    message_id: str
    subject: str
    at: datetime


@dataclass(frozen=True)
class CredentialCounts:
    """Live counters of one credential."""

    sent_today: int = 0
    followups_today: int = 0
    sends_in_window: int = 0
    bounces_in_window: int = 0
    blocks_in_window: int = 0
    unknown: int = 0
    last_poll_at: str | None = None
    last_poll_result: str | None = None


class Ledger:
    """The ledger database; one instance per process, used from one thread."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        """Wrap an open connection (use :meth:`open` or :meth:`open_readonly`)."""
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, directory: Path) -> Ledger:
        """Open (creating and migrating as needed) the ledger in ``directory``.

        Raises:
            StateError: The file cannot be opened, is not a ledger, or is newer than
                this mailopsd.
        """
        path = directory / LEDGER_FILE
        try:
            # SQLite gives its -wal and -shm files the mode of the database: keep all private.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            connection = sqlite3.connect(path, isolation_level=None, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            ledger = cls(connection, path)
            ledger._migrate()
        except (OSError, sqlite3.DatabaseError) as err:
            raise StateError(f"ledger {path} cannot be used: {err}") from err
        return ledger

    @classmethod
    def open_readonly(cls, directory: Path) -> Ledger | None:
        """Open the ledger for reading only (``None`` if there is none yet)."""
        path = directory / LEDGER_FILE
        if not path.exists():
            return None
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StateError(f"ledger {path} cannot be read: {err}") from err
        if version > SCHEMA_VERSION:
            raise StateError(f"ledger {path} has schema {version}, newer than this mailopsd")
        return cls(connection, path)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"ledger {self.path} has schema {version}, newer than this mailopsd "
                f"({SCHEMA_VERSION}); upgrade mailopsd"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (all or nothing)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def integrity_ok(self) -> bool:
        """Tell whether SQLite's integrity check passes."""
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # Campaigns and credentials -------------------------------------------------------

    def active_campaigns(self) -> dict[str, dict[str, object]]:
        """Snapshots of the campaigns not removed, by id."""
        rows = self._db.execute("SELECT id, snapshot FROM campaigns WHERE removed_at IS NULL")
        return {row[0]: json.loads(row[1]) for row in rows}

    def active_credentials(self) -> dict[tuple[str, str], dict[str, object]]:
        """Snapshots of the credentials not removed, by (campaign, credential)."""
        rows = self._db.execute(
            "SELECT campaign_id, id, snapshot FROM credentials WHERE removed_at IS NULL"
        )
        return {(row[0], row[1]): json.loads(row[2]) for row in rows}

    def leads_digests(self) -> dict[str, str]:
        """The digest of the leads file last imported, by active campaign."""
        rows = self._db.execute(
            "SELECT id, leads_digest FROM campaigns WHERE removed_at IS NULL "
            "AND leads_digest IS NOT NULL"
        )
        return {row[0]: row[1] for row in rows}

    def put_campaign(
        self, campaign_id: str, account: str, snapshot: Mapping[str, object], now: datetime
    ) -> None:
        """Add or update a campaign (a removed one comes back)."""
        self._db.execute(
            "INSERT INTO campaigns (id, account, snapshot, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET account = excluded.account, "
            "snapshot = excluded.snapshot, removed_at = NULL",
            (campaign_id, account, json.dumps(snapshot, sort_keys=True), stamp(now)),
        )

    def remove_campaign(self, campaign_id: str, now: datetime) -> None:
        """Mark a campaign removed; its leads, sends and credentials stay for history."""
        self._db.execute(
            "UPDATE campaigns SET removed_at = ?, leads_digest = NULL WHERE id = ?",
            (stamp(now), campaign_id),
        )

    def put_credential(
        self, campaign_id: str, credential_id: str, snapshot: Mapping[str, object], now: datetime
    ) -> None:
        """Add or update a credential (a removed one comes back)."""
        self._db.execute(
            "INSERT INTO credentials (campaign_id, id, snapshot, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, id) DO UPDATE SET snapshot = excluded.snapshot, "
            "removed_at = NULL",
            (campaign_id, credential_id, json.dumps(snapshot, sort_keys=True), stamp(now)),
        )

    def remove_credential(self, campaign_id: str, credential_id: str, now: datetime) -> None:
        """Mark a credential removed; its sends and bounces stay for history."""
        self._db.execute(
            "UPDATE credentials SET removed_at = ? WHERE campaign_id = ? AND id = ?",
            (stamp(now), campaign_id, credential_id),
        )

    # Leads ----------------------------------------------------------------------------

    def lead_hashes(self, campaign_id: str) -> dict[str, str]:
        """The row digest of every active lead of a campaign, by address."""
        rows = self._db.execute(
            "SELECT email, row_hash FROM leads WHERE campaign_id = ? AND removed_at IS NULL",
            (campaign_id,),
        )
        return dict(rows.fetchall())

    def import_leads(
        self,
        campaign_id: str,
        *,
        account: str,
        digest: str,
        upserts: Iterable[LeadRow],
        removals: Iterable[str],
        now: datetime,
        problems: Iterable[str] = (),
    ) -> None:
        """Apply a leads file difference; record the file's digest and skipped rows."""
        when = stamp(now)
        self._db.executemany(
            "INSERT INTO leads (campaign_id, email, account, fields, row_hash, line, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, email) DO UPDATE SET "
            "fields = excluded.fields, row_hash = excluded.row_hash, line = excluded.line, "
            "removed_at = NULL",
            (
                (campaign_id, r.email, account, json.dumps(r.fields), r.row_hash, r.line, when)
                for r in upserts
            ),
        )
        self._db.executemany(
            "UPDATE leads SET removed_at = ? WHERE campaign_id = ? AND email = ?",
            ((when, campaign_id, email) for email in removals),
        )
        self._db.execute(
            "UPDATE campaigns SET leads_digest = ? WHERE id = ?", (digest, campaign_id)
        )
        self._db.execute("DELETE FROM lead_problems WHERE campaign_id = ?", (campaign_id,))
        self._db.executemany(
            "INSERT INTO lead_problems (campaign_id, position, message) VALUES (?, ?, ?)",
            ((campaign_id, position, text) for position, text in enumerate(problems)),
        )

    def lead_problems(self, campaign_id: str) -> list[str]:
        """The rows the last import of a campaign's leads file skipped, and why."""
        rows = self._db.execute(
            "SELECT message FROM lead_problems WHERE campaign_id = ? ORDER BY position",
            (campaign_id,),
        )
        return [str(row[0]) for row in rows]

    def lead_count(self, campaign_id: str) -> int:
        """How many active leads a campaign has."""
        row = self._db.execute(
            "SELECT count(*) FROM leads WHERE campaign_id = ? AND removed_at IS NULL",
            (campaign_id,),
        ).fetchone()
        return int(row[0])

    # Dispatch ---------------------------------------------------------------------------

    _LEAD_COLUMNS = (
        "campaign_id, email, fields, state, step, credential_id, next_due_at, attempts, "
        "message_ids, first_subject, last_error, stop_reason"
    )

    @staticmethod
    def _progress(row: tuple[object, ...]) -> LeadProgress:
        return LeadProgress(
            campaign_id=str(row[0]),
            email=str(row[1]),
            fields=json.loads(str(row[2])),
            state=str(row[3]),
            step=int(str(row[4])),
            credential_id=None if row[5] is None else str(row[5]),
            next_due_at=None if row[6] is None else str(row[6]),
            attempts=int(str(row[7])),
            message_ids=tuple(json.loads(str(row[8]))),
            first_subject=None if row[9] is None else str(row[9]),
            last_error=None if row[10] is None else str(row[10]),
            stop_reason=None if row[11] is None else str(row[11]),
        )

    def due_followups(
        self, campaign_id: str, account: str, now: datetime, *, credentials: list[str], limit: int
    ) -> list[LeadProgress]:
        """Leads whose next step is due on one of ``credentials``, oldest first.

        Suppressed addresses are left out; so are leads of other credentials, so that a
        disabled mailbox's waiting follow-ups never crowd out those that can go.
        """
        rows = self._db.execute(
            f"SELECT {self._LEAD_COLUMNS} FROM leads WHERE campaign_id = ? AND state = 'waiting' "
            "AND removed_at IS NULL AND next_due_at <= ? "
            "AND credential_id IN (SELECT value FROM json_each(?)) AND NOT EXISTS (SELECT 1 FROM "
            "suppressions s WHERE s.account = ? AND s.email = leads.email) "
            "ORDER BY next_due_at LIMIT ?",
            (campaign_id, stamp(now), json.dumps(credentials), account, limit),
        )
        return [self._progress(row) for row in rows]

    def new_leads(
        self, campaign_id: str, account: str, now: datetime, limit: int
    ) -> list[LeadProgress]:
        """Leads waiting for step 1, in file order (suppressed addresses left out)."""
        rows = self._db.execute(
            f"SELECT {self._LEAD_COLUMNS} FROM leads WHERE campaign_id = ? AND state = 'new' "
            "AND removed_at IS NULL AND (next_due_at IS NULL OR next_due_at <= ?) "
            "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.account = ? "
            "AND s.email = leads.email) ORDER BY line LIMIT ?",
            (campaign_id, stamp(now), account, limit),
        )
        return [self._progress(row) for row in rows]

    def step1_today(
        self, campaign_id: str, day_start: datetime
    ) -> dict[str, tuple[int, str | None]]:
        """Per credential: step-1 sends since ``day_start`` and the time of its last send."""
        rows = self._db.execute(
            "SELECT credential_id, coalesce(sum(step = 1 AND intent_at >= ?), 0), "
            f"max(intent_at) FROM sends WHERE campaign_id = ? AND outcome IN {_COUNTED_SQL} "
            "GROUP BY credential_id",
            (stamp(day_start), campaign_id),
        )
        return {str(row[0]): (int(row[1]), row[2]) for row in rows}

    def sends_since(self, campaign_id: str, since: datetime) -> dict[str, int]:
        """Per credential: sends of any step since ``since`` (for rate limits)."""
        rows = self._db.execute(
            "SELECT credential_id, count(*) FROM sends WHERE campaign_id = ? AND intent_at >= ? "
            f"AND outcome IN {_COUNTED_SQL} GROUP BY credential_id",
            (campaign_id, stamp(since)),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def record_intents(self, intents: list[Intent]) -> list[int]:
        """Commit every intent (and mark its lead ``sending``) before any message leaves."""
        ids = []
        with self.transaction():
            for intent in intents:
                cursor = self._db.execute(
                    "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, "
                    "intent_at, subject) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        intent.campaign_id,
                        intent.credential_id,
                        intent.email,
                        intent.step,
                        intent.message_id,
                        stamp(intent.at),
                        intent.subject,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
                self._db.execute(
                    "UPDATE leads SET state = 'sending' WHERE campaign_id = ? AND email = ?",
                    (intent.campaign_id, intent.email),
                )
        return ids

    def set_outcome(
        self, send_id: int, *, outcome: str, code: int | None, detail: str, at: datetime
    ) -> None:
        """Record how a send ended (inside the caller's transaction)."""
        self._db.execute(
            "UPDATE sends SET outcome = ?, smtp_code = ?, detail = ?, outcome_at = ? WHERE id = ?",
            (outcome, code, detail, stamp(at), send_id),
        )

    def update_lead(self, lead: LeadProgress) -> None:
        """Write a lead's progress (inside the caller's transaction)."""
        self._db.execute(
            "UPDATE leads SET state = ?, step = ?, credential_id = ?, next_due_at = ?, "
            "attempts = ?, message_ids = ?, first_subject = ?, last_error = ?, stop_reason = ? "
            "WHERE campaign_id = ? AND email = ?",
            (
                lead.state,
                lead.step,
                lead.credential_id,
                lead.next_due_at,
                lead.attempts,
                json.dumps(list(lead.message_ids)),
                lead.first_subject,
                lead.last_error,
                lead.stop_reason,
                lead.campaign_id,
                lead.email,
            ),
        )

    def add_bounce(
        self,
        send_id: int | None,
        campaign_id: str,
        credential_id: str,
        email: str,
        *,
        status: str | None,
        source: str,
        at: datetime,
        kind: str = "hard",
        detail: str | None = None,
    ) -> None:
        """Record a bounce (inside the caller's transaction).

        ``kind`` is ``hard`` (counts toward the bounce rate), ``block`` (counts toward the
        block rate) or ``soft`` (recorded only).
        """
        self._db.execute(
            "INSERT INTO bounces (campaign_id, credential_id, email, send_id, at, permanent, "
            "status, source, kind, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                campaign_id,
                credential_id,
                email,
                send_id,
                stamp(at),
                int(kind != "soft"),
                status,
                source,
                kind,
                detail,
            ),
        )

    def suppress(self, account: str, email: str, reason: str, at: datetime) -> None:
        """Suppress an address for every campaign of an account (inside a transaction)."""
        self._db.execute(
            "INSERT OR IGNORE INTO suppressions (account, email, reason, at) VALUES (?, ?, ?, ?)",
            (account, email, reason, stamp(at)),
        )

    def pending_sends(self) -> list[tuple[int, Intent]]:
        """Sends with an intent and no outcome (the process stopped in between)."""
        rows = self._db.execute(
            "SELECT id, campaign_id, credential_id, email, step, message_id, subject, intent_at "
            "FROM sends WHERE outcome = 'pending' ORDER BY id"
        )
        return [
            (
                int(row[0]),
                Intent(row[1], row[2], row[3], int(row[4]), row[5], row[6] or "", unstamp(row[7])),
            )
            for row in rows
        ]

    def lead(self, campaign_id: str, email: str) -> LeadProgress | None:
        """One lead's progress."""
        row = self._db.execute(
            f"SELECT {self._LEAD_COLUMNS} FROM leads WHERE campaign_id = ? AND email = ?",
            (campaign_id, email),
        ).fetchone()
        return None if row is None else self._progress(row)

    # Counters -------------------------------------------------------------------------

    def counts(
        self, campaign_id: str, credential_id: str, *, day_start: datetime, window_start: datetime
    ) -> CredentialCounts:
        """Live counters of a credential: today's sends, and sends and bounces in a window."""
        key = (campaign_id, credential_id)
        sent = self._db.execute(
            "SELECT coalesce(sum(step = 1 AND intent_at >= :day), 0), "
            "coalesce(sum(step > 1 AND intent_at >= :day), 0), "
            "coalesce(sum(intent_at >= :window), 0), coalesce(sum(outcome = 'unknown'), 0) "
            "FROM sends WHERE campaign_id = :campaign AND credential_id = :credential "
            f"AND outcome IN {_COUNTED_SQL}",
            {
                "day": stamp(day_start),
                "window": stamp(window_start),
                "campaign": key[0],
                "credential": key[1],
            },
        ).fetchone()
        bounced = self._db.execute(
            "SELECT coalesce(sum(kind = 'hard'), 0), coalesce(sum(kind = 'block'), 0) "
            "FROM bounces WHERE campaign_id = ? AND credential_id = ? AND at >= ?",
            (*key, stamp(window_start)),
        ).fetchone()
        poll = self._db.execute(
            "SELECT last_poll_at, last_result FROM imap_cursors WHERE campaign_id = ? "
            "AND credential_id = ? ORDER BY last_poll_at DESC LIMIT 1",
            key,
        ).fetchone()
        return CredentialCounts(
            sent_today=int(sent[0]),
            followups_today=int(sent[1]),
            sends_in_window=int(sent[2]),
            unknown=int(sent[3]),
            bounces_in_window=int(bounced[0]),
            blocks_in_window=int(bounced[1]),
            last_poll_at=poll[0] if poll else None,
            last_poll_result=poll[1] if poll else None,
        )

    # Inbox ------------------------------------------------------------------------------

    def imap_cursors(self, campaign_id: str, credential_id: str) -> dict[str, tuple[int, int]]:
        """Per folder: the ``UIDVALIDITY`` and last UID read."""
        rows = self._db.execute(
            "SELECT folder, uidvalidity, last_uid FROM imap_cursors WHERE campaign_id = ? "
            "AND credential_id = ? AND uidvalidity IS NOT NULL",
            (campaign_id, credential_id),
        )
        return {str(row[0]): (int(row[1]), int(row[2] or 0)) for row in rows}

    def set_imap_cursor(
        self,
        campaign_id: str,
        credential_id: str,
        folder: str,
        cursor: tuple[int, int] | None,
        *,
        at: datetime,
        result: str,
    ) -> None:
        """Record a poll of a folder: its cursor (kept as it was if ``None``) and result."""
        self._db.execute(
            "INSERT INTO imap_cursors (campaign_id, credential_id, folder, uidvalidity, "
            "last_uid, last_poll_at, last_result) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, credential_id, folder) DO UPDATE SET "
            "uidvalidity = coalesce(excluded.uidvalidity, uidvalidity), "
            "last_uid = coalesce(excluded.last_uid, last_uid), "
            "last_poll_at = excluded.last_poll_at, last_result = excluded.last_result",
            (
                campaign_id,
                credential_id,
                folder,
                cursor[0] if cursor else None,
                cursor[1] if cursor else None,
                stamp(at),
                result,
            ),
        )

    def first_send_at(self, campaign_id: str, credential_id: str) -> datetime | None:
        """When the credential first sent (or tried to), if ever."""
        row = self._db.execute(
            "SELECT min(intent_at) FROM sends WHERE campaign_id = ? AND credential_id = ? "
            f"AND outcome IN {_COUNTED_SQL}",
            (campaign_id, credential_id),
        ).fetchone()
        return unstamp(row[0]) if row and row[0] else None

    def note_message(
        self,
        campaign_id: str,
        credential_id: str,
        key: str,
        *,
        folder: str,
        uid: int,
        kind: str,
        email: str | None,
        at: datetime,
    ) -> bool:
        """Remember a message read from the mailbox; ``False`` if it was already seen."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox_messages (campaign_id, credential_id, key, folder, uid, "
            "at, kind, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (campaign_id, credential_id, key, folder, uid, stamp(at), kind, email),
        )
        return cursor.rowcount == 1

    def has_message(self, campaign_id: str, credential_id: str, key: str) -> bool:
        """Tell whether a message read from the mailbox was recorded already."""
        row = self._db.execute(
            "SELECT 1 FROM inbox_messages WHERE campaign_id = ? AND credential_id = ? AND key = ?",
            (campaign_id, credential_id, key),
        ).fetchone()
        return row is not None

    def send_by_message_id(self, message_ids: Iterable[str]) -> tuple[int, str, str, str] | None:
        """The send (id, campaign, credential, address) that had one of ``message_ids``."""
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        row = self._db.execute(
            "SELECT id, campaign_id, credential_id, email FROM sends WHERE message_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 1",
            (json.dumps(ids),),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def last_send_to(
        self, campaign_id: str, credential_id: str, email: str
    ) -> tuple[int, str, str, str] | None:
        """The last send of a credential to ``email`` (leads' addresses are lower case)."""
        row = self._db.execute(
            "SELECT id, campaign_id, credential_id, email FROM sends WHERE email = ? "
            "AND credential_id = ? AND campaign_id = ? ORDER BY id DESC LIMIT 1",
            (email.lower(), credential_id, campaign_id),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def add_reply(
        self,
        campaign_id: str,
        credential_id: str,
        email: str,
        *,
        kind: str,
        message_id: str | None,
        at: datetime,
    ) -> None:
        """Record a reply, auto-reply or unsubscribe request (inside a transaction)."""
        self._db.execute(
            "INSERT INTO replies (campaign_id, credential_id, email, at, kind, message_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (campaign_id, credential_id, email, stamp(at), kind, message_id),
        )

    def stop_lead(self, campaign_id: str, email: str, reason: str) -> bool:
        """Stop a lead's sequence (its queued steps are never sent); ``False`` if it was over."""
        cursor = self._db.execute(
            "UPDATE leads SET state = 'stopped', stop_reason = ?, next_due_at = NULL "
            "WHERE campaign_id = ? AND email = ? AND state IN ('new', 'waiting', 'sending')",
            (reason, campaign_id, email),
        )
        return cursor.rowcount == 1

    def inbox_counts(self, campaign_id: str, credential_id: str) -> dict[str, int]:
        """Messages read from a credential's mailbox, by class."""
        rows = self._db.execute(
            "SELECT kind, count(*) FROM inbox_messages WHERE campaign_id = ? "
            "AND credential_id = ? GROUP BY kind",
            (campaign_id, credential_id),
        )
        return {str(row[0]): int(row[1]) for row in rows}

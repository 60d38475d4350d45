"""The ledger: every lead's progress, every send, reply and bounce, IMAP cursors, opens, clicks.

SQLite in WAL mode (readers such as ``mailopsd status`` never block the daemon), with
``synchronous=FULL`` so a recorded send intent survives a crash. All SQL of mailopsd
lives in this module, with a schema version and migrations, so another engine can take
its place. Times are stored as RFC 3339 UTC text with microseconds, which sorts in time
order.

The daemon's main thread does most of the writing through one connection; the HTTP
server's threads open connections of their own, one per request, for short
transactions (a one-click unsubscribe, an open, a click), waiting on SQLite's busy
timeout while the main thread holds the write lock.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, overload

from mailopsd.config import addresses
from mailopsd.config.leads import LeadLine, LeadRow, repeat_problem
from mailopsd.errors import StateError

__all__ = [
    "COUNTED_OUTCOMES",
    "LEDGER_ERRORS",
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "CredentialCounts",
    "Intent",
    "LeadProgress",
    "LeadTally",
    "LeadsStage",
    "Ledger",
    "SendTally",
    "Staged",
    "StepWait",
    "Totals",
    "Tracked",
    "stamp",
    "unstamp",
]

# Outcomes that count against daily limits and rate limits: the message was (or may
# have been) handed to the server.
COUNTED_OUTCOMES = ("pending", "sent", "unknown", "bounced")
_COUNTED_SQL = "('pending', 'sent', 'unknown', 'bounced')"
_MIDNIGHT = "T00:00:00.000000Z"

LEDGER_FILE = "ledger.sqlite3"
LEDGER_ERRORS = (StateError, sqlite3.Error, OSError)
"""What opening, reading or writing the ledger (or the state directory) raises when it
cannot be done: disk full, read-only, locked, damaged."""
SCHEMA_VERSION = 6

# The bodies of migration 4's triggers: one counts a send that became counted (inserted,
# or updated into a counted outcome), the other takes back one that stopped counting
# (updated away, or deleted).
_COUNT_NEW_SEND = """\
    BEGIN
        INSERT INTO credential_days (campaign_id, day, credential_id, step1, followups)
            VALUES (new.campaign_id, substr(new.intent_at, 1, 10), new.credential_id,
                new.step = 1, new.step > 1)
            ON CONFLICT (campaign_id, day, credential_id) DO UPDATE
            SET step1 = step1 + excluded.step1, followups = followups + excluded.followups;
        INSERT INTO credential_last_send (campaign_id, credential_id, at, day_step1)
            VALUES (new.campaign_id, new.credential_id, new.intent_at, 0)
            ON CONFLICT (campaign_id, credential_id) DO UPDATE
            SET at = max(coalesce(at, ''), excluded.at);
        UPDATE credential_last_send SET day_step1 = coalesce((
            SELECT step1 FROM credential_days WHERE campaign_id = new.campaign_id
            AND day = substr(credential_last_send.at, 1, 10)
            AND credential_id = new.credential_id), 0)
            WHERE campaign_id = new.campaign_id AND credential_id = new.credential_id;
    END;
"""

_UNCOUNT_OLD_SEND = """\
    BEGIN
        UPDATE credential_days
            SET step1 = step1 - (old.step = 1), followups = followups - (old.step > 1)
            WHERE campaign_id = old.campaign_id AND day = substr(old.intent_at, 1, 10)
            AND credential_id = old.credential_id;
        UPDATE credential_last_send SET at = (
            SELECT intent_at FROM sends INDEXED BY sends_by_credential
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id
            AND (outcome = 'pending' OR outcome = 'sent' OR outcome = 'unknown'
                OR outcome = 'bounced')
            ORDER BY intent_at DESC LIMIT 1)
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id;
        UPDATE credential_last_send SET day_step1 = coalesce((
            SELECT step1 FROM credential_days WHERE campaign_id = old.campaign_id
            AND day = substr(credential_last_send.at, 1, 10)
            AND credential_id = old.credential_id), 0)
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id;
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
    CREATE TRIGGER sends_count AFTER INSERT ON sends
    WHEN (new.outcome = 'pending' OR new.outcome = 'sent' OR new.outcome = 'unknown'
        OR new.outcome = 'bounced')
{_COUNT_NEW_SEND}    CREATE TRIGGER sends_recount AFTER UPDATE ON sends
    WHEN (new.outcome = 'pending' OR new.outcome = 'sent' OR new.outcome = 'unknown'
        OR new.outcome = 'bounced')
        AND (NOT (old.outcome = 'pending' OR old.outcome = 'sent' OR old.outcome = 'unknown'
        OR old.outcome = 'bounced')
        OR new.campaign_id IS NOT old.campaign_id OR new.credential_id IS NOT old.credential_id
        OR new.intent_at IS NOT old.intent_at OR new.step IS NOT old.step)
{_COUNT_NEW_SEND}    CREATE TRIGGER sends_uncount AFTER UPDATE ON sends
    WHEN (old.outcome = 'pending' OR old.outcome = 'sent' OR old.outcome = 'unknown'
        OR old.outcome = 'bounced')
        AND (NOT (new.outcome = 'pending' OR new.outcome = 'sent' OR new.outcome = 'unknown'
        OR new.outcome = 'bounced')
        OR new.campaign_id IS NOT old.campaign_id OR new.credential_id IS NOT old.credential_id
        OR new.intent_at IS NOT old.intent_at OR new.step IS NOT old.step)
{_UNCOUNT_OLD_SEND}    CREATE TRIGGER sends_uncount_deleted AFTER DELETE ON sends
    WHEN (old.outcome = 'pending' OR old.outcome = 'sent' OR old.outcome = 'unknown'
        OR old.outcome = 'bounced')
{_UNCOUNT_OLD_SEND}    """,
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


def _rekey_addresses(db: sqlite3.Connection) -> None:
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


def _rekey_leads(db: sqlite3.Connection, old: str, new: str) -> None:
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


def _read_only_fs(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


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
class LeadsStage:
    """A leads file staged in the ledger's temporary tables, compared with its campaign.

    The counts are those of the comparison; the rows stay in SQLite (see
    :meth:`Ledger.stage_leads`) until imported, staged again or the connection closes.
    """

    campaign_id: str
    number: int
    added: int
    updated: int
    removed: int
    problems: int

    def table(self, part: str) -> str:
        """The name of one of the stage's temporary tables."""
        return f"temp.leads_stage_{self.number}_{part}"


_T = TypeVar("_T")


class Staged(Sequence[_T]):
    """A sequence a plan holds without keeping it: counted when staged, read when iterated.

    Iterating runs a query on the ledger's stage, so a plan of a million added leads
    costs no memory until (and unless) someone walks through them.
    """

    def __init__(self, stage: LeadsStage, count: int, read: Callable[[], Iterator[_T]]) -> None:
        self.stage = stage
        self._count = count
        self._read = read

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[_T]:
        return self._read()

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | Sequence[_T]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError(index)
        return next(itertools.islice(iter(self), position, None))

    def __repr__(self) -> str:
        return f"<{self._count} staged in {self.stage.table('*')}>"


@dataclass(frozen=True)
class CredentialCounts:
    """Live counters of one credential."""

    sent_today: int = 0
    followups_today: int = 0
    sends_in_window: int = 0
    bounces_in_window: int = 0
    blocks_in_window: int = 0
    unconfirmed_in_window: int = 0
    unknown: int = 0
    last_poll_at: str | None = None
    last_poll_result: str | None = None


@dataclass(frozen=True)
class StepWait:
    """The leads waiting for their next step after the same number of steps sent.

    Attributes:
        leads: How many (suppressed addresses included: see ``LeadTally.suppressed``).
        first_due: The earliest time one of them is due (ledger stamp).
        last_due: The latest.
    """

    leads: int
    first_due: str | None
    last_due: str | None


@dataclass(frozen=True)
class LeadTally:
    """Where a campaign's active leads stand.

    Attributes:
        total: Active leads.
        by_state: Leads by state: ``new``, ``sending``, ``waiting``, ``done``, ``failed``,
            and the stopped ones by reason: ``replied``, ``bounced``, ``unsubscribed``,
            ``stopped`` (any other reason: a complaint, an auto-reply).
        waiting: Per number of steps sent, the leads waiting for their next step.
        suppressed: Per ``(state, steps sent)``, new and waiting leads whose address is
            suppressed for the account: they are never sent their next step.
    """

    total: int
    by_state: dict[str, int]
    waiting: dict[int, StepWait]
    suppressed: dict[tuple[str, int], int]


@dataclass(frozen=True)
class SendTally:
    """A campaign's counted sends (handed to a server, or may have been).

    Attributes:
        total: Since the campaign began.
        today: Since ``day_start``, every step.
        step1_today: Since ``day_start``, step 1 only.
    """

    total: int
    today: int
    step1_today: int


# What one scan of a campaign's leads adds up, by name (module constants only).
_TALLIED_STATES = {
    "new": "state = 'new'",
    "sending": "state = 'sending'",
    "waiting": "state = 'waiting'",
    "done": "state = 'done'",
    "failed": "state = 'failed'",
    "replied": "state = 'stopped' AND stop_reason = 'replied'",
    "bounced": "state = 'stopped' AND stop_reason = 'bounced'",
    "unsubscribed": "state = 'stopped' AND stop_reason = 'unsubscribed'",
    "stopped": "state = 'stopped' AND coalesce(stop_reason, '') "
    "NOT IN ('replied', 'bounced', 'unsubscribed')",
}


@dataclass(frozen=True)
class Tracked:
    """How often a lead opened a message, or clicked one link, and when."""

    first_at: datetime
    last_at: datetime
    count: int


@dataclass(frozen=True)
class Totals:
    """Running totals of the whole ledger, by label values (what ``/metrics`` exposes).

    Attributes:
        sends: Sends by ``(campaign, credential, outcome)``.
        bounces: Bounce reports by ``(campaign, credential, kind)``.
        replies: Replies by ``(campaign, kind)`` (``reply``, ``auto_reply``,
            ``unsubscribe``, ``feedback``).
        suppressions: Suppressed addresses by ``(account,)``.
        opens: Opens (every pixel load) by ``(campaign,)``.
        clicks: Clicks (every redirect) by ``(campaign,)``.
    """

    sends: dict[tuple[str, ...], int]
    bounces: dict[tuple[str, ...], int]
    replies: dict[tuple[str, ...], int]
    suppressions: dict[tuple[str, ...], int]
    opens: dict[tuple[str, ...], int]
    clicks: dict[tuple[str, ...], int]


# Each total as (columns it is grouped by, what it adds up, table): module constants only.
_TOTALS: dict[str, tuple[str, str, str]] = {
    "sends": ("campaign_id, credential_id, outcome", "count(*)", "sends"),
    "bounces": ("campaign_id, credential_id, kind", "count(*)", "bounces"),
    "replies": ("campaign_id, kind", "count(*)", "replies"),
    "suppressions": ("account", "count(*)", "suppressions"),
    "opens": ("campaign_id", "sum(count)", "opens"),
    "clicks": ("campaign_id", "sum(count)", "clicks"),
}


def _create_private(path: Path) -> None:
    """Create an empty ledger file readable by its owner only, unless it exists.

    SQLite gives its -wal and -shm files the mode of the database, so all stay private.
    An existing file is never opened here: closing a descriptor of the database drops
    every lock this process holds on it, SQLite's included, and another process could
    then take the daemon's write-ahead log away (``O_EXCL`` fails before opening one).
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


class Ledger:
    """The ledger database: one instance per connection, used from one thread."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        """Wrap an open connection (use :meth:`open` or :meth:`open_readonly`)."""
        self._db = connection
        self.path = path
        self._stages: dict[str, LeadsStage] = {}
        self._staged = 0
        # Only the main thread's instance writes credentials: active credentials'
        # snapshots are kept in memory after the first read, and updated as they are written.
        self._credentials: dict[tuple[str, str], dict[str, object]] | None = None

    @classmethod
    def scratch(cls) -> Ledger:
        """An empty ledger in a private temporary file, deleted on close.

        A plan made before any ledger exists stages its leads files here.
        """
        connection = sqlite3.connect("", isolation_level=None)
        ledger = cls(connection, Path())
        ledger._migrate()
        return ledger

    @classmethod
    def open(cls, directory: Path, *, any_thread: bool = False) -> Ledger:
        """Open (creating and migrating as needed) the ledger in ``directory``.

        Args:
            directory: The state directory.
            any_thread: Let another thread than the opening one use (or close) the
                connection; the caller makes sure one thread at a time does.

        Raises:
            StateError: The file cannot be opened, is not a ledger, or is newer than
                this mailopsd.
        """
        path = directory / LEDGER_FILE
        try:
            _create_private(path)
            connection = sqlite3.connect(
                path, isolation_level=None, timeout=10, check_same_thread=not any_thread
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            ledger = cls(connection, path)
            ledger._migrate()
        except (OSError, sqlite3.DatabaseError) as err:
            # SQLite says only "unable to open database file" where the file exists on a
            # read-only file system; say why.
            read_only = not isinstance(err, OSError) and _read_only_fs(directory)
            cause = f"{err} ({os.strerror(errno.EROFS)})" if read_only else str(err)
            raise StateError(f"ledger {path} cannot be used: {cause}") from err
        return ledger

    @classmethod
    def open_readonly(cls, directory: Path) -> Ledger | None:
        """Open the ledger for reading only (``None`` if there is none yet)."""
        path = directory / LEDGER_FILE
        if not path.exists():
            return None
        # On a read-only file system SQLite cannot set up its shared memory; nothing can
        # change the file there, so it is read as immutable, unless a write-ahead log
        # left beside it holds writes the file lacks.
        frozen = _read_only_fs(directory) and not path.with_name(f"{path.name}-wal").exists()
        uri = f"file:{path}?mode=ro" + ("&immutable=1" if frozen else "")
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=10)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StateError(f"ledger {path} cannot be read: {err}") from err
        if version > SCHEMA_VERSION:
            raise StateError(f"ledger {path} has schema {version}, newer than this mailopsd")
        return cls(connection, path)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def check_readable(self) -> None:
        """Read the schema, as every query does first.

        Raises:
            sqlite3.Error: The database cannot be read (lost files, I/O errors).
        """
        self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"ledger {self.path} has schema {version}, newer than this mailopsd "
                f"({SCHEMA_VERSION}); upgrade mailopsd"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in _statements(_MIGRATIONS[target]):
                    self._db.execute(statement)
                if target == _REKEY_MIGRATION:
                    _rekey_addresses(self._db)
                self._db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (all or nothing)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) may already have rolled back; the
            # ROLLBACK then fails, and the first error is the one that counts.
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._credentials = None
            raise

    def probe_write(self) -> None:
        """Write one page and commit it, to tell whether the ledger takes writes now.

        Raises:
            sqlite3.Error: It does not (disk full, read-only, I/O error).
        """
        with self.transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            self._db.execute(f"PRAGMA user_version = {int(version)}")

    def integrity_ok(self) -> bool:
        """Tell whether SQLite's integrity check passes."""
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # Campaigns and credentials -------------------------------------------------------

    def campaign_account(self, campaign_id: str) -> str | None:
        """The account of a campaign the ledger knows, removed ones included."""
        row = self._db.execute(
            "SELECT account FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def active_campaigns(self) -> dict[str, dict[str, object]]:
        """Snapshots of the campaigns not removed, by id."""
        rows = self._db.execute("SELECT id, snapshot FROM campaigns WHERE removed_at IS NULL")
        return {row[0]: json.loads(row[1]) for row in rows}

    def active_credentials(self) -> dict[tuple[str, str], dict[str, object]]:
        """Snapshots of the credentials not removed, by (campaign, credential)."""
        if self._credentials is None:
            rows = self._db.execute(
                "SELECT campaign_id, id, snapshot FROM credentials WHERE removed_at IS NULL"
            )
            self._credentials = {(row[0], row[1]): json.loads(row[2]) for row in rows}
        return dict(self._credentials)

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
        text = json.dumps(snapshot, sort_keys=True)
        self._db.execute(
            "INSERT INTO credentials (campaign_id, id, snapshot, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, id) DO UPDATE SET snapshot = excluded.snapshot, "
            "removed_at = NULL",
            (campaign_id, credential_id, text, stamp(now)),
        )
        if self._credentials is not None:
            self._credentials[campaign_id, credential_id] = json.loads(text)

    def remove_credential(self, campaign_id: str, credential_id: str, now: datetime) -> None:
        """Mark a credential removed; its sends and bounces stay for history."""
        self._db.execute(
            "UPDATE credentials SET removed_at = ? WHERE campaign_id = ? AND id = ?",
            (stamp(now), campaign_id, credential_id),
        )
        if self._credentials is not None:
            self._credentials.pop((campaign_id, credential_id), None)

    # Leads ----------------------------------------------------------------------------

    @contextmanager
    def _temporary_work(self) -> Iterator[None]:
        """One transaction for writes to temporary tables (none if one is open already)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
                self._db.execute("ROLLBACK")
            raise

    def stage_leads(self, campaign_id: str, lines: Iterable[LeadLine], *, name: str) -> LeadsStage:
        """Stage a leads file read row by row, and compare it with the campaign's leads.

        The rows go to temporary tables (on disk, outside the ledger file: nothing is
        kept in memory); the first row of each address is kept and the others become
        problems, then SQL compares the kept rows with the campaign's active leads.
        Works on a read-only ledger too. A campaign staged again drops its earlier stage.

        Args:
            campaign_id: The campaign whose leads file it is.
            lines: The file's rows, in order (see ``iter_leads``).
            name: How problems name the file.

        Returns:
            The stage, with how many rows it adds, changes and removes, and its problems.
        """
        self.drop_stage(campaign_id)
        self._staged += 1
        stage = LeadsStage(campaign_id, self._staged, 0, 0, 0, 0)
        self._stages[campaign_id] = stage
        try:
            with self._temporary_work():
                counts = self._fill_stage(stage, lines, name)
        except BaseException:
            self._stages.pop(campaign_id, None)
            raise
        stage = LeadsStage(campaign_id, stage.number, *counts)
        self._stages[campaign_id] = stage
        return stage

    def _fill_stage(
        self, stage: LeadsStage, lines: Iterable[LeadLine], name: str
    ) -> tuple[int, int, int, int]:
        """Create a stage's tables, fill and compare them; return its four counts."""
        lines_table, problems, kept, removed = (
            stage.table(part) for part in ("lines", "problems", "kept", "removed")
        )
        self._db.execute(
            f"CREATE TABLE {lines_table} (line INTEGER PRIMARY KEY, email TEXT NOT NULL, "
            "given TEXT, fields TEXT NOT NULL, row_hash TEXT NOT NULL)"
        )
        self._db.execute(
            f"CREATE TABLE {problems} (line INTEGER PRIMARY KEY, message TEXT NOT NULL)"
        )
        self._db.execute(
            f"CREATE TABLE {kept} (email TEXT PRIMARY KEY, line INTEGER NOT NULL, change TEXT) "
            "WITHOUT ROWID"
        )
        self._db.execute(f"CREATE TABLE {removed} (email TEXT PRIMARY KEY) WITHOUT ROWID")
        count = self._load_stage(stage, lines)
        self._compare_stage(stage, count, name)
        added, updated = self._db.execute(
            f"SELECT coalesce(sum(change = 'added'), 0), coalesce(sum(change = 'updated'), 0) "
            f"FROM {kept}"
        ).fetchone()
        (gone,) = self._db.execute(f"SELECT count(*) FROM {removed}").fetchone()
        (skipped,) = self._db.execute(f"SELECT count(*) FROM {problems}").fetchone()
        return int(added), int(updated), int(gone), int(skipped)

    _STAGE_BATCH = 2_000

    def _load_stage(self, stage: LeadsStage, lines: Iterable[LeadLine]) -> int:
        """Write the rows and the skipped rows; return how many usable rows there were."""
        insert_line = (
            f"INSERT INTO {stage.table('lines')} (line, email, given, fields, row_hash) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        insert_problem = f"INSERT INTO {stage.table('problems')} (line, message) VALUES (?, ?)"
        rows: list[tuple[int, str, str | None, str, str]] = []
        problems: list[tuple[int, str]] = []
        count = 0
        for lead in lines:
            if lead.problem is not None:
                problems.append((lead.line, lead.problem))
                continue
            given = None if lead.given == lead.email else lead.given
            rows.append((lead.line, lead.email, given, lead.text, lead.row_hash))
            if len(rows) >= self._STAGE_BATCH:
                count += len(rows)
                self._db.executemany(insert_line, rows)
                rows.clear()
                self._db.executemany(insert_problem, problems)
                problems.clear()
        self._db.executemany(insert_line, rows)
        self._db.executemany(insert_problem, problems)
        return count + len(rows)

    def _compare_stage(self, stage: LeadsStage, count: int, name: str) -> None:
        """Keep each address's first row, note the repeats, and compare with the leads."""
        lines, problems, kept, removed = (
            stage.table(part) for part in ("lines", "problems", "kept", "removed")
        )
        self._db.execute(
            f"INSERT INTO {kept} (email, line, change) "
            "SELECT first.email, first.line, CASE WHEN lead.row_hash IS NULL THEN 'added' "
            "WHEN lead.row_hash <> staged.row_hash THEN 'updated' END "
            f"FROM (SELECT email, min(line) AS line FROM {lines} GROUP BY email) AS first "
            f"JOIN {lines} AS staged ON staged.line = first.line "
            "LEFT JOIN main.leads AS lead ON lead.campaign_id = ? AND lead.email = first.email "
            "AND lead.removed_at IS NULL ORDER BY first.email",
            (stage.campaign_id,),
        )
        (distinct,) = self._db.execute(f"SELECT count(*) FROM {kept}").fetchone()
        if distinct < count:
            repeats = self._db.execute(
                f"SELECT staged.line, coalesce(staged.given, staged.email), first.line "
                f"FROM {lines} AS staged JOIN {kept} AS first ON first.email = staged.email "
                "WHERE staged.line <> first.line"
            )
            while batch := repeats.fetchmany(self._STAGE_BATCH):
                self._db.executemany(
                    f"INSERT INTO {problems} (line, message) VALUES (?, ?)",
                    [
                        (line, repeat_problem(name, line, given, first))
                        for line, given, first in batch
                    ],
                )
        self._db.execute(
            f"INSERT INTO {removed} (email) SELECT lead.email FROM main.leads AS lead "
            "WHERE lead.campaign_id = ? AND lead.removed_at IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {kept} AS k WHERE k.email = lead.email) "
            "ORDER BY lead.email",
            (stage.campaign_id,),
        )

    def _current(self, stage: LeadsStage) -> None:
        if self._stages.get(stage.campaign_id) is not stage:
            raise StateError(
                f"the staged leads of {stage.campaign_id} are gone (imported, or staged again "
                "since); plan again"
            )

    def _staged_rows(self, stage: LeadsStage, change: str) -> Iterator[LeadRow]:
        self._current(stage)
        rows = self._db.execute(
            f"SELECT k.email, l.fields, l.row_hash, k.line FROM {stage.table('kept')} AS k "
            f"JOIN {stage.table('lines')} AS l ON l.line = k.line WHERE k.change = ? "
            "ORDER BY k.line",
            (change,),
        )
        for email, fields, row_hash, line in rows:
            yield LeadRow(email, json.loads(fields), row_hash, line)

    def _staged_column(self, stage: LeadsStage, query: str) -> Iterator[str]:
        self._current(stage)
        for (value,) in self._db.execute(query):
            yield str(value)

    def staged_changes(
        self, stage: LeadsStage
    ) -> tuple[Staged[LeadRow], Staged[LeadRow], Staged[str], Staged[str]]:
        """What a stage changes, each part read from the stage when iterated.

        Returns:
            The rows added and the rows changed (in file order), the addresses removed
            (sorted) and the problems (by line).
        """
        removed = f"SELECT email FROM {stage.table('removed')} ORDER BY email"
        problems = f"SELECT message FROM {stage.table('problems')} ORDER BY line"
        return (
            Staged(stage, stage.added, lambda: self._staged_rows(stage, "added")),
            Staged(stage, stage.updated, lambda: self._staged_rows(stage, "updated")),
            Staged(stage, stage.removed, lambda: self._staged_column(stage, removed)),
            Staged(stage, stage.problems, lambda: self._staged_column(stage, problems)),
        )

    def drop_stage(self, campaign_id: str) -> None:
        """Forget a campaign's staged leads file, if any."""
        stage = self._stages.pop(campaign_id, None)
        if stage is None:
            return
        for part in ("lines", "problems", "kept", "removed"):
            self._db.execute(f"DROP TABLE IF EXISTS {stage.table(part)}")

    def import_staged(self, stage: LeadsStage, *, account: str, digest: str, now: datetime) -> None:
        """Apply a staged leads file (inside the caller's transaction), then drop the stage.

        Only the difference is written: rows added or changed are upserted in address
        order, removed addresses marked removed; the file's digest and skipped rows are
        recorded.

        Raises:
            StateError: The stage is gone: imported already, or staged again since.
        """
        self._current(stage)
        when = stamp(now)
        self._db.execute(
            "INSERT INTO leads (campaign_id, email, account, fields, row_hash, line, added_at) "
            f"SELECT ?, k.email, ?, l.fields, l.row_hash, k.line, ? FROM {stage.table('kept')} "
            f"AS k JOIN {stage.table('lines')} AS l ON l.line = k.line "
            "WHERE k.change IS NOT NULL ORDER BY k.email "
            "ON CONFLICT (campaign_id, email) DO UPDATE SET fields = excluded.fields, "
            "row_hash = excluded.row_hash, line = excluded.line, removed_at = NULL",
            (stage.campaign_id, account, when),
        )
        self._db.execute(
            "UPDATE leads SET removed_at = ? WHERE campaign_id = ? "
            f"AND email IN (SELECT email FROM {stage.table('removed')})",
            (when, stage.campaign_id),
        )
        self._db.execute(
            "UPDATE campaigns SET leads_digest = ? WHERE id = ?", (digest, stage.campaign_id)
        )
        self._db.execute("DELETE FROM lead_problems WHERE campaign_id = ?", (stage.campaign_id,))
        self._db.execute(
            "INSERT INTO lead_problems (campaign_id, position, message) "
            "SELECT ?, row_number() OVER (ORDER BY line) - 1, message "
            f"FROM {stage.table('problems')} ORDER BY line",
            (stage.campaign_id,),
        )
        self.drop_stage(stage.campaign_id)

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

    def lead_tally(self, campaign_id: str, account: str, *, steps: int) -> LeadTally:
        """Count a campaign's active leads by state, and its waiting leads by step.

        One pass over the campaign's leads (conditional sums, no sort: a grouped query
        would sort every lead), then one lookup per suppressed address of the account,
        in one read transaction.

        Args:
            campaign_id: The campaign.
            account: Its account (suppressions are per account).
            steps: The length of its sequence (waiting leads have sent 1 to steps - 1).
        """
        sums = [f"coalesce(sum({where}), 0)" for where in _TALLIED_STATES.values()]
        for sent in range(1, max(steps, 1)):
            after = f"state = 'waiting' AND step = {int(sent)}"
            sums += [
                f"coalesce(sum({after}), 0)",
                f"min(CASE WHEN {after} THEN next_due_at END)",
                f"max(CASE WHEN {after} THEN next_due_at END)",
            ]
        with self._read_snapshot():
            row = self._db.execute(
                f"SELECT count(*), {', '.join(sums)} FROM leads "
                "WHERE campaign_id = ? AND removed_at IS NULL",
                (campaign_id,),
            ).fetchone()
            # From the account's suppressions to the leads, not the other way round:
            # an account has far fewer suppressed addresses than leads.
            blocked = self._db.execute(
                "SELECT l.state, l.step, count(*) FROM suppressions AS s CROSS JOIN leads AS l "
                "ON l.campaign_id = ? AND l.email = s.email WHERE s.account = ? "
                "AND l.state IN ('new', 'waiting') AND l.removed_at IS NULL "
                "GROUP BY l.state, l.step",
                (campaign_id, account),
            ).fetchall()
        counts = row[1 : 1 + len(_TALLIED_STATES)]
        steps_part = row[1 + len(_TALLIED_STATES) :]
        waiting = {
            index // 3 + 1: StepWait(int(steps_part[index]), *steps_part[index + 1 : index + 3])
            for index in range(0, len(steps_part), 3)
            if steps_part[index]
        }
        return LeadTally(
            total=int(row[0]),
            by_state=dict(zip(_TALLIED_STATES, map(int, counts), strict=True)),
            waiting=waiting,
            suppressed={(str(state), int(step)): int(n) for state, step, n in blocked},
        )

    def send_tally(self, campaign_id: str, day_start: datetime) -> SendTally:
        """Count a campaign's sends: in all, and since ``day_start`` (a UTC midnight).

        Read from the per-day counters the triggers keep: one row per day and mailbox.
        """
        day = stamp(day_start)[:10]
        row = self._db.execute(
            "SELECT coalesce(sum(step1 + followups), 0), "
            "coalesce(sum(CASE WHEN day >= :day THEN step1 + followups END), 0), "
            "coalesce(sum(CASE WHEN day >= :day THEN step1 END), 0) "
            "FROM credential_days WHERE campaign_id = :campaign",
            {"day": day, "campaign": campaign_id},
        ).fetchone()
        return SendTally(total=int(row[0]), today=int(row[1]), step1_today=int(row[2]))

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
        """Per credential: step-1 sends since ``day_start`` and the time of its last send.

        Every credential that ever made a counted send is listed. From a UTC midnight
        (what callers pass) one row per credential answers, kept by triggers, whatever
        the history holds.
        """
        since = stamp(day_start)
        if not since.endswith(_MIDNIGHT):
            sent = self._db.execute(
                "SELECT credential_id, count(*) FROM sends INDEXED BY sends_by_time "
                "WHERE campaign_id = ? AND intent_at >= ? AND step = 1 "
                f"AND outcome IN {_COUNTED_SQL} GROUP BY credential_id",
                (campaign_id, since),
            ).fetchall()
            counts = dict(sent)
            last = self._db.execute(
                "SELECT credential_id, at FROM credential_last_send WHERE campaign_id = ? "
                "AND at IS NOT NULL",
                (campaign_id,),
            )
            return {str(key): (int(counts.get(key, 0)), at) for key, at in last}
        # The last send's day is the latest day with sends: today's count is its count,
        # or 0 if it was before today (after today only if the clock went back: add up).
        rows = self._db.execute(
            "SELECT credential_id, CASE WHEN at < :since THEN 0 "
            "WHEN substr(at, 1, 10) = :day THEN day_step1 ELSE (SELECT sum(step1) "
            "FROM credential_days AS d WHERE d.campaign_id = :campaign AND d.day >= :day "
            "AND d.credential_id = last.credential_id) END, at "
            "FROM credential_last_send AS last WHERE campaign_id = :campaign "
            "AND at IS NOT NULL",
            {"campaign": campaign_id, "since": since, "day": since[:10]},
        ).fetchall()
        return {key: (sent, at) for key, sent, at in rows}

    def sends_since(self, campaign_id: str, since: datetime) -> dict[str, int]:
        """Per credential: sends of any step since ``since`` (for rate limits)."""
        rows = self._db.execute(
            "SELECT credential_id, count(*) FROM sends INDEXED BY sends_by_time "
            f"WHERE campaign_id = ? AND intent_at >= ? AND outcome IN {_COUNTED_SQL} "
            "GROUP BY credential_id",
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
        """Write a lead's progress (inside the caller's transaction).

        A lead stopped meanwhile (a one-click unsubscribe from the HTTP server while its
        step was being sent) stays stopped: its send is recorded, its next step is not.
        """
        self._db.execute(
            "UPDATE leads SET state = CASE WHEN state = 'stopped' THEN state ELSE ? END, "
            "step = ?, credential_id = ?, "
            "next_due_at = CASE WHEN state = 'stopped' THEN NULL ELSE ? END, "
            "attempts = ?, message_ids = ?, first_subject = ?, last_error = ?, "
            "stop_reason = CASE WHEN state = 'stopped' THEN stop_reason ELSE ? END "
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
        block rate), ``soft`` (recorded only) or ``unconfirmed`` (a hard bounce or block
        reported without quoting our message: recorded and shown, never counted).
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

    def suppress(self, account: str, email: str, reason: str, at: datetime) -> bool:
        """Suppress an address for every campaign of an account (inside a transaction).

        The address is kept under its key (see ``addresses.key_of``), the form leads
        are keyed by, so every spelling of it is suppressed.

        Returns:
            Whether the address was not suppressed before (the first reason is kept).
        """
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO suppressions (account, email, reason, at) VALUES (?, ?, ?, ?)",
            (account, addresses.key_of(email), reason, stamp(at)),
        )
        return cursor.rowcount == 1

    def suppression(self, account: str, email: str) -> str | None:
        """Why an address (any spelling) is suppressed for an account, or ``None``."""
        row = self._db.execute(
            "SELECT reason FROM suppressions WHERE account = ? AND email = ?",
            (account, addresses.key_of(email)),
        ).fetchone()
        return None if row is None else str(row[0])

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
        day, window = stamp(day_start), stamp(window_start)
        sent = self._db.execute(
            "SELECT coalesce(sum(step = 1 AND intent_at >= :day), 0), "
            "coalesce(sum(step > 1 AND intent_at >= :day), 0), "
            "coalesce(sum(intent_at >= :window), 0) "
            "FROM sends INDEXED BY sends_by_credential WHERE campaign_id = :campaign "
            f"AND credential_id = :credential AND outcome IN {_COUNTED_SQL} "
            "AND intent_at >= :since",
            {
                "day": day,
                "window": window,
                "since": min(day, window),
                "campaign": key[0],
                "credential": key[1],
            },
        ).fetchone()
        (unknown,) = self._db.execute(
            "SELECT count(*) FROM sends INDEXED BY sends_unknown WHERE campaign_id = ? "
            "AND credential_id = ? AND outcome = 'unknown'",
            key,
        ).fetchone()
        # Addresses, not reports: several reports about one lead (repeated, or forged)
        # count once, so the rate never passes what the sends allow.
        bounced = self._db.execute(
            "SELECT count(DISTINCT CASE WHEN kind = 'hard' THEN lower(email) END), "
            "count(DISTINCT CASE WHEN kind = 'block' THEN lower(email) END), "
            "count(DISTINCT CASE WHEN kind = 'unconfirmed' THEN lower(email) END) "
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
            unknown=int(unknown),
            bounces_in_window=int(bounced[0]),
            blocks_in_window=int(bounced[1]),
            unconfirmed_in_window=int(bounced[2]),
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
            "SELECT intent_at FROM sends INDEXED BY sends_by_credential WHERE campaign_id = ? "
            f"AND credential_id = ? AND outcome IN {_COUNTED_SQL} ORDER BY intent_at LIMIT 1",
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
    ) -> None:
        """Remember a message read from the mailbox (see :meth:`has_message`)."""
        self._db.execute(
            "INSERT OR IGNORE INTO inbox_messages (campaign_id, credential_id, key, folder, uid, "
            "at, kind, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (campaign_id, credential_id, key, folder, uid, stamp(at), kind, email),
        )

    def has_message(self, campaign_id: str, credential_id: str, key: str) -> bool:
        """Tell whether a message read from the mailbox was recorded already."""
        row = self._db.execute(
            "SELECT 1 FROM inbox_messages WHERE campaign_id = ? AND credential_id = ? AND key = ?",
            (campaign_id, credential_id, key),
        ).fetchone()
        return row is not None

    def send_by_message_id(
        self,
        message_ids: Iterable[str],
        *,
        senders: Iterable[tuple[str, str]],
        email: str | None = None,
    ) -> tuple[int, str, str, str] | None:
        """The last send (id, campaign, credential, address) that had one of ``message_ids``.

        Args:
            message_ids: The Message-IDs a message refers to.
            senders: The ``(campaign, credential)`` pairs whose sends may match: a
                message read from one mailbox speaks only of the sends made from it.
            email: Only a send to this address, in any spelling (see ``key_of``).
        """
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        row = self._db.execute(
            "SELECT id, campaign_id, credential_id, email FROM sends WHERE message_id IN "
            "(SELECT value FROM json_each(:ids)) AND (:email IS NULL OR email = :email) "
            "AND EXISTS (SELECT 1 FROM json_each(:senders) WHERE "
            "json_extract(value, '$[0]') = campaign_id "
            "AND json_extract(value, '$[1]') = credential_id) ORDER BY id DESC LIMIT 1",
            {
                "ids": json.dumps(ids),
                "email": addresses.key_of(email) if email is not None else None,
                "senders": json.dumps([list(pair) for pair in senders]),
            },
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def last_send_to(
        self, campaign_id: str, credential_id: str, email: str
    ) -> tuple[int, str, str, str] | None:
        """The last send of a credential to ``email``, in any spelling (see ``key_of``)."""
        row = self._db.execute(
            "SELECT id, campaign_id, credential_id, email FROM sends WHERE email = ? "
            "AND credential_id = ? AND campaign_id = ? ORDER BY id DESC LIMIT 1",
            (addresses.key_of(email), credential_id, campaign_id),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def add_reply(
        self,
        campaign_id: str,
        credential_id: str | None,
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

    def totals(self) -> Totals:
        """Running totals of sends, bounces, replies, suppressions, opens and clicks.

        One read transaction, so the totals agree with each other.
        """
        found: dict[str, dict[tuple[str, ...], int]] = {}
        with self._read_snapshot():
            for name, (columns, total, table) in _TOTALS.items():
                rows = self._db.execute(
                    f"SELECT {columns}, {total} FROM {table} GROUP BY {columns}"
                ).fetchall()
                found[name] = {
                    tuple(str(value or "") for value in row[:-1]): int(row[-1]) for row in rows
                }
        return Totals(**found)

    @contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    # Tracking ---------------------------------------------------------------------------

    def record_open(self, campaign_id: str, email: str, at: datetime) -> None:
        """Count an open of a lead's message, keeping the first time (inside a transaction)."""
        self._db.execute(
            "INSERT INTO opens (campaign_id, email, first_at, last_at, count) "
            "VALUES (?, ?, ?, ?, 1) ON CONFLICT (campaign_id, email) DO UPDATE SET "
            "count = count + 1, first_at = min(first_at, excluded.first_at), "
            "last_at = max(last_at, excluded.last_at)",
            (campaign_id, email, stamp(at), stamp(at)),
        )

    def record_click(self, campaign_id: str, email: str, url: str, at: datetime) -> None:
        """Count a click on one link of a lead's message (inside a transaction)."""
        self._db.execute(
            "INSERT INTO clicks (campaign_id, email, url, first_at, last_at, count) "
            "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (campaign_id, email, url) DO UPDATE SET "
            "count = count + 1, first_at = min(first_at, excluded.first_at), "
            "last_at = max(last_at, excluded.last_at)",
            (campaign_id, email, url, stamp(at), stamp(at)),
        )

    def opens(self, campaign_id: str, email: str) -> Tracked | None:
        """A lead's opens, or ``None`` if none was seen."""
        row = self._db.execute(
            "SELECT first_at, last_at, count FROM opens WHERE campaign_id = ? AND email = ?",
            (campaign_id, email),
        ).fetchone()
        return None if row is None else Tracked(unstamp(row[0]), unstamp(row[1]), int(row[2]))

    def tracking_totals(self, campaign_id: str) -> dict[str, int]:
        """A campaign's opens and clicks: leads that opened and clicked, and how often."""
        opened, opens = self._db.execute(
            "SELECT count(*), coalesce(sum(count), 0) FROM opens WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        clicked, clicks = self._db.execute(
            "SELECT count(DISTINCT email), coalesce(sum(count), 0) FROM clicks "
            "WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        return {
            "leads_opened": int(opened),
            "opens": int(opens),
            "leads_clicked": int(clicked),
            "clicks": int(clicks),
        }

    def clicks(self, campaign_id: str, email: str) -> dict[str, Tracked]:
        """A lead's clicks, by link."""
        rows = self._db.execute(
            "SELECT url, first_at, last_at, count FROM clicks WHERE campaign_id = ? AND email = ? "
            "ORDER BY url",
            (campaign_id, email),
        )
        return {str(row[0]): Tracked(unstamp(row[1]), unstamp(row[2]), int(row[3])) for row in rows}

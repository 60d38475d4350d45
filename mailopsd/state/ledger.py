"""The ledger: every lead's progress, every send, reply and bounce, IMAP cursors, opens, clicks.

SQLite in WAL mode (readers such as ``mailopsd status`` never block the daemon), with
``synchronous=FULL`` so a recorded send intent survives a crash; or PostgreSQL, for
several daemons on one ledger (see :meth:`Ledger.connect`). A :class:`Ledger` owns
one connection: it opens, migrates and closes it, runs transactions on it, and exposes
the repositories that read and write each part of the ledger, all on that connection
(``ledger.sends.record_intents(...)``, ``ledger.leads.due_followups(...)``).

The daemon's main thread does most of the writing through one connection; the HTTP
server's threads open connections of their own, one per thread, for short
transactions (a one-click unsubscribe, an open, a click), waiting on SQLite's busy
timeout while the main thread holds the write lock.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from mailopsd.state import place
from mailopsd.state.campaigns import Campaigns
from mailopsd.state.daemons import Daemons
from mailopsd.state.db import Database
from mailopsd.state.engine import (
    ENGINE_ERRORS,
    POSTGRESQL,
    SQLITE,
    Connection,
    Dialect,
    LeasingConnection,
)
from mailopsd.state.errors import (
    StorageError,
    StorageMissingError,
    StorageReadOnlyError,
    StorageTooNewError,
    storage_error,
)
from mailopsd.state.imports import LeadImports
from mailopsd.state.inbox import InboxRecords
from mailopsd.state.leads import Leads
from mailopsd.state.lists import SuppressionLists
from mailopsd.state.mailboxstates import MailboxStates
from mailopsd.state.place import LEDGER_FILE
from mailopsd.state.schema import (
    DAEMONS_SCHEMA,
    SCHEMA_VERSION,
    check_version,
    migrate,
    schema_version,
)
from mailopsd.state.sends import Sends
from mailopsd.state.statefile import format_time
from mailopsd.state.stats import StepStats
from mailopsd.state.suppression import Suppressions
from mailopsd.state.totals import RunningTotals
from mailopsd.state.tracking import Tracking

__all__ = ["LEDGER_FILE", "Ledger"]

# Every table a copy takes, in no particular order (no table refers to another), but the
# counters, which the copy's triggers make again from its sends, and the daemons' rows
# (a copy has none working on it).
_COPIED_TABLES = (
    "campaigns",
    "credentials",
    "leads",
    "lead_problems",
    "sends",
    "bounces",
    "replies",
    "imap_cursors",
    "inbox_messages",
    "suppressions",
    "suppression_lists",
    "listed_addresses",
    "listed_domains",
    "opens",
    "clicks",
)


def _read_only_fs(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


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
    """The ledger database: one instance per connection, used from one thread.

    Attributes:
        path: The ledger's file.
        campaigns: Campaign and credential records.
        imports: Leads files staged, compared and applied.
        leads: Each lead's progress.
        sends: Intents, outcomes, bounces and the counts limits are checked against.
        inbox: IMAP cursors, messages read, replies.
        suppressions: Suppressed addresses.
        suppression_lists: The addresses and domains of the config's suppression lists.
        tracking: Opens and clicks.
        totals: Running totals of the whole ledger.
        daemons: The daemons that work on the ledger or stand by for it.
        mailbox_states: Each mailbox's state, as the working daemon last wrote it.
    """

    def __init__(
        self, connection: Connection, path: Path, dialect: Dialect = SQLITE, name: str = ""
    ) -> None:
        """Wrap an open connection (use :meth:`open`, :meth:`open_readonly` or :meth:`connect`)."""
        self._database = database = Database(connection, path, dialect, name)
        self.path = path
        self.dialect = dialect
        self.name = database.name
        self.campaigns = Campaigns(database)
        self.imports = LeadImports(database)
        self.leads = Leads(database)
        self.sends = Sends(database)
        self.inbox = InboxRecords(database)
        self.suppressions = Suppressions(database)
        self.suppression_lists = SuppressionLists(database)
        self.tracking = Tracking(database)
        self.totals = RunningTotals(database)
        self.stats = StepStats(database)
        self.daemons = Daemons(database)
        self.mailbox_states = MailboxStates(database)

    @classmethod
    def scratch(cls) -> Ledger:
        """An empty ledger in a private temporary file, deleted on close.

        A plan made before any ledger exists stages its leads files here.

        Raises:
            StorageError: The temporary file cannot be created.
        """
        try:
            connection = sqlite3.connect("", isolation_level=None)
            ledger = cls(connection, Path())
            migrate(ledger._database)
        except sqlite3.Error as err:
            raise storage_error(err) from err
        return ledger

    def copy_into(self, directory: Path) -> None:
        """Write a consistent copy of this ledger into ``directory``, as a SQLite ledger.

        The copy is what a private reader may change freely (a forecast sends into it);
        this ledger is only read. SQLite's is copied by its backup; PostgreSQL's row by
        row from one snapshot, its counters made again by the copy's triggers.

        Raises:
            StorageError: The copy could not be written.
        """
        source = self._database.connection
        if not isinstance(source, sqlite3.Connection):
            self._copy_rows_into(directory)
            return
        path = directory / LEDGER_FILE
        try:
            _create_private(path)
            target = sqlite3.connect(path)
            try:
                source.backup(target)
            finally:
                target.close()
        except OSError as err:
            raise _unusable(path, err) from err
        except sqlite3.Error as err:
            raise storage_error(err) from err

    def _copy_rows_into(self, directory: Path) -> None:
        """Copy every row but the counters' into a new SQLite ledger in ``directory``."""
        target = Ledger.open(directory)
        into = target._database.connection
        try:
            with self._database.read_snapshot(), target.transaction():
                for table in _COPIED_TABLES:
                    columns = ", ".join(
                        str(row[1]) for row in into.execute(f"PRAGMA table_info({table})")
                    )
                    rows = self._database.connection.execute(
                        f"SELECT {columns} FROM {table}"  # noqa: S608 - the schema's names
                    )
                    marks = ", ".join("?" * len(columns.split(", ")))
                    into.executemany(
                        f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
                        rows,
                    )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        finally:
            target.close()

    @classmethod
    def open(cls, directory: Path, *, any_thread: bool = False, leases: bool = False) -> Ledger:
        """Open (creating and migrating as needed) the ledger in ``directory``.

        Args:
            directory: The state directory (whose ``ledger.url`` may name a PostgreSQL
                ledger: see :mod:`mailopsd.state.place`).
            any_thread: Let another thread than the opening one use (or close) the
                connection; the caller makes sure one thread at a time does.
            leases: The daemon's own ledger: on PostgreSQL, the connection holds the
                leases of the campaigns it works on (see :meth:`connect`); SQLite's
                daemon works on every campaign.

        Raises:
            StorageError: The file cannot be opened or is not a ledger (a subclass says
                why).
            StorageTooNewError: The ledger is newer than this mailopsd.
        """
        address = place.pointed(directory)
        if address is not None:
            return cls.connect(address, leases=leases)
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
            migrate(ledger._database)
        except (OSError, sqlite3.DatabaseError) as err:
            raise _unusable(path, err) from err
        except StorageTooNewError:
            raise
        except StorageError as err:  # a migration's write, translated by its transaction
            cause = err.__cause__
            if not isinstance(cause, OSError | sqlite3.DatabaseError):
                raise
            raise _unusable(path, cause) from cause
        return ledger

    @classmethod
    def connect(
        cls, dsn: str, shown: str | None = None, *, create: bool = True, leases: bool = False
    ) -> Ledger:
        """Open (creating and migrating as needed) the PostgreSQL ledger at ``dsn``.

        Args:
            dsn: A ``postgresql://`` URL (or ``key=value`` string), password included.
            shown: How messages name the ledger; by default ``dsn`` without its password.
            create: Create and migrate its tables if needed; else a ledger of an older
                schema is read as it is, and one with no tables raises
                :class:`StorageMissingError`.
            leases: The daemon's connection, which holds the leases of the campaigns it
                works on (see :meth:`take_leases`).

        Raises:
            StorageError: The server cannot be reached or refused (a subclass says why).
            StorageTooNewError: The ledger is newer than this mailopsd.
        """
        # psycopg is imported only by a daemon whose ledger is PostgreSQL's.
        from mailopsd.state import postgres

        name = shown if shown is not None else postgres.shown(dsn)
        try:
            connection = postgres.connect(dsn, name, leases=leases)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        ledger = cls(connection, Path(), POSTGRESQL, name)
        try:
            if create:
                migrate(ledger._database)
            else:
                check_version(ledger._database)
        except BaseException:
            connection.close()
            raise
        return ledger

    @classmethod
    def open_readonly(cls, directory: Path) -> Ledger | None:
        """Open the ledger for reading only (``None`` if there is none yet).

        Raises:
            StorageError: The file cannot be read or is not a ledger (a subclass says why).
            StorageTooNewError: The ledger is newer than this mailopsd.
        """
        address = place.pointed(directory)
        if address is not None:
            try:
                return cls.connect(address, create=False)
            except StorageMissingError:
                return None
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
            version = schema_version(connection)
        except sqlite3.DatabaseError as err:
            raise storage_error(err, f"ledger {path} cannot be read: {err}") from err
        if version > SCHEMA_VERSION:
            raise StorageTooNewError(
                f"ledger {path} has schema {version}, newer than this mailopsd"
            )
        return cls(connection, path)

    def describe(self) -> dict[str, object]:
        """Which ledger this is, for status: its engine, address, and who works on it.

        On PostgreSQL, ``daemons`` is each daemon's row (see :mod:`.daemons`), with how
        old its heartbeat is by this machine's clock, and ``leases`` how many campaign
        leases the sessions of the ledger hold now.

        Raises:
            StorageError: The question could not be asked.
        """
        if self.dialect is SQLITE:
            return {"engine": "sqlite", "address": str(self.path)}
        from mailopsd.state import postgres  # as in connect

        connection = self._database.connection
        assert isinstance(connection, postgres.PostgresConnection)  # noqa: S101 - its dialect
        try:
            leases = len(connection.leases_taken())
            with_rows = schema_version(connection, postgresql=True) >= DAEMONS_SCHEMA
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        now = datetime.now(UTC)
        daemons = [
            {
                **asdict(row),
                "holds": list(row.holds),
                "started_at": format_time(row.started_at),
                "heartbeat_at": format_time(row.heartbeat_at),
                "heartbeat_age_s": round((now - row.heartbeat_at).total_seconds(), 1),
            }
            for row in (self.daemons.all() if with_rows else [])
        ]
        return {
            "engine": "postgresql",
            "address": self.name,
            "leases": leases,
            "daemons": daemons,
        }

    @property
    def sessions(self) -> int:
        """How many sessions the connection has had (SQLite's: one).

        One more each time PostgreSQL's was lost and taken again: another daemon may have
        worked on the ledger meanwhile.
        """
        return int(getattr(self._database.connection, "sessions", 1))

    def take_leases(self, keys: Iterable[int]) -> frozenset[int] | None:
        """Take the free leases of ``keys``; the keys held now (None: SQLite, all are).

        See :meth:`PostgresConnection.take_leases`.

        Raises:
            StorageError: The server could not be asked.
        """
        connection = self._database.connection
        if isinstance(connection, sqlite3.Connection):
            return None
        try:
            return cast(LeasingConnection, connection).take_leases(keys)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def fingerprint_key(self, *, create: bool = True) -> bytes | None:
        """The shared ledger's HMAC key for secret fingerprints (SQLite's: None).

        The daemons of a shared ledger compare credentials by the fingerprints the ledger
        holds (:mod:`mailopsd.state.observe`): they must make them with one key, or each
        would find every password changed by the others. The first daemon to ask makes
        it; whoever can read the database can then test a guessed password against its
        fingerprint, as they can read every lead and send the ledger holds. Without
        ``create``, a ledger without one gives a throwaway key (a read-only plan).

        Raises:
            StorageError: The key could not be read or written.
        """
        if self.dialect is SQLITE:
            return None
        db = self._database.connection
        try:
            if create:
                with self._database.transaction():
                    db.execute(
                        "INSERT INTO ledger_keys (name, value) VALUES ('fingerprint', ?) "
                        "ON CONFLICT (name) DO NOTHING",
                        (os.urandom(32).hex(),),
                    )
            row = db.execute("SELECT value FROM ledger_keys WHERE name = 'fingerprint'").fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return bytes.fromhex(str(row[0])) if row else os.urandom(32)

    def leases_taken(self) -> frozenset[int]:
        """The keys of the leases any session holds now (SQLite: none).

        Raises:
            StorageError: The server could not be asked.
        """
        connection = self._database.connection
        if isinstance(connection, sqlite3.Connection):
            return frozenset()
        try:
            return cast(LeasingConnection, connection).leases_taken()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def let_go(self, keys: Iterable[int]) -> None:
        """Give back the leases of ``keys`` (nothing on SQLite).

        Raises:
            StorageError: The server could not be told (the leases go with the session).
        """
        connection = self._database.connection
        if isinstance(connection, sqlite3.Connection):
            return
        try:
            cast(LeasingConnection, connection).let_go(keys)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    @contextmanager
    def applying(self, waiting: Callable[[], None]) -> Iterator[None]:
        """Run the block while no other daemon applies a config to this ledger.

        On PostgreSQL, the block holds the ledger's apply lock (see
        :data:`postgres.APPLY_LOCK`); ``waiting`` is called every tenth of a second
        while another daemon holds it. SQLite's daemon is alone.

        Raises:
            StorageError: The server could not be asked.
        """
        connection = self._database.connection
        if isinstance(connection, sqlite3.Connection):
            yield
            return
        from mailopsd.state import postgres  # as in connect

        leasing = cast(LeasingConnection, connection)
        try:
            while not leasing.try_lock(postgres.APPLY_LOCK):
                waiting()
                time.sleep(0.1)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        try:
            yield
        finally:
            leasing.unlock(postgres.APPLY_LOCK)

    def close(self) -> None:
        """Close the database (PostgreSQL's connection goes back to its pool)."""
        try:
            self._database.connection.close()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def check_readable(self) -> None:
        """Read the schema, as every query does first.

        Raises:
            StorageError: The database cannot be read (lost files, I/O errors).
        """
        table = "sqlite_master" if self.dialect is SQLITE else "pg_class"
        try:
            self._database.connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def transaction(self, fence: int | None = None) -> AbstractContextManager[None]:
        """Run the block in one transaction (all or nothing), on session ``fence`` if given.

        Raises:
            StorageLeasesLostError: It began on another session than ``fence``.
            StorageError: The transaction could not begin or commit (it was rolled back).
        """
        return self._database.transaction(fence)

    def probe_write(self) -> None:
        """Write one page and commit it, to tell whether the ledger takes writes now.

        Raises:
            StorageError: It does not (disk full, read-only, I/O error).
        """
        db = self._database.connection
        with self._database.transaction():
            if self.dialect is not SQLITE:
                db.execute("UPDATE ledger_schema SET version = version")
                return
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {int(version)}")

    def integrity_ok(self) -> bool:
        """Tell whether SQLite's integrity check passes (PostgreSQL checks its own pages).

        Raises:
            StorageError: The check could not run.
        """
        if self.dialect is not SQLITE:
            return True
        try:
            row = self._database.connection.execute("PRAGMA integrity_check").fetchone()
        except sqlite3.Error as err:
            raise storage_error(err) from err
        return bool(row[0] == "ok")


def _unusable(path: Path, err: OSError | sqlite3.DatabaseError) -> StorageError:
    """The error of a ledger that cannot be opened, saying why."""
    # SQLite says only "unable to open database file" where the file exists on a
    # read-only file system; say why.
    if not isinstance(err, OSError) and _read_only_fs(path.parent):
        cause = f"{err} ({os.strerror(errno.EROFS)})"
        return StorageReadOnlyError(f"ledger {path} cannot be used: {cause}")
    return storage_error(err, f"ledger {path} cannot be used: {err}")

"""The ledger's connection and what its repositories share on it.

One :class:`Database` per connection (SQLite's, or PostgreSQL's: see
:mod:`mailopsd.state.engine`): the transactions (all or nothing), the read
snapshots (several reads that agree with each other), the work on temporary tables,
and the caches every repository of the connection must see alike (the active
credentials' snapshots, which a rolled-back transaction forgets). Each repository is a
:class:`Repository` holding it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import cast

from mailopsd.state.engine import (
    ENGINE_ERRORS,
    SQLITE,
    Connection,
    Dialect,
    ReturningConnection,
)
from mailopsd.state.errors import StorageLeasesLostError, storage_error

__all__ = ["Database", "Repository"]


class Database:
    """One connection to the ledger, used from one thread, and its shared caches."""

    def __init__(
        self, connection: Connection, path: Path, dialect: Dialect = SQLITE, name: str = ""
    ) -> None:
        """Share ``connection`` between repositories.

        Args:
            connection: The connection, of the engine ``dialect`` says.
            path: The ledger's file (SQLite), or an empty path.
            dialect: The engine's differences.
            name: How messages name the ledger (by default its path).
        """
        self.connection = connection
        self.path = path
        self.dialect = dialect
        self.name = name or str(path)
        # Only the main thread's instance writes credentials: active credentials'
        # snapshots are kept in memory after the first read, and updated as they are written.
        self.credentials: dict[tuple[str, str], Mapping[str, object]] | None = None

    @contextmanager
    def transaction(self, fence: int | None = None) -> Iterator[None]:
        """Run the block in one transaction (all or nothing).

        Args:
            fence: The session the block must run on (a shared ledger's session that
                holds the leases of what it writes; see :mod:`mailopsd.daemon.leases`).

        Raises:
            StorageLeasesLostError: The transaction began on another session than
                ``fence`` (it was rolled back, nothing written).
            StorageError: The transaction could not begin or commit (it was rolled back).
        """
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        sessions = getattr(self.connection, "sessions", 1)
        if fence is not None and sessions != fence:
            with suppress(*ENGINE_ERRORS):
                self.connection.execute("ROLLBACK")
            raise StorageLeasesLostError(
                f"ledger {self.name}: the session that held this daemon's leases was lost "
                "(the campaigns went with it); nothing of theirs was written"
            )
        try:
            yield
            self.connection.execute("COMMIT")
        except BaseException as err:
            # A failed COMMIT (disk full, I/O error) may already have rolled back; the
            # ROLLBACK then fails, and the first error is the one that counts.
            with suppress(*ENGINE_ERRORS):
                self.connection.execute("ROLLBACK")
            self.credentials = None
            if isinstance(err, ENGINE_ERRORS):
                raise storage_error(err) from err
            raise

    def insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> list[int]:
        """Run an ``INSERT`` of one row for each of ``rows``; their new ids, in order.

        SQLite's, one statement each, costs nothing more; PostgreSQL's go out in one
        round trip, each returning its id.
        """
        connection = self.connection
        if isinstance(connection, sqlite3.Connection):
            return [int(connection.execute(sql, row).lastrowid or 0) for row in rows]
        return cast(ReturningConnection, connection).insert_returning(f"{sql} RETURNING id", rows)

    @contextmanager
    def temporary_work(self) -> Iterator[None]:
        """One transaction for writes to temporary tables (none if one is open already)."""
        if self.connection.in_transaction:
            yield
            return
        self.connection.execute("BEGIN")
        try:
            yield
            self.connection.execute("COMMIT")
        except BaseException:
            with suppress(*ENGINE_ERRORS):  # a failed COMMIT may have rolled back already
                self.connection.execute("ROLLBACK")
            raise

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Several reads in one read transaction (none if one is open already)."""
        if self.connection.in_transaction:
            yield
            return
        self.connection.execute(self.dialect.begin_snapshot)
        try:
            yield
        finally:
            self.connection.execute("COMMIT")


class Repository:
    """The reads and writes of one part of the ledger, on the connection it shares.

    Every public method translates the engine's errors into storage errors (see
    :mod:`mailopsd.state.errors`) around its whole body: nothing per row, nothing when
    nothing fails. An ``OSError`` passes as it is: neither engine raises one, so it comes
    from an iterable the caller gave (a leads file being read), and is the caller's.
    """

    def __init__(self, database: Database) -> None:
        """Work on ``database``'s connection."""
        self._database = database
        self._db = database.connection

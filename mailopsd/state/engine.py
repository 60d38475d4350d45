"""The ledger's two engines, SQLite and PostgreSQL: what the repositories see of either.

The repositories write one set of queries, in SQLite's spelling (``?`` and ``:name``
parameters), for both engines. A :class:`Connection` runs them: SQLite's own, or the
PostgreSQL connection of :mod:`mailopsd.state.postgres`, which rewrites the few
spellings PostgreSQL writes otherwise (one table, there). What a rewrite cannot carry,
a query takes from its connection's :class:`Dialect`: this module holds both.

Errors of either engine reach the repositories as :data:`ENGINE_ERRORS`, which
:func:`mailopsd.state.errors.storage_error` translates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ENGINE_ERRORS",
    "POSTGRESQL",
    "SQLITE",
    "Connection",
    "Cursor",
    "Dialect",
    "EngineError",
    "LeasingConnection",
    "ReturningConnection",
]


class EngineError(Exception):
    """An error PostgreSQL (or its driver) raised, with its SQLSTATE code.

    The driver's own exception stays as ``__cause__``.
    """

    def __init__(self, message: str, sqlstate: str | None) -> None:
        """Say ``message``; ``sqlstate`` is the server's five-character code, if any."""
        super().__init__(message)
        self.sqlstate = sqlstate


ENGINE_ERRORS: tuple[type[sqlite3.Error], type[EngineError]] = (sqlite3.Error, EngineError)
"""What a query of either engine raises when the ledger fails it."""


class Cursor(Protocol):
    """The rows of one statement, as both engines give them."""

    @property
    def rowcount(self) -> int:
        """The rows the statement changed."""
        ...

    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        ...

    def fetchall(self) -> list[Any]:
        """Every row left."""
        ...

    def fetchmany(self, size: int) -> list[Any]:
        """Up to ``size`` rows more."""
        ...

    def __iter__(self) -> Iterator[Any]:
        """Each row left."""
        ...


class Connection(Protocol):
    """One connection to a ledger, as the repositories use it (SQLite's own interface)."""

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor:
        """Run one statement."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        """Run one statement for each set of parameters."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class ReturningConnection(Connection, Protocol):
    """A connection that runs one ``INSERT ... RETURNING id`` for many rows (PostgreSQL's)."""

    def insert_returning(self, sql: str, rows: Sequence[Any], /) -> list[int]:
        """Run ``sql`` for each row; the ids it returned, in the rows' order."""
        ...


class LeasingConnection(Connection, Protocol):
    """A connection whose session holds leases and advisory locks (PostgreSQL's)."""

    sessions: int

    def leases_taken(self) -> frozenset[int]:
        """The keys of the leases any session holds."""
        ...

    def take_leases(self, keys: Iterable[int], /) -> frozenset[int]:
        """Take the free leases of ``keys``; the keys the session holds now."""
        ...

    def let_go(self, keys: Iterable[int], /) -> None:
        """Give back the leases of ``keys``."""
        ...

    def try_lock(self, lock: tuple[int, int], /) -> bool:
        """Take the advisory lock ``lock`` if free; tell whether it was."""
        ...

    def unlock(self, lock: tuple[int, int], /) -> None:
        """Let the advisory lock ``lock`` go."""
        ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines beyond what a rewrite carries.

    Attributes:
        name: ``sqlite`` or ``postgresql``.
        begin_snapshot: Starts a transaction whose reads all see the ledger as it was
            when the first ran (SQLite's transactions do; PostgreSQL's default ones see
            each statement's own moment).
        json_values: The values of a JSON array of text given as one parameter (``{}``),
            as a one-column table named ``value``.
        json_item: Item ``{1}`` (a number) of the JSON array ``{0}``, as text.
        json_key: The value under key ``{1}`` (text, SQL) of the JSON object ``{0}``.
    """

    name: str
    begin_snapshot: str
    json_values: str
    json_item: str
    json_key: str


SQLITE = Dialect(
    name="sqlite",
    begin_snapshot="BEGIN",
    json_values="SELECT value FROM json_each({})",
    json_item="json_extract({0}, '$[{1}]')",
    json_key="json_extract({0}, '$.\"' || {1} || '\"')",
)
POSTGRESQL = Dialect(
    name="postgresql",
    begin_snapshot="BEGIN ISOLATION LEVEL REPEATABLE READ",
    json_values="SELECT value FROM json_array_elements_text(CAST({} AS json)) AS value",
    json_item="(CAST({0} AS json) ->> {1})",
    json_key="(CAST({0} AS json) ->> CAST({1} AS text))",
)

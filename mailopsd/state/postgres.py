"""The ledger on PostgreSQL: connections from a pool, speaking the repositories' SQL.

The repositories write SQLite's spelling (see :mod:`mailopsd.state.engine`). A
:class:`PostgresConnection` rewrites each statement once (the rewrites are the table
:data:`_REWRITES`, every difference of spelling between the engines in one place) and
runs it through psycopg with the values bound on the client side, as SQLite's values
are: a ``NULL`` or a number stands where the query has it, whatever its context, with
no type for PostgreSQL to infer from a parameter. psycopg's errors become
:class:`~mailopsd.state.engine.EngineError` with the server's SQLSTATE.

The connections of one process to one ledger come from one pool
(:class:`psycopg_pool.ConnectionPool`): the daemon's thread and each HTTP thread hold
one while their ledger is open, and give it back when it closes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import conninfo_to_dict

from mailopsd.state.engine import EngineError

__all__ = ["PostgresConnection", "close_pools", "connect", "shown", "translate"]

# What SQLite spells otherwise than PostgreSQL, outside quoted text, and why each
# rewrite keeps the meaning (order matters: ``OR IGNORE`` is found before the rest).
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    # SQLite's write lock is taken at BEGIN IMMEDIATE; PostgreSQL locks rows as it writes.
    (re.compile(r"\bBEGIN IMMEDIATE\b"), "BEGIN"),
    # A failed statement rolls the whole transaction back, as one of PostgreSQL always
    # aborts it (and every caller rolls back on an error).
    (re.compile(r"\b(INSERT|UPDATE) OR ROLLBACK\b"), r"\1"),
    # Index hints: PostgreSQL's planner takes none.
    (re.compile(r" INDEXED BY \w+"), ""),
    # SQLite's table option; PostgreSQL's tables have no rowid to leave out.
    (re.compile(r" WITHOUT ROWID\b"), ""),
    # Schemas: SQLite's temporary and main ones are PostgreSQL's pg_temp and the default.
    (re.compile(r"\btemp\."), "pg_temp."),
    (re.compile(r"\bmain\."), ""),
    # SQLite's CROSS JOIN ... ON is an inner join whose order the planner keeps.
    (re.compile(r"\bCROSS JOIN\b"), "JOIN"),
    # Text is compared byte by byte, as SQLite does, whatever the database's locale.
    (re.compile(r"\bTEXT\b(?= NOT NULL| PRIMARY KEY|,|\)| DEFAULT)"), 'TEXT COLLATE "C"'),
    # Parameters: ``?`` in order, ``:name`` by name (``::`` is PostgreSQL's cast).
    (re.compile(r"\?"), "%s"),
    (re.compile(r"(?<![:\w]):([A-Za-z_]\w*)"), r"%(\1)s"),
)
_IGNORE = re.compile(r"^\s*INSERT OR IGNORE\b")
_QUOTED = re.compile(r"('(?:[^']|'')*')")


@lru_cache(maxsize=4096)
def translate(sql: str, *, bound: bool = True) -> str:
    """``sql`` as PostgreSQL and psycopg read it.

    ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``; quoted text is
    kept as it is, its ``%`` doubled if values are ``bound`` (psycopg then reads the
    whole statement; without values it sends the statement as it is).
    """
    ignore = _IGNORE.match(sql) is not None
    if ignore:
        sql = _IGNORE.sub("INSERT", sql, count=1)
    parts = _QUOTED.split(sql.replace("%", "%%") if bound else sql)
    for index in range(0, len(parts), 2):  # the parts outside quotes
        for pattern, replacement in _REWRITES:
            parts[index] = pattern.sub(replacement, parts[index])
    translated = "".join(parts)
    return f"{translated} ON CONFLICT DO NOTHING" if ignore else translated


class _BoolAsInteger(Dumper):
    """A Python ``bool`` as SQLite stores it: ``1`` or ``0`` in an integer column."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: Any) -> bytes:
        return self.dump(obj)


class _NumericAsNumber(Loader):
    """A ``numeric`` (what ``sum`` of integers gives) as SQLite gives it: int or float."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        return float(text) if b"." in text or b"e" in text.lower() else int(text)


def _configure(connection: psycopg.Connection[Any]) -> None:
    """Set up a new connection of the pool as every ledger connection is."""
    connection.adapters.register_dumper(bool, _BoolAsInteger)
    connection.adapters.register_loader("numeric", _NumericAsNumber)


def _engine_error(err: psycopg.Error) -> EngineError:
    return EngineError(str(err).strip() or type(err).__name__, err.sqlstate)


class _Rows:
    """A statement's rows (all fetched when it ran), as SQLite's cursor gives them."""

    def __init__(self, cursor: psycopg.ClientCursor[Any]) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def fetchmany(self, size: int) -> list[Any]:
        return self._cursor.fetchmany(size) if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _unreachable(dsn: str, shown: str, timeout: psycopg_pool.PoolTimeout) -> EngineError:
    """Why the pool had no connection to give (it only says it waited).

    The client library's own words if a connection made here fails too, else a full pool.
    """
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as err:
        cause = " ".join(str(err).split())
        return EngineError(f"ledger {shown} cannot be reached: {cause}", err.sqlstate or "08001")
    return EngineError(
        f"ledger {shown}: every connection of the pool is in use ({timeout})", "53300"
    )


class PostgresConnection:
    """One pooled connection, with SQLite's interface (see :mod:`mailopsd.state.engine`).

    In autocommit mode: a transaction is what the repositories' own ``BEGIN`` opens.
    """

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], dsn: str, dsn_shown: str) -> None:
        """Take a connection from ``pool`` of ``dsn`` (``dsn_shown``: said without secrets).

        Raises:
            EngineError: No connection could be had in the pool's timeout.
        """
        self._pool = pool
        self.shown = dsn_shown
        try:
            self._connection: psycopg.Connection[Any] | None = pool.getconn()
        except psycopg_pool.PoolTimeout as err:
            raise _unreachable(dsn, dsn_shown, err) from err
        except psycopg.Error as err:
            raise EngineError(f"ledger {dsn_shown} cannot be reached: {err}", err.sqlstate) from err

    def _live(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            raise EngineError(f"ledger {self.shown}: the connection is closed", "08003")
        return self._connection

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (or failed and not rolled back yet)."""
        status = self._live().info.transaction_status
        return status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Any = (), /) -> _Rows:
        """Run one statement; raise :class:`EngineError` if it fails."""
        try:
            cursor = psycopg.ClientCursor(self._live())
            if parameters:
                cursor.execute(translate(sql), parameters)
            else:
                cursor.execute(translate(sql, bound=False))
        except psycopg.Error as err:
            raise _engine_error(err) from err
        return _Rows(cursor)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Rows:
        """Run one statement for each set of parameters."""
        rows = list(parameters)
        try:
            cursor = psycopg.ClientCursor(self._live())
            if len(rows) > 0:
                cursor.executemany(translate(sql), rows)
        except psycopg.Error as err:
            raise _engine_error(err) from err
        return _Rows(cursor)

    def close(self) -> None:
        """Give the connection back to the pool (rolled back if a transaction was left)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.putconn(connection)


# The pools of this process by address; a child process forked with them makes its own
# (a connection's socket is never shared between processes).
_POOLS: dict[tuple[int, str], psycopg_pool.ConnectionPool[Any]] = {}
_POOLS_LOCK = threading.Lock()


def _pool(dsn: str, *, size: int) -> psycopg_pool.ConnectionPool[Any]:
    """The process's pool of connections to ``dsn`` (opened on first use)."""
    key = (os.getpid(), dsn)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = psycopg_pool.ConnectionPool(
                dsn,
                min_size=0,  # none opened ahead: an unreachable server costs nothing idle
                max_size=size,
                kwargs={"autocommit": True},
                configure=_configure,
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=3,  # then the cause is asked for: see _unreachable
                open=False,
                name="ledger",
            )
            pool.open(wait=False)
            _POOLS[key] = pool
        return pool


def shown(dsn: str) -> str:
    """How messages name the ledger at ``dsn``: its user, host, port and database, no password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable address)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def connect(dsn: str, shown: str, *, pool_size: int = 16) -> PostgresConnection:
    """A connection to the ledger at ``dsn``, from this process's pool for it.

    Args:
        dsn: A ``postgresql://`` URL or ``key=value`` string, password included.
        shown: How messages name the ledger (``dsn`` without its password).
        pool_size: The most connections the pool opens.

    Raises:
        EngineError: No connection could be had.
    """
    return PostgresConnection(_pool(dsn, size=pool_size), dsn, shown)


def close_pools() -> None:
    """Close every pool of this process (their connections too)."""
    with _POOLS_LOCK:
        pools = [pool for (pid, _), pool in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.close()

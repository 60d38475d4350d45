"""The ledger on PostgreSQL: connections from a pool, speaking the repositories' SQL.

The repositories write SQLite's spelling (see :mod:`mailopsd.state.engine`). A
:class:`PostgresConnection` rewrites each statement once (the rewrites are the table
:data:`_REWRITES`, every difference of spelling between the engines in one place) and
runs it through psycopg with the values bound on the client side, as SQLite's values
are: a ``NULL`` or a number stands where the query has it, whatever its context, with
no type for PostgreSQL to infer from a parameter. A statement run for many rows
(:meth:`PostgresConnection.executemany`: the inserts and updates of a batch, whose every
value goes into a column that gives it its type) is bound on the server instead, so
that it is parsed and planned once for the batch, and all its rows go in one pipeline.
psycopg's errors become :class:`~mailopsd.state.engine.EngineError` with the server's
SQLSTATE.

The connections of one process to one ledger come from one pool
(:class:`psycopg_pool.ConnectionPool`): the daemon's thread and each HTTP thread hold
one while their ledger is open, and give it back when it closes.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import conninfo_to_dict

from mailopsd.state.engine import EngineError

__all__ = [
    "APPLY_LOCK",
    "LEASES",
    "PostgresConnection",
    "close_pools",
    "connect",
    "shown",
    "translate",
]

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
LEASES = 0x6C656173
"""The first key of every lease's advisory lock ("leas"); the second is the campaign's."""
APPLY_LOCK = (0x6D61696C, 3)
"""The advisory lock (two keys: "mail", 3) a daemon holds while it applies a config."""
# The server notices a client cut off (and lets its leases go) after idle + interval x
# count seconds without an answer to its TCP keepalives; the client notices a server
# gone as fast. The default is hours.
_KEEPALIVE = {"idle": 4, "interval": 2, "count": 3}
_FIRST_WAIT_S = 0.5
# The server's answers that turn a client away for good, and their SQLSTATEs.
_TURNED_AWAY = (
    (re.compile(r"FATAL: password authentication failed"), "28P01"),
    (re.compile(r"FATAL: no pg_hba\.conf entry"), "28000"),
    (re.compile(r'FATAL: role ".*" (does not exist|is not permitted to log in)'), "28000"),
    (re.compile(r'FATAL: database ".*" does not exist'), "3D000"),
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

    def __init__(self, cursor: psycopg.Cursor[Any] | None) -> None:
        self._cursor = cursor if cursor is not None and cursor.description else None
        self.rowcount = -1 if cursor is None else cursor.rowcount

    def fetchone(self) -> Any:
        return None if self._cursor is None else self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return [] if self._cursor is None else self._cursor.fetchall()

    def fetchmany(self, size: int) -> list[Any]:
        return [] if self._cursor is None else self._cursor.fetchmany(size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _refused(dsn: str, shown: str) -> EngineError | None:
    """Why the server takes no connection, in the client library's own words.

    A server that answers and turns this client away (its password, user or database)
    is told apart from one that cannot be reached: that does not pass by waiting.
    ``None``: it takes one (made here, and closed at once).
    """
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as err:
        cause = " ".join(str(err).split())
        # libpq gives no SQLSTATE for a failed connection: the server's words say which.
        for words, sqlstate in _TURNED_AWAY:
            if words.search(cause):
                return EngineError(
                    f"ledger {shown} refused this client: {cause}; check the user, the "
                    "database and the password (the ledger file's ledger_password, the "
                    "address's passfile=, or ~/.pgpass)",
                    sqlstate,
                )
        return EngineError(f"ledger {shown} cannot be reached: {cause}", err.sqlstate or "08001")
    return None


class PostgresConnection:
    """One pooled connection, with SQLite's interface (see :mod:`mailopsd.state.engine`).

    In autocommit mode: a transaction is what the repositories' own ``BEGIN`` opens. A
    connection lost between transactions is replaced by another of the pool at the next
    statement; one lost inside a transaction fails every statement until the caller's
    ``ROLLBACK`` (the server has rolled it back), so no statement of a transaction ever
    runs outside it.

    With ``leases``, the connection is the daemon's: it holds the leases of the campaigns
    the daemon works on, each an advisory lock of its session (:meth:`take_leases`). The
    server lets them go with the session: when the daemon stops, dies, or (after the TCP
    keepalives of :func:`_pool` give up) is cut off from it. A new session holds none:
    :attr:`held` is emptied as :attr:`sessions` grows.
    """

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        dsn: str,
        dsn_shown: str,
        *,
        leases: bool = False,
    ) -> None:
        """Take a connection from ``pool`` of ``dsn`` (``dsn_shown``: said without secrets).

        Raises:
            EngineError: No connection could be had in the pool's timeout.
        """
        self._pool = pool
        self._dsn = dsn
        self.shown = dsn_shown
        self._leases = leases
        self._held: set[int] = set()
        self._connection: psycopg.Connection[Any] | None = None
        self._in_transaction = False
        self._lost = False  # inside a transaction, until its ROLLBACK
        self._closed = False
        self.sessions = 0
        """How many sessions this connection has had (one more each time it was lost)."""
        self._connection = self._take()

    def _take(self) -> psycopg.Connection[Any]:
        try:
            connection: psycopg.Connection[Any] = self._pool.getconn(timeout=_FIRST_WAIT_S)
        except psycopg_pool.PoolTimeout as err:
            # The pool only says it waited: a connection made here says why the server
            # refuses, if it does; else the pool is busy, and is waited for longer.
            refused = _refused(self._dsn, self.shown)
            if refused is not None:
                raise refused from err
            try:
                connection = self._pool.getconn()
            except psycopg_pool.PoolTimeout as busy:
                raise EngineError(
                    f"ledger {self.shown}: every connection of the pool is in use ({busy})",
                    "53300",
                ) from busy
        except psycopg.Error as err:
            raise EngineError(
                f"ledger {self.shown} cannot be reached: {err}", err.sqlstate
            ) from err
        self._held.clear()  # gone with the session they were held in
        self.sessions += 1
        return connection

    def _live(self) -> psycopg.Connection[Any]:
        """The connection to run on: a new one if it was lost between transactions."""
        if self._closed:
            raise EngineError(f"ledger {self.shown}: the connection is closed", "08003")
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._lost:
            raise EngineError(
                f"ledger {self.shown}: the connection was lost inside a transaction "
                "(the server rolled it back)",
                "08006",
            )
        if connection is not None:
            self._connection = None
            self._pool.putconn(connection)  # a closed connection: the pool drops it
        taken = self._take()
        self._connection = taken
        return taken

    @property
    def held(self) -> frozenset[int]:
        """The second keys of the leases this session holds (``leases.lease_key``'s)."""
        return frozenset(self._held)

    def leases_taken(self) -> frozenset[int]:
        """The keys of the leases any session holds now.

        Raises:
            EngineError: The server could not be asked.
        """
        try:
            rows = (
                self._live()
                .execute(
                    "SELECT objid::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s AND objsubid = 2 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                    (LEASES,),
                )
                .fetchall()
            )
        except psycopg.Error as err:
            raise _engine_error(err) from err
        # pg_locks shows the second key as an unsigned oid.
        return frozenset(key - (1 << 32) if key >= (1 << 31) else key for (key,) in rows)

    def take_leases(self, keys: Iterable[int]) -> frozenset[int]:
        """Take each lease of ``keys`` that no session holds; return those held now.

        The connection is taken again first if it was lost (the new session holds none
        of the old one's). Outside a transaction only.

        Raises:
            EngineError: The server could not be asked (nothing more is held).
        """
        connection = self._live()
        wanted = sorted(set(keys) - self._held)
        if wanted:
            try:
                rows = connection.execute(
                    "SELECT k, pg_try_advisory_lock(%s, k) FROM unnest(%s::int4[]) AS k",
                    (LEASES, wanted),
                ).fetchall()
            except psycopg.Error as err:
                raise _engine_error(err) from err
            self._held.update(int(key) for key, taken in rows if taken)
        return frozenset(self._held)

    def let_go(self, keys: Iterable[int]) -> None:
        """Give back the leases of ``keys`` this session holds (outside a transaction).

        Raises:
            EngineError: The server could not be told (the session is then closed, and
                its leases go with it).
        """
        given = sorted(set(keys) & self._held)
        if not given:
            return
        self._held.difference_update(given)
        connection = self._live()
        try:
            connection.execute(
                "SELECT pg_advisory_unlock(%s, k) FROM unnest(%s::int4[]) AS k", (LEASES, given)
            )
        except psycopg.Error as err:
            connection.close()  # its leases go with its session
            raise _engine_error(err) from err

    def try_lock(self, lock: tuple[int, int]) -> bool:
        """Take the session's advisory lock ``lock`` if free; tell whether it was.

        Raises:
            EngineError: The server could not be asked.
        """
        try:
            row = self._live().execute("SELECT pg_try_advisory_lock(%s, %s)", lock).fetchone()
        except psycopg.Error as err:
            raise _engine_error(err) from err
        return bool(row and row[0])

    def unlock(self, lock: tuple[int, int]) -> None:
        """Let the session's advisory lock ``lock`` go (nothing if the session is gone)."""
        connection = self._connection
        if connection is None or connection.closed:
            return
        try:
            connection.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
        except psycopg.Error:
            connection.close()  # the lock goes with the session

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (or failed and not rolled back yet)."""
        connection = self._connection
        if connection is None or connection.closed:
            return self._in_transaction
        return connection.info.transaction_status != pq.TransactionStatus.IDLE

    def _run(
        self, sql: str, run: Callable[[psycopg.Cursor[Any]], object], *, server: bool = False
    ) -> _Rows:
        word = sql.lstrip()[:8].upper()
        if word.startswith(("ROLLBACK", "COMMIT")) and self._lost:
            self._lost = self._in_transaction = False
            if word.startswith("ROLLBACK"):
                return _Rows(None)  # the server rolled it back with the session
        connection = self._live()
        try:
            cursor = psycopg.Cursor(connection) if server else psycopg.ClientCursor(connection)
            run(cursor)
        except psycopg.Error as err:
            if connection.closed and self._in_transaction:
                self._lost = True
            raise _engine_error(err) from err
        if word.startswith("BEGIN"):
            self._in_transaction = True
        elif word.startswith(("ROLLBACK", "COMMIT")):
            self._in_transaction = False
        return _Rows(cursor)

    def execute(self, sql: str, parameters: Any = (), /) -> _Rows:
        """Run one statement; raise :class:`EngineError` if it fails."""
        if parameters:
            return self._run(sql, lambda cursor: cursor.execute(translate(sql), parameters))
        return self._run(sql, lambda cursor: cursor.execute(translate(sql, bound=False)))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Rows:
        """Run one statement for each set of parameters (bound on the server: see above)."""
        rows = list(parameters)

        def run(cursor: psycopg.Cursor[Any]) -> None:
            if rows:
                cursor.executemany(translate(sql), rows)

        return self._run(sql, run, server=True)

    def insert_returning(self, sql: str, rows: Sequence[Any], /) -> list[int]:
        """Run ``sql`` (an ``INSERT ... RETURNING id``) for each row; the ids, in order.

        The statements go out in one pipeline: one round trip for them all, not one each.
        """
        ids: list[int] = []

        def run(cursor: psycopg.Cursor[Any]) -> None:
            if not rows:
                return
            cursor.executemany(translate(sql), rows, returning=True)
            while True:
                row = cursor.fetchone()
                if row is None:  # never: each INSERT returns its row
                    raise EngineError(f"ledger {self.shown}: an insert returned no id", None)
                ids.append(int(row[0]))
                if not cursor.nextset():
                    break

        self._run(sql, run, server=True)
        return ids

    def close(self) -> None:
        """Give the connection back to the pool (rolled back if a transaction was left).

        A connection that held leases lets them go first (if it cannot, the connection is
        broken, and the pool drops it: they go with its session).
        """
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._leases and not connection.closed:
            try:
                if connection.info.transaction_status != pq.TransactionStatus.IDLE:
                    connection.execute("ROLLBACK")
                connection.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                connection.close()  # the leases go with the session
        self._held.clear()
        self._pool.putconn(connection)


# The pools of this process by address; a child process forked with them makes its own
# (a connection's socket is never shared between processes).
_POOLS: dict[tuple[int, str], psycopg_pool.ConnectionPool[Any]] = {}
_POOLS_LOCK = threading.Lock()


def _session_settings(dsn: str) -> dict[str, object]:
    """What each connection of the pool sets, but what the address sets itself.

    The keepalives bound how long a lost link keeps the daemon's lock (see
    ``_KEEPALIVE``): an address may set others (``?keepalives_idle=2&options=...``).
    """
    given = conninfo_to_dict(dsn)
    settings: dict[str, object] = {
        "autocommit": True,
        "application_name": f"mailopsd {socket.gethostname()} pid {os.getpid()}",
        "keepalives": 1,
        **{f"keepalives_{name}": value for name, value in _KEEPALIVE.items()},
        "options": " ".join(f"-c tcp_keepalives_{name}={v}" for name, v in _KEEPALIVE.items()),
    }
    return {key: value for key, value in settings.items() if key not in given}


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
                kwargs=_session_settings(dsn),
                configure=_configure,
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=10,  # a busy pool (a server that refuses is told sooner: see _take)
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


def connect(
    dsn: str, shown: str, *, leases: bool = False, pool_size: int = 16
) -> PostgresConnection:
    """A connection to the ledger at ``dsn``, from this process's pool for it.

    Args:
        dsn: A ``postgresql://`` URL or ``key=value`` string, password included.
        shown: How messages name the ledger (``dsn`` without its password).
        leases: The daemon's connection: it holds the leases of the campaigns it works
            on (see :class:`PostgresConnection`).
        pool_size: The most connections the pool opens.

    Raises:
        EngineError: No connection could be had.
    """
    return PostgresConnection(_pool(dsn, size=pool_size), dsn, shown, leases=leases)


def close_pools() -> None:
    """Close every pool of this process (their connections too)."""
    with _POOLS_LOCK:
        pools = [pool for (pid, _), pool in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.close()

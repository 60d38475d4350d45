"""PostgreSQL's connection: SQLite's spelling rewritten, sessions lost and taken again,
the daemon's lock, errors translated as SQLite's are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from mailopsd.state import postgres, postgres_schema, schema
from mailopsd.state.errors import StorageError, StorageInUseError, StorageUnavailableError
from mailopsd.state.ledger import Ledger
from mailopsd.state.postgres import translate
from tests.servers.postgres import PostgresServer

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pools_closed() -> Iterator[None]:
    """Close this process's ledger pools after each test (their threads with them)."""
    yield
    postgres.close_pools()


@pytest.fixture
def ledger(postgres_dsn: str) -> Iterator[Ledger]:
    opened = Ledger.connect(postgres_dsn)
    yield opened
    opened.close()


def _put_then(ledger: Ledger, then: object) -> None:
    """In one transaction: a campaign written, then ``then()`` (which fails)."""
    with ledger.transaction():
        ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
        then()  # type: ignore[operator]


class TestTranslate:
    def test_sqlite_spellings_become_postgresql_ones(self) -> None:
        assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == (
            "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
        )
        assert translate("UPDATE OR ROLLBACK s SET a = :a WHERE id = :id") == (
            "UPDATE s SET a = %(a)s WHERE id = %(id)s"
        )
        assert translate("SELECT x FROM leads INDEXED BY leads_due CROSS JOIN m ON 1") == (
            "SELECT x FROM leads JOIN m ON 1"
        )
        assert translate("CREATE TABLE temp.s (a TEXT NOT NULL) WITHOUT ROWID") == (
            'CREATE TABLE pg_temp.s (a TEXT COLLATE "C" NOT NULL)'
        )

    def test_quoted_text_is_left_as_it_is(self) -> None:
        """A ``?``, ``:name``, ``%`` or keyword inside quotes is text, not SQL."""
        assert translate("SELECT 'a?b :c 5% temp.x' || ?") == "SELECT 'a?b :c 5%% temp.x' || %s"
        assert translate("SELECT '5%'", bound=False) == "SELECT '5%'"
        assert translate("SELECT CAST(? AS json) ->> 'k'") == "SELECT CAST(%s AS json) ->> 'k'"


class TestErrors:
    def test_an_error_in_a_transaction_is_a_storage_error(self, ledger: Ledger) -> None:
        """A statement that fails inside ``transaction()`` rolls it back whole and reaches
        the caller as a storage error, as SQLite's do."""
        db = ledger._database.connection
        with pytest.raises(StorageError, match="nowhere"):
            _put_then(ledger, lambda: db.execute("SELECT * FROM nowhere"))
        assert ledger.campaigns.active() == {}


class TestLostSessions:
    def test_a_session_lost_between_transactions_is_taken_again(
        self, ledger: Ledger, postgres_server: PostgresServer, postgres_dsn: str
    ) -> None:
        """The server drops the session: the next statement fails (the daemon pauses),
        the one after runs on a new session, which the ledger counts."""
        assert ledger.sessions == 1
        postgres_server.terminate_connections(postgres_dsn)
        with pytest.raises(StorageUnavailableError):
            ledger.sends.pending()
        assert ledger.sends.pending() == []
        assert ledger.sessions == 2

    def test_a_session_lost_inside_a_transaction_fails_it_whole(
        self, ledger: Ledger, postgres_server: PostgresServer, postgres_dsn: str
    ) -> None:
        """No statement of a transaction runs outside it: once its session is lost, every
        statement fails until the transaction ends, and nothing of it was written."""
        db = ledger._database.connection

        def cut_then_ask() -> None:
            postgres_server.terminate_connections(postgres_dsn)
            db.execute("SELECT 1")

        with pytest.raises(StorageError):
            _put_then(ledger, cut_then_ask)
        assert ledger.campaigns.active() == {}  # a new session, and nothing was written
        assert ledger.sessions == 2


class TestTheDaemonsLock:
    def test_one_daemon_at_a_time_the_next_when_it_stops(self, postgres_dsn: str) -> None:
        """A second daemon's ledger is refused, naming who works; once the first closes
        (its lock let go), the second gets it."""
        first = Ledger.connect(postgres_dsn, exclusive=True)
        with pytest.raises(StorageInUseError, match=r"in use by another daemon \(mailopsd "):
            Ledger.connect(postgres_dsn, exclusive=True)
        assert first.describe()["working_daemon"] is not None
        first.close()
        second = Ledger.connect(postgres_dsn, exclusive=True)
        try:
            working = second.describe()["working_daemon"]
            assert isinstance(working, str)
            assert working.startswith("mailopsd ")
        finally:
            second.close()

    def test_the_lock_goes_with_a_lost_session(
        self, postgres_server: PostgresServer, postgres_dsn: str
    ) -> None:
        """The working daemon's session dropped by the server: another daemon gets the
        lock, and the first, asking again, is told it is in use."""
        first = Ledger.connect(postgres_dsn, exclusive=True)
        try:
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                [backend] = admin.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                ).fetchone() or [None]
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
            second = Ledger.connect(postgres_dsn, exclusive=True)
            try:
                with pytest.raises(StorageError):
                    first.sends.pending()  # the lost session
                with pytest.raises(StorageInUseError):
                    first.sends.pending()  # a new one: the lock is the other's now
            finally:
                second.close()
        finally:
            first.close()
            postgres.close_pools()


def test_a_ledger_of_schema_13_is_migrated_and_keeps_its_rows(postgres_dsn: str) -> None:
    """Migrations after 13 are SQLite's, run on PostgreSQL: the daemons' table appears,
    the version moves, and what the ledger held stays."""
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(postgres_schema.VERSION_TABLE)
        admin.execute(postgres_schema.SCHEMA_13)
        admin.execute("INSERT INTO ledger_schema (one, version) VALUES (1, 13)")
        admin.execute(
            "INSERT INTO campaigns (id, account, snapshot, added_at) "
            "VALUES ('acme', 'default', '{\"name\": \"ACME\"}', '2026-11-23T12:00:00Z')"
        )
    ledger = Ledger.connect(postgres_dsn)
    try:
        assert ledger.campaigns.active() == {"acme": {"name": "ACME"}}
        assert ledger.daemons.all() == []
        version = schema.schema_version(ledger._database.connection, postgresql=True)
        assert version == schema.SCHEMA_VERSION
    finally:
        ledger.close()

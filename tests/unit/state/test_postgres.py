"""PostgreSQL's connection: SQLite's spelling rewritten, sessions lost and taken again,
the daemon's lock, errors translated as SQLite's are."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from mailopsd.state import postgres, postgres_schema, schema
from mailopsd.state.errors import StorageError, StorageLeasesLostError, StorageUnavailableError
from mailopsd.state.ledger import Ledger
from mailopsd.state.postgres import translate
from tests.servers.postgres import PostgresServer
from tests.waiting import poll_until

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


class TestLeases:
    def test_a_lease_is_one_sessions_until_it_lets_it_go_or_closes(self, postgres_dsn: str) -> None:
        """Two daemons' ledgers ask for overlapping leases: each gets only the free ones,
        both see all taken; what one lets go or leaves on closing, the other can take."""
        first = Ledger.connect(postgres_dsn, leases=True)
        second = Ledger.connect(postgres_dsn, leases=True)
        try:
            assert first.take_leases([1, 2]) == {1, 2}
            assert second.take_leases([2, 3]) == {3}
            assert second.leases_taken() == {1, 2, 3}
            assert second.describe()["leases"] == 3
            first.let_go([2])
            assert second.take_leases([2]) == {2, 3}
            first.close()
            assert second.take_leases([1]) == {1, 2, 3}
        finally:
            second.close()
            first.close()
        other = Ledger.connect(postgres_dsn)
        try:
            assert other.leases_taken() == frozenset()  # closing let every lease go
        finally:
            other.close()

    def test_leases_go_with_a_lost_session_and_fence_its_writes(
        self, postgres_server: PostgresServer, postgres_dsn: str
    ) -> None:
        """A daemon's session dropped by the server: another daemon takes its lease; the
        first, on its new session, holds none, and a write fenced on the old session is
        refused whole."""
        first = Ledger.connect(postgres_dsn, leases=True)
        try:
            assert first.take_leases([7]) == {7}
            fence = first.sessions
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                [backend] = admin.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                ).fetchone() or [None]
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
            second = Ledger.connect(postgres_dsn, leases=True)
            try:
                assert second.take_leases([7]) == {7}
                with pytest.raises(StorageError):
                    first.sends.pending()  # the lost session
                assert first.take_leases([7]) == frozenset()  # a new one: the other's
                assert first.sessions == fence + 1
                with (
                    pytest.raises(StorageLeasesLostError, match="nothing of theirs"),
                    first.transaction(fence),
                ):
                    first.campaigns.put("acme", "default", {"name": "A"}, NOW)
                assert first.campaigns.active() == {}
            finally:
                second.close()
        finally:
            first.close()
            postgres.close_pools()

    def test_one_daemon_applies_at_a_time(self, postgres_dsn: str) -> None:
        """While one daemon applies, another's apply waits (told each tenth of a second)."""
        first = Ledger.connect(postgres_dsn, leases=True)
        second = Ledger.connect(postgres_dsn, leases=True)
        order: list[str] = []
        waits: list[float] = []
        try:
            with first.applying(lambda: None):
                order.append("first in")
                thread = threading.Thread(
                    target=lambda: _apply_in(second, order, waits), name="second"
                )
                thread.start()
                poll_until(lambda: len(waits) >= 2, timeout_s=10, what="the second to wait")
                order.append("first out")
            thread.join(timeout=10)
        finally:
            second.close()
            first.close()
            postgres.close_pools()
        assert order == ["first in", "first out", "second in"]


def _apply_in(ledger: Ledger, order: list[str], waits: list[float]) -> None:
    with ledger.applying(lambda: waits.append(time.monotonic())):
        order.append("second in")


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

"""The tests' own PostgreSQL: reachable on loopback only, and one separate database per test."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.servers.postgres import PostgresServer

_LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
_LISTEN = "0A"


def _listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == _LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_server_answers_on_loopback_only(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    """A test's database answers on 127.0.0.1, and the server listens on no other address."""
    with psycopg.connect(postgres_dsn, connect_timeout=5) as connection:
        listen = connection.execute("SHOW listen_addresses").fetchone()
        sockets = connection.execute("SHOW unix_socket_directories").fetchone()
        reached = connection.execute("SELECT host(inet_server_addr())").fetchone()
    assert listen == ("127.0.0.1",)
    assert sockets == ("",)
    assert reached == ("127.0.0.1",)
    assert _listening_addresses(postgres_server.port) == {_LOOPBACK_HEX}


def test_each_database_is_separate_and_empty(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    """A table made in one test database is absent from another, which starts empty."""
    other = postgres_server.create_database()
    try:
        with psycopg.connect(postgres_dsn, connect_timeout=5) as connection:
            connection.execute("CREATE TABLE leads (address text PRIMARY KEY)")
            connection.execute("INSERT INTO leads VALUES ('a@example.com')")
        with psycopg.connect(other, connect_timeout=5) as connection:
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        with psycopg.connect(postgres_dsn, connect_timeout=5) as connection:
            kept = connection.execute("SELECT address FROM leads").fetchall()
    finally:
        postgres_server.drop_database(other)
    assert other != postgres_dsn
    assert tables == []
    assert kept == [("a@example.com",)]

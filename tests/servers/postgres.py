"""A real PostgreSQL server for tests: a private ``postgres`` on 127.0.0.1, started by the tests.

One server serves the whole session (the ``postgres_server`` fixture),
started only when a test asks for it; every test gets a fresh, empty database of its own
(``postgres_dsn``), dropped after it. ``initdb`` makes the cluster in a directory of the
session (trust authentication, UTF8, locale C); the server listens on 127.0.0.1 only, on a
free port, with no Unix socket, and logs to ``postgres.log`` beside its data. initdb and
postgres refuse to run as root, so under root (as in CI) both run as the ``postgres``
system user of the Debian package. The server is stopped by its pid.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from mailopsd.daemon.leases import lease_key
from mailopsd.state import postgres

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5
TERMINATE_TIMEOUT_MS = 5000
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
PASSWORD_USER = "mailopsd_pw"  # noqa: S105 - a role's name
"""The one role that logs in with a password (see PostgresServer.owned_by_password_role)."""
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
_DAEMON_SESSION = re.compile(r"^mailopsd \S+ pid (\d+)$")


def find_binaries() -> tuple[Path, Path] | None:
    """``initdb`` and ``postgres``: from PATH, else the newest /usr/lib/postgresql/*/bin/.

    Debian puts neither on PATH; None when PostgreSQL is not installed.
    """
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return Path(initdb), Path(postgres)
    versions = [
        path
        for path in _DEBIAN_BINARIES.glob("*/bin")
        if path.parent.name.isdigit() and (path / "initdb").exists()
    ]
    if not versions:
        return None
    newest = max(versions, key=lambda path: int(path.parent.name))
    return newest / "initdb", newest / "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_traversable(directory: Path) -> None:
    """Let the postgres user reach ``directory``: pytest makes its temp directories 0700."""
    for path in [directory, *directory.parents]:
        mode = path.stat()
        if mode.st_uid == os.geteuid() and not mode.st_mode & stat.S_IXOTH:
            # Search only (o+x), not listing: the user must reach its data directory.
            path.chmod(stat.S_IMODE(mode.st_mode) | stat.S_IXOTH)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``directory``: ``init()`` runs initdb, ``start()`` postgres."""

    directory: Path
    initdb: Path
    postgres: Path
    durable: bool = False
    """Keep PostgreSQL's own crash safety (fsync, synchronous commits): for benchmarks."""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    host = "127.0.0.1"

    @property
    def data_directory(self) -> Path:
        """The cluster's data (PGDATA)."""
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        """Where the server writes its log (its stderr)."""
        return self.directory / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server, as the superuser."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @staticmethod
    def _run_as() -> str | None:
        """Whom initdb and postgres run as: the postgres user when we are root, else us."""
        return SYSTEM_USER if os.geteuid() == 0 else None

    def init(self) -> None:
        """Make the cluster with initdb (trust authentication, UTF8, locale C)."""
        self.data_directory.mkdir(mode=0o700)
        if os.geteuid() == 0:
            _make_traversable(self.directory)
            shutil.chown(self.data_directory, SYSTEM_USER, SYSTEM_USER)
        done = subprocess.run(
            [
                str(self.initdb),
                f"--pgdata={self.data_directory}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                *(() if self.durable else ("--no-sync",)),  # test speed only (see _command)
                "--no-instructions",
            ],
            cwd=self.data_directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT_S * 4,
            user=self._run_as(),
            group=self._run_as(),
            extra_groups=[] if self._run_as() else None,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb failed in {self.data_directory} (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        # One role logs in with its password (the first matching line wins); all others
        # are trusted.
        hba = self.data_directory / "pg_hba.conf"
        line = f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(line + hba.read_text())

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            # No Unix socket: nothing to reach beyond loopback TCP, and no ~107-byte path limit.
            "unix_socket_directories": "",
            "max_connections": "200",
        }
        if not self.durable:
            # Test speed only: these trade crash safety for speed; tests never need a
            # cluster to survive a crash of the machine. Never use them in production.
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        options = [f"--{name}={value}" for name, value in settings.items()]
        return [str(self.postgres), "-D", str(self.data_directory), *options]

    def start(self, tries: int = 5) -> None:
        """Start the server on a free port and wait until it accepts a connection.

        Raises:
            RuntimeError: it did not start; the message quotes its log.
        """
        for _ in range(tries):
            self.port = _free_port()
            with self.log_file.open("ab") as log:
                process = subprocess.Popen(
                    self._command(),
                    cwd=self.data_directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # A Ctrl-C reaches pytest alone, whose fixture then stops the server.
                    process_group=0,
                    user=self._run_as(),
                    group=self._run_as(),
                    extra_groups=[] if self._run_as() else None,
                )
            if self._wait_ready(process):
                self.process = process
                return
            # It exited: most likely the port was taken meanwhile; try another.
        raise RuntimeError(f"postgres failed to start {tries} times; its log:\n{self.log()}")

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=1):
                    return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self._halt(process)
                    raise RuntimeError(
                        f"postgres accepted no connection in {START_TIMEOUT_S:g} s on "
                        f"port {self.port}; its log:\n{self.log()}"
                    ) from None
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the server by its pid and wait until it (and every backend) is gone."""
        if self.process is not None:
            self._halt(self.process)
            self.process = None

    @staticmethod
    def _halt(process: subprocess.Popen[bytes]) -> None:
        # SIGINT is postgres's "fast" shutdown (pg_ctl stop -m fast): it ends the sessions
        # still open, where SIGTERM ("smart") would wait for every client to leave.
        # SIGQUIT ("immediate") then SIGKILL only if it hangs.
        for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 10.0)):
            process.send_signal(sig)
            try:
                process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            return
        process.kill()
        process.wait()

    def remove_data(self) -> None:
        """Delete the cluster's files (the stopped server's), keeping its log."""
        shutil.rmtree(self.data_directory, ignore_errors=True)

    @contextmanager
    def _admin(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with psycopg.connect(
            self.dsn(), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        ) as connection:
            yield connection

    def create_database(self) -> str:
        """Create an empty database with a name no other caller got; return its DSN."""
        with self._lock:
            name = f"test_{next(self._names)}"
        with self._admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def owned_by_password_role(self, dsn: str, password: str) -> str:
        """Give the database of ``dsn`` to the role that logs in with ``password``.

        Returns:
            Its address as that role, without the password (which it needs).
        """
        name = _database_of(dsn)
        with self._admin() as connection:
            role = sql.Identifier(PASSWORD_USER)
            exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_USER,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            connection.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password))
            )
            connection.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), role)
            )
        with psycopg.connect(self.dsn(name), autocommit=True) as connection:
            connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
        return f"postgresql://{PASSWORD_USER}@{self.host}:{self.port}/{name}"

    def terminate_connections(self, dsn: str) -> int:
        """End every session open on the database of ``dsn`` (as a network partition would).

        Returns:
            How many sessions ended; those are gone when this returns (it waits up to
            ``TERMINATE_TIMEOUT_MS`` for each).
        """
        with self._admin() as connection:
            # With a timeout, pg_terminate_backend waits until the session has ended.
            ended = connection.execute(
                "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (TERMINATE_TIMEOUT_MS, _database_of(dsn)),
            ).fetchall()
        return sum(1 for (done,) in ended if done)

    def drop_database(self, dsn: str) -> None:
        """Drop the database of ``dsn``, ending any session still open on it."""
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(_database_of(dsn))
                )
            )

    def log(self) -> str:
        """What the server logged (the last 5000 characters)."""
        if not self.log_file.exists():
            return "(no log)"
        return self.log_file.read_text(errors="replace")[-5000:]


def campaign_holders(
    admin: psycopg.Connection[TupleRow], campaigns: Iterable[str]
) -> dict[str, int | None]:
    """The pid of the mailopsd daemon that holds each campaign's lease (None: none does).

    Asked of PostgreSQL itself (``pg_locks``), on a connection to the ledger's database;
    a daemon's sessions are named ``mailopsd HOST pid PID``.
    """
    rows = admin.execute(
        "SELECT l.objid::int8, a.application_name FROM pg_locks AS l "
        "JOIN pg_stat_activity AS a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.classid = %s AND l.objsubid = 2 AND l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (postgres.LEASES,),
    ).fetchall()
    by_key: dict[int, int | None] = {}
    for key, name in rows:
        found = _DAEMON_SESSION.match(str(name))
        by_key[int(key)] = int(found.group(1)) if found else None
    return {campaign: by_key.get(lease_key(campaign) % (1 << 32)) for campaign in campaigns}


def _database_of(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


def start_postgres(directory: Path, *, durable: bool = False) -> PostgresServer:
    """Make a cluster in ``directory`` (which must be empty) and start its server.

    ``durable``: with PostgreSQL's own crash safety, as in production (benchmarks).

    Raises:
        RuntimeError: it did not start; the message quotes its log.
    """
    binaries = find_binaries()
    if binaries is None:
        pytest.fail(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
            "the README's test command (scripts/test) installs it"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            pytest.fail(
                f"tests run as root but there is no {SYSTEM_USER!r} user to run PostgreSQL; "
                "the Debian package postgresql makes it (scripts/test installs it)"
            )
    server = PostgresServer(directory, *binaries, durable=durable)
    server.init()
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """The session's PostgreSQL on 127.0.0.1, started when a test first asks for it."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()
        server.remove_data()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database of the session's PostgreSQL, dropped after the test."""
    dsn = postgres_server.create_database()
    try:
        yield dsn
    finally:
        postgres_server.terminate_connections(dsn)
        postgres_server.drop_database(dsn)

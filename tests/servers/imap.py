"""A real IMAP server for tests: a private dovecot on 127.0.0.1 (STARTTLS and IMAPS).

One instance serves the whole session (``dovecot`` fixture); a test that stops and
starts the server gets its own (``own_dovecot``). Every test gets a fresh user
(``mailbox`` fixture) so that tests never see each other's mail. The certificate comes
from the session's test CA, so clients verify it with ``ca.ca_file``.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.tlsca import TestCA

TEMPLATE = Path(__file__).with_name("dovecot.conf.in")
POOL = 200
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _greeted(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.settimeout(2)
            return sock.recv(100).startswith(b"* OK")
    except OSError:
        return False


@dataclass
class Dovecot:
    """One dovecot instance; ``stop()`` and ``start()`` keep its ports and mail."""

    directory: Path
    ca: TestCA
    port: int = 0
    imaps_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)
    taken: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    host = "127.0.0.1"

    def prepare(self) -> None:
        os.chmod(self.directory, 0o755)  # noqa: S103 - the dovecot user must traverse it
        (self.directory / "mail").mkdir()
        shutil.chown(self.directory / "mail", "dovecot", "dovecot")
        shutil.copy(self.ca.cert_file, self.directory / "cert.pem")
        shutil.copy(self.ca.key_file, self.directory / "key.pem")
        # Users are made up front: dovecot reads the passwd file once.
        self.users = {f"user{n}": f"pw-user{n}" for n in range(1, POOL + 1)}
        (self.directory / "users").write_text(
            "".join(f"{name}:{{PLAIN}}{pw}::::::\n" for name, pw in self.users.items())
        )
        self.port, self.imaps_port = _free_port(), _free_port()

    def _write_config(self) -> Path:
        text = (
            TEMPLATE.read_text()
            .replace("@DIR@", str(self.directory))
            .replace("@PORT@", str(self.port))
            .replace("@SPORT@", str(self.imaps_port))
        )
        path = self.directory / "dovecot.conf"
        path.write_text(text)
        return path

    def start(self, tries: int = 5) -> None:
        """Start (or restart) the server and wait for its greeting."""
        for _ in range(tries):
            conf = self._write_config()
            process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)])
            deadline = time.monotonic() + 15
            while process.poll() is None and time.monotonic() < deadline:
                if _greeted(self.port):
                    self.process = process
                    return
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait()
                raise RuntimeError(f"dovecot gave no greeting in 15 s; see {self.directory}")
            # Exit code 89: a port was taken meanwhile; pick others.
            self.port, self.imaps_port = _free_port(), _free_port()
        raise RuntimeError(f"dovecot failed to start {tries} times; see {self.directory}")

    def stop(self) -> None:
        """Stop the server (by its pid) and wait until it is gone."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def add_user(self) -> tuple[str, str]:
        """A user no test used yet (its mailbox is empty); its name and password."""
        with self.lock:
            self.taken += 1
            if self.taken > POOL:
                raise RuntimeError(f"more than {POOL} IMAP users asked for; raise POOL")
            name = f"user{self.taken}"
        return name, self.users[name]

    def connect(self, user: str) -> imaplib.IMAP4:
        """A logged-in plain connection (loopback) for the test's own checks."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        """APPEND a message (unread); return its UID."""
        client = self.connect(user)
        try:
            if folder != "INBOX":
                client.create(folder)
            _, data = client.append(folder, "", None, raw)
            match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))
        finally:
            client.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, str]:
        """The flags of every message of a folder, by UID."""
        client = self.connect(user)
        try:
            client.select(folder, readonly=True)
            _, data = client.uid("FETCH", "1:*", "(FLAGS)")
        finally:
            client.logout()
        found: dict[int, str] = {}
        for item in data:
            text = item.decode() if isinstance(item, bytes) else ""
            match = re.search(r"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", text)
            if match:
                uid = match.group(1) or match.group(4)
                found[int(uid)] = match.group(2) if match.group(1) else match.group(3)
        return found

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """The UIDs of a folder (empty if it does not exist)."""
        client = self.connect(user)
        try:
            status, _ = client.select(folder, readonly=True)
            if status != "OK":
                return []
            _, data = client.uid("SEARCH", "ALL")
        finally:
            client.logout()
        return [int(uid) for uid in (data[0] or b"").split()]

    def doveadm(self, *args: str) -> None:
        """Run a doveadm command against this instance."""
        subprocess.run(
            [DOVEADM, "-c", str(self.directory / "dovecot.conf"), *args],
            check=True,
            capture_output=True,
        )

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_dovecot(ca: TestCA) -> Dovecot:
    """Start a new instance in a short, traversable directory under /tmp."""
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot-imapd is not installed; the README's test command installs it")
    server = Dovecot(Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp")), ca)
    server.prepare()
    server.start()
    return server


def _finish(server: Dovecot) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(test_ca: TestCA) -> Iterator[Dovecot]:
    """The session's IMAP server."""
    server = start_dovecot(test_ca)
    try:
        yield server
    finally:
        _finish(server)


@pytest.fixture
def own_dovecot(test_ca: TestCA) -> Iterator[Dovecot]:
    """An IMAP server for one test, which it may stop and start."""
    server = start_dovecot(test_ca)
    try:
        yield server
    finally:
        _finish(server)


@dataclass
class HungServer:
    """Accepts connections and never says a word (a hung IMAP server)."""

    sock: socket.socket
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: list[socket.socket] = field(default_factory=list)
    thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)


@pytest.fixture
def hung_imap() -> Iterator[HungServer]:
    """A loopback server that accepts and stays silent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = HungServer(sock)
    server.thread = threading.Thread(target=server._run, name="hung-imap", daemon=True)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.thread.join(5)
        for connection in server.accepted:
            connection.close()
        sock.close()


@contextmanager
def agreeable_imap(capability: bytes, name: str) -> Iterator[list[bytes]]:
    """A one-connection IMAP server on loopback, without TLS, that answers OK to anything.

    It offers ``capability`` (say ``b"IMAP4rev1 AUTH=PLAIN"``); item 0 of what it yields is
    its port, then every line it received, to show what a client sent it.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen: list[bytes] = [str(server.getsockname()[1]).encode()]

    def serve() -> None:
        connection, _ = server.accept()
        with connection, connection.makefile("rwb") as stream:
            stream.write(b"* OK IMAP4rev1 ready\r\n")
            stream.flush()
            for line in stream:
                seen.append(line)
                tag = line.split(b" ", 1)[0]
                if b"CAPABILITY" in line.upper():
                    stream.write(b"* CAPABILITY " + capability + b"\r\n")
                stream.write(tag + b" OK done\r\n")
                stream.flush()
                if b"LOGOUT" in line.upper():
                    break

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        thread.join(10)
        server.close()

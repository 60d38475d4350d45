"""Fixtures shared by every test: no leaked threads, logging left as found."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.configs import BASE, LEADS, Writer

pytest_plugins = [
    "tests.servers.smtp",
    "tests.servers.imap",
    "tests.servers.dns",
    "tests.servers.postgres",
    "tests.ledger_setup",
]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"


_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection a test would make beyond this machine's loopback."""
    resolve = socket.getaddrinfo

    def guarded(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in _LOOPBACK_NAMES and not name.startswith("127."):
            raise OSError(f"tests reach loopback only, not {name}")
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Undo handler and level changes a test (or the CLI it runs) made to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Writer:
    """Write BASE (edited) as c.yaml in a fresh directory that becomes the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leads.csv").write_text(LEADS)

    def write(
        text: str = BASE,
        *,
        replace: tuple[str, str] | None = None,
        add: str = "",
        name: str = "c.yaml",
    ) -> Path:
        if replace is not None:
            old, new = replace
            assert old in text, f"{old!r} not in the base config"
            text = text.replace(old, new, 1)
        path = Path(name)
        path.write_text(text + add)
        return path

    return write

"""The notify protocol: datagrams to the socket, and never a blocked daemon."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

from mailopsd.notify import Notifier


@pytest.fixture
def receiver() -> Iterator[tuple[str, socket.socket]]:
    directory = tempfile.mkdtemp(prefix="nt-", dir="/tmp")
    path = os.path.join(directory, "n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_messages(receiver: tuple[str, socket.socket]) -> None:
    """READY=1 carries a STATUS line; WATCHDOG=1 only when the manager asked for one."""
    path, sock = receiver
    Notifier({"NOTIFY_SOCKET": path}).ready("1 campaign")
    assert sock.recv(4096) == b"READY=1\nSTATUS=1 campaign"
    Notifier({"NOTIFY_SOCKET": path}).watchdog()
    Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}).watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_unread_socket_never_blocks(receiver: tuple[str, socket.socket]) -> None:
    """A manager that stops reading (a full queue) never blocks the daemon."""
    path, _ = receiver
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    for _ in range(1000):
        notifier.status("busy")


def test_watchdog_pets_at_most_four_times_per_interval(
    receiver: tuple[str, socket.socket],
) -> None:
    """However often the loop turns, the queue gets a WATCHDOG=1 per quarter interval."""
    path, sock = receiver
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"})
    for _ in range(100):
        notifier.watchdog()
    notifier.stopping()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_without_socket_does_nothing() -> None:
    """Outside systemd every call is a no-op."""
    Notifier({}).ready("x")
    assert Notifier({}).watchdog_interval_s is None

"""A TCP proxy on 127.0.0.1 that a test can cut, as a network partition cuts a link.

Clients connect to the proxy, which connects each to the upstream address and copies
bytes both ways. :meth:`Proxy.cut` partitions the link: the clients' connections are
reset at once and new ones refused (what a client sees when its packets stop getting
through: its keepalives give up), while the upstream side (the server) keeps each
session until ``server_notices_s`` later, as a server whose own keepalives go
unanswered drops it then. :meth:`Proxy.heal` lets new connections through again.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

_CHUNK = 65536


class Proxy:
    """Copies bytes between clients and ``upstream``; see the module."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        """Listen on a free port of 127.0.0.1 (``self.port``), not yet accepting."""
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Accept connections in a thread."""
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
            self._spawn(_pump, client, server)
            self._spawn(_pump, server, client)

    def cut(self, *, server_notices_s: float) -> None:
        """Partition the link: clients cut now, the server's sessions after a while."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, []
        for client, _ in pairs:
            _reset(client)

        def later() -> None:
            if not self._stopped.wait(server_notices_s):
                for _, server in pairs:
                    _reset(server)

        self._spawn(later)

    def heal(self) -> None:
        """Let new connections through again."""
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        """Close everything and wait for the threads."""
        self._stopped.set()
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            _reset(client)
            _reset(server)
        for thread in self._threads:
            thread.join(timeout=10)


_LINGER_NONE = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    """Close at once: an RST to the peer, and any thread reading it woken."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NONE)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # wakes a blocked recv; sends nothing
    with contextlib.suppress(OSError):
        sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either side closes."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    """A started proxy to ``host:port``, stopped when the block ends."""
    proxy = Proxy((host, port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()

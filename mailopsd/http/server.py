"""The HTTP server: waitress on threads of the HTTP process, serving a socket the daemon bound.

waitress reads and buffers each request on one I/O thread (so a slow client holds no
worker) and runs the application on a small pool of worker threads. Exactly one socket
is bound (:func:`bind`): on the configured address, or the first address a host name
resolves to (port 0 takes a free port). waitress has no stop call of its own: the I/O
loop runs here one poll at a time, and on :meth:`HttpServer.stop` it closes the
listening socket and every connection on its own thread, then the workers are shut
down.

waitress bounds only a connection's silence (its channel timeout), so a client that
trickles a header line every few seconds could hold a connection for ever, and enough
of them would take every connection the server accepts (a "slowloris"). Three rules
close that, all on the I/O thread (waitress has none of them, and no hook but its
channel and server classes, which are subclassed here):

- a request must arrive whole within :attr:`ClientLimits.request_timeout_s` of its
  first byte (of the accept, for a connection's first request);
- one client address may have at most :attr:`ClientLimits.connections_per_client`
  connections receiving a request (part of a request sent, or nothing sent for a
  second); a further one closes its oldest such connection. A connection whose
  request is complete never counts, so a reverse proxy on the same host, whose
  requests all come from one address, is not held back: its requests arrive whole;
- when fewer than ``_SPARE_CONNECTIONS`` connections are left before waitress' limit,
  each new connection closes the kept-alive connection idle for longest: clients must
  expect an idle connection to be closed (RFC 9112, section 9.5), and so someone
  holding many connections open after one quick request each cannot fill the server.

waitress warns of every request that waits for a free worker thread: under load that
is a line per request, thousands a second, each sent to the daemon to be written (the
daemon spent a tenth of a core on them). Here those waits are added up and logged at
most once a minute (:class:`_QueueWaits`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.types import WSGIApplication

import waitress.server
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ThreadedTaskDispatcher

from mailopsd.http.app import HOOK_MAX_BYTES

__all__ = ["ClientLimits", "HttpServer", "bind", "listen_address", "start_server"]

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 32 * 1024  # a click token holds its URL: room for long links
_CHANNEL_TIMEOUT_S = 30
_MAX_CONNECTIONS = 100  # waitress' default (its listening socket and wake-up pipe count)
_SPARE_CONNECTIONS = 10
_QUIET_GRACE_S = 1.0  # see _Channel.is_holding
_SWEEP_S = 1  # how often late requests are looked for (waitress takes whole seconds)
_POLL_S = 0.5
_BACKLOG = 1024  # waitress' default: connections wait here while the process restarts
_QUEUE_LOG_S = 60.0  # the least time between two lines on requests waiting for a worker


@dataclass(frozen=True)
class ClientLimits:
    """What one client may hold of the server (the config's ``http`` section sets them)."""

    request_timeout_s: float = 10.0
    """Time to send a whole request, from its first byte (from the accept, for the first)."""
    connections_per_client: int = 10
    """Connections one client address may have receiving a request at once."""


class _TimedParser(HTTPRequestParser):
    """waitress' request parser, noting when the request's first byte came."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.began = time.monotonic()


class _Channel(HTTPChannel):
    """waitress' connection, which knows since when it has been receiving its request."""

    parser_class = _TimedParser

    def __init__(
        self,
        server: waitress.server.BaseWSGIServer,
        sock: socket.socket,
        addr: tuple[str, int] | tuple[str, int, int, int],  # IPv4 or IPv6
        adj: Adjustments,
        map: Mapping[int, socket.socket] | None = None,  # the name waitress passes it by
    ) -> None:
        self.accepted = time.monotonic()
        self.has_received = False
        super().__init__(server, sock, addr, adj, map)
        if isinstance(server, _Server):
            server.admit(self)

    def received(self, data: bytes) -> bool:
        """Note that the client has sent something, then parse it as waitress does."""
        self.has_received = self.has_received or bool(data)
        return super().received(data)

    def _is_waiting(self) -> bool:
        """Tell whether it waits for the client: no request to answer, nothing to send."""
        return not (
            self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed
        )

    def request_began(self) -> float | None:
        """When the request it is receiving began; ``None`` when it is receiving none."""
        if not self._is_waiting():
            return None
        if isinstance(self.request, _TimedParser):
            return self.request.began
        return None if self.has_received else self.accepted

    def is_holding(self, now: float) -> bool:
        """Tell whether it holds a place waiting on its client, for the per-client cap.

        A connection that has sent part of a request does at once; one that has sent
        nothing yet only after ``_QUIET_GRACE_S``: a burst of clients (a load tool, a
        proxy filling its pool) connects first and sends its whole requests right after.
        """
        began = self.request_began()
        if began is None:
            return False
        return self.has_received or now - began >= _QUIET_GRACE_S

    def is_idle(self) -> bool:
        """Tell whether it is kept alive after a request, with nothing sent since."""
        return self._is_waiting() and self.has_received and self.request is None


class _QueueWaits(logging.Logger):
    """Stands for waitress' queue logger: it adds up the waits instead of writing each.

    waitress calls ``warning("Task queue depth is %d", depth)`` (holding its dispatcher's
    lock) each time a request is queued with no worker free.
    """

    def __init__(self) -> None:
        super().__init__("waitress.queue")
        self._lock = threading.Lock()
        self._waits = 0
        self._deepest = 0

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        """Count one request that waits for a worker, ``args[0]`` deep in the queue."""
        depth = args[0] if args and isinstance(args[0], int) else 1
        with self._lock:
            self._waits += 1
            self._deepest = max(self._deepest, depth)

    def take(self) -> tuple[int, int]:
        """The waits counted since the last call, and the deepest queue they saw."""
        with self._lock:
            taken = (self._waits, self._deepest)
            self._waits = self._deepest = 0
        return taken


class _Server(waitress.server.TcpWSGIServer):
    """waitress' server, holding each client to :class:`ClientLimits`."""

    channel_class = _Channel

    def __init__(
        self,
        app: WSGIApplication,
        *,
        connections: dict[int, socket.socket],
        workers: ThreadedTaskDispatcher,
        adj: Adjustments,
        sock: socket.socket,
        sockinfo: tuple[int, int, int, tuple[str, int]],
        limits: ClientLimits,
        waits: _QueueWaits,
    ) -> None:
        self.limits = limits
        self._connections = connections
        self._closed = {"over_client_limit": 0, "idle_for_room": 0}
        self._waits = waits
        self._waits_logged = -_QUEUE_LOG_S  # the first waits are logged at once
        # A bound socket is served as waitress serves its ``sockets`` setting.
        super().__init__(
            app,
            map=connections,
            _sock=sock,
            dispatcher=workers,
            adj=adj,
            sockinfo=sockinfo,
            bind_socket=False,
        )

    def _channels(self) -> list[_Channel]:
        return [c for c in self._connections.values() if isinstance(c, _Channel)]

    def admit(self, channel: _Channel) -> None:
        """Make room for a new connection by the rules of the module's docstring."""
        channels = self._channels()
        self._cap_client(channel.addr[0], channels, time.monotonic())
        if self.adj.connection_limit - len(self._connections) < _SPARE_CONNECTIONS:
            idle = [other for other in channels if other.is_idle()]
            if idle:
                min(idle, key=lambda other: other.last_activity).will_close = True
                self._closed["idle_for_room"] += 1

    def _cap_client(self, address: str, channels: list[_Channel], now: float) -> None:
        """Close the oldest connections of ``address`` that hold places beyond its cap."""
        holding = [c for c in channels if c.addr[0] == address and c.is_holding(now)]
        extra = len(holding) - self.limits.connections_per_client
        for other in sorted(holding, key=lambda c: c.accepted)[: max(extra, 0)]:
            other.will_close = True
            self._closed["over_client_limit"] += 1

    def maintenance(self, now: int) -> None:
        """Close silent connections, late requests and connections beyond a client's cap.

        Silent ones as waitress does; the cap again here for a burst of connections that
        had sent nothing yet when they were admitted. Then log the requests that waited
        for a worker, if the last such line is a minute old.
        """
        super().maintenance(now)
        moment = time.monotonic()
        self._log_waits(moment)
        cutoff = moment - self.limits.request_timeout_s
        late = 0
        channels = self._channels()
        for channel in channels:
            began = channel.request_began()
            if began is not None and began < cutoff:
                channel.will_close = True
                late += 1
        for address in {c.addr[0] for c in channels if not c.will_close}:
            self._cap_client(address, [c for c in channels if not c.will_close], moment)
        if late or any(self._closed.values()):
            logger.info(
                "http connections closed late_requests=%d over_client_limit=%d idle_for_room=%d",
                late,
                self._closed["over_client_limit"],
                self._closed["idle_for_room"],
            )
            self._closed = dict.fromkeys(self._closed, 0)

    def _log_waits(self, moment: float) -> None:
        if moment - self._waits_logged < _QUEUE_LOG_S:
            return
        waits, deepest = self._waits.take()
        if waits:
            logger.warning(
                "http requests waited for a worker waits=%d deepest_queue=%d threads=%d",
                waits,
                deepest,
                self.adj.threads,
            )
            self._waits_logged = moment


class HttpServer:
    """A running waitress server; see :func:`start_server`."""

    def __init__(
        self,
        server: waitress.server.BaseWSGIServer,
        connections: dict[int, socket.socket],
        listen: str,
    ) -> None:
        self._server = server
        self._connections = connections
        self._stopping = threading.Event()
        self.listen = listen
        """Where it listens, as ``host:port`` (an IPv6 host in brackets)."""
        self._thread = threading.Thread(target=self._run, name="mailopsd-http", daemon=True)

    def start(self) -> None:
        """Start the I/O loop's thread (done by :func:`start_server`)."""
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set() and self._connections:
                wasyncore.loop(timeout=_POLL_S, use_poll=True, map=self._connections, count=1)
        except Exception:
            logger.exception("http server stopped by an error listen=%s", self.listen)
        finally:
            self._close_all()

    def _close_all(self) -> None:
        _close_all(self._connections)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, drop the open connections and wait for the worker threads."""
        self._stopping.set()
        if self._thread.is_alive():
            try:
                self._server.pull_trigger()  # wake the loop out of its poll
            except OSError as err:
                logger.debug("http server wake-up failed error=%s", err)
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("http server thread still running after %ss", timeout_s)
        else:
            self._close_all()
        self._server.task_dispatcher.shutdown(timeout=int(max(timeout_s, 1)))


def _close_all(connections: dict[int, socket.socket]) -> None:
    """Close everything in a server's map.

    The map holds waitress's dispatchers (listening socket, connections, the wake-up
    pipe), each with a ``close``; a connection's ``handle_close`` also wakes a worker
    waiting to write to it.
    """
    for dispatcher in list(connections.values()):
        # A connection's handle_close; the listening socket's would log a warning.
        close = dispatcher.handle_close if isinstance(dispatcher, HTTPChannel) else dispatcher.close
        try:
            close()
        except OSError as err:
            logger.debug("http connection close failed error=%s", err)
    connections.clear()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``: the first address a host name resolves to.

    Only the first address is taken, so that exactly one socket is bound. The daemon
    binds it and the HTTP process serves it (see :mod:`mailopsd.http.process`): a bind
    failure is the daemon's to report, and the socket outlives a restart of the process.

    Raises:
        OSError: The address cannot be bound (in use, not an address of this machine).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def listen_address(sock: socket.socket) -> str:
    """Where a bound socket listens, as ``host:port`` (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def start_server(
    app: WSGIApplication,
    *,
    sock: socket.socket,
    threads: int = 1,
    limits: ClientLimits = ClientLimits(),  # frozen: one shared value is safe
) -> HttpServer:
    """Serve ``app`` on ``sock`` (from :func:`bind`) on background threads.

    Args:
        app: The WSGI application.
        sock: The listening socket; the server closes it when it stops.
        threads: How many worker threads run the application.
        limits: How long a request may take to arrive and how many waiting
            connections one client may hold.

    Returns:
        The running server.
    """
    connections: dict[int, socket.socket] = {}
    listen = listen_address(sock)
    host, port = sock.getsockname()[:2]
    adj = Adjustments(
        listen=listen,
        threads=threads,
        max_request_body_size=HOOK_MAX_BYTES,
        max_request_header_size=_MAX_HEADER_BYTES,
        channel_timeout=_CHANNEL_TIMEOUT_S,
        connection_limit=_MAX_CONNECTIONS,
        cleanup_interval=_SWEEP_S,
        backlog=_BACKLOG,
        ident="mailopsd",
    )
    workers = ThreadedTaskDispatcher()
    waits = _QueueWaits()
    workers.queue_logger = waits
    server = _Server(
        app,
        connections=connections,
        workers=workers,
        adj=adj,
        sock=sock,
        sockinfo=(sock.family, sock.type, sock.proto, (str(host), int(port))),
        limits=limits,
        waits=waits,
    )
    workers.set_thread_count(threads)
    running = HttpServer(server, connections, listen)
    running.start()
    return running

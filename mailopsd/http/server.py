"""The HTTP server's lifecycle: waitress on its own threads, started and stopped by the daemon.

waitress reads and buffers each request on one I/O thread (so a slow client holds no
worker) and runs the application on a small pool of worker threads; neither is the
daemon's main thread, so nothing here ever stalls dispatching. Exactly one socket is
bound: on the configured address, or the first address a host name resolves to (port
0 takes a free port, whose number :attr:`HttpServer.port` tells). waitress has no stop
call of its own: the I/O
loop runs here one poll at a time, and on :meth:`HttpServer.stop` it closes the
listening socket and every connection on its own thread, then the workers are shut
down.
"""

from __future__ import annotations

import logging
import socket
import threading
from wsgiref.types import WSGIApplication

import waitress.server
from waitress import wasyncore
from waitress.task import ThreadedTaskDispatcher

from mailopsd.http.app import MAX_BODY_BYTES

__all__ = ["HttpServer", "start_server"]

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 32 * 1024  # a click token holds its URL: room for long links
_CHANNEL_TIMEOUT_S = 30
_POLL_S = 0.5


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

    @property
    def port(self) -> int:
        """The port it listens on (the one taken, when the config said 0)."""
        return int(self.listen.rpartition(":")[2])

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
        logger.info("http server stopped listen=%s", self.listen)


def _close_all(connections: dict[int, socket.socket]) -> None:
    """Close everything in a server's map.

    The map holds waitress's dispatchers (listening socket, connections, the wake-up
    pipe), each with a ``close``; a connection's ``handle_close`` also wakes a worker
    waiting to write to it.
    """
    for dispatcher in list(connections.values()):
        close = getattr(dispatcher, "handle_close", dispatcher.close)
        try:
            close()
        except OSError as err:
            logger.debug("http connection close failed error=%s", err)
    connections.clear()


def _numeric_listen(host: str, port: int) -> str:
    """``host:port`` with the host's first address, so that exactly one socket is bound."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def start_server(app: WSGIApplication, *, host: str, port: int, threads: int = 1) -> HttpServer:
    """Bind ``host:port`` and serve ``app`` there on background threads.

    Args:
        app: The WSGI application.
        host: The address (or name) to listen on.
        port: The port; 0 takes a free one.
        threads: How many worker threads run the application. One, by default: the
            requests are short and waitress reads and writes the sockets itself, so
            more workers only contend with the dispatcher for the interpreter (measured
            with ``python -m bench http``: with 4 workers sending fell to 0.42 to 0.53 of
            its quiet pace and the server answered 430 to 600 requests/s; with 1, 0.80
            and 1,000 requests/s).

    Returns:
        The running server.

    Raises:
        OSError: The address cannot be bound (in use, not an address of this machine).
    """
    connections: dict[int, socket.socket] = {}
    # The workers start only once the address is bound: a bind that fails leaves no thread.
    workers = ThreadedTaskDispatcher()
    try:
        server = waitress.server.create_server(
            app,
            map=connections,
            _dispatcher=workers,
            listen=_numeric_listen(host, port),
            threads=threads,
            max_request_body_size=MAX_BODY_BYTES,
            max_request_header_size=_MAX_HEADER_BYTES,
            channel_timeout=_CHANNEL_TIMEOUT_S,
            ident="mailopsd",
        )
    except OSError:
        _close_all(connections)  # what waitress opened before the bind failed
        raise
    if not isinstance(server, waitress.server.BaseWSGIServer) or server.socket is None:
        raise TypeError("waitress made a multi-socket server for one address")
    workers.set_thread_count(threads)
    running = HttpServer(server, connections, _address(server.socket))
    running.start()
    logger.info("http server listening listen=%s threads=%d", running.listen, threads)
    return running

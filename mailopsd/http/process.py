"""The HTTP process: the daemon's HTTP server, in a process of its own.

``python -m mailopsd.http.process`` is started by the daemon (never by hand), so that
serving the links put into messages never takes the interpreter from sending: waitress
parsing requests and the ledger writes of opens and clicks run here, on the other
core, at a lower priority than the daemon's (:data:`NICENESS`), so that a busy server
does not take the CPU from the sender either. Measured with ``python -m bench http``
(see ``docs/benchmarks.md``).

The daemon binds the listening socket and passes it in (``--socket-fd``), with one end
of a socket pair (``--channel-fd``) that carries the frames of :mod:`mailopsd.http.wire`.
This process answers the links and ``/healthz`` itself, from the signing key the daemon
sends and the ledger it opens; it hands ``/readyz``, ``/metrics`` and the API to the
daemon, which holds the config and the state they read. It holds no SMTP password and
no age key: the daemon sends it nothing but the signing key. Its log lines go to the
daemon, which writes them with its own.

It stops when the daemon closes its end of the pair (or dies), and on SIGTERM; it
ignores SIGINT, which a terminal sends to the whole process group: the daemon decides.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NoReturn
from wsgiref.types import StartResponse, WSGIEnvironment

from mailopsd.http import wire
from mailopsd.http.app import LinkApp, Response, Site, is_api_write, needs_daemon, write
from mailopsd.http.counts import BatchedCounts
from mailopsd.http.ledgers import ThreadLedgers
from mailopsd.http.server import ClientLimits, start_server

__all__ = ["main"]

logger = logging.getLogger(__name__)

_TEXT = "text/plain; charset=utf-8"

ASK_TIMEOUT_S = 30.0
"""How long a request handed to the daemon waits for its answer before a 503."""

WRITE_TIMEOUT_S = 180.0
"""The same for an API write, which the daemon answers once its commit is pushed and
applied (or after its own wait, with a 202)."""

NICENESS = 10
"""How far below the daemon's the scheduling priority of this process' threads is set
(the nice value added), but for the writer of opens and clicks. With both busy on the
same core the sender gets about nine tenths of it; an idle core is the server's whole
(``python -m bench http``: see ``docs/benchmarks.md``)."""


class _ChannelHandler(logging.Handler):
    """Sends each log record to the daemon, which writes it with its own lines."""

    def __init__(self, channel: wire.Channel) -> None:
        super().__init__(logging.INFO)
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        try:
            self._channel.send({"log": record.name, "level": record.levelno, "message": message})
        except OSError:
            # The daemon is gone (it is stopping): stderr is the journal's all the same.
            print(f"{record.levelname.lower()} {record.name}: {message}", file=sys.stderr)


class _Asked:
    """One request handed to the daemon, waiting for its answer frame."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: wire.Frame | None = None


class Front:
    """The WSGI application of this process, and its side of the channel."""

    def __init__(
        self,
        channel: wire.Channel,
        ledgers: ThreadLedgers,
        counts: BatchedCounts,
        *,
        wall_clock: bool,
    ) -> None:
        self._channel = channel
        self._wall_clock = wall_clock
        self._ledgers = ledgers
        self._key: str | None = None
        self._keyed = threading.Event()
        self._asked: dict[int, _Asked] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.app = LinkApp(
            Site(
                signing_key=lambda: self._key,
                not_ready=_daemon_answers,
                ledger=ledgers.get,
                clock=self.now,
                loaded=_daemon_answers,
                state=_daemon_answers,
                reloads=_daemon_answers,
                polls=_daemon_answers,
            ),
            counts.add,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (PEP 3333): here, or by the daemon."""
        response = self._ask(environ) if needs_daemon(environ) else self.app.respond(environ)
        return write(response, environ, start_response)

    def now(self) -> datetime:
        """The daemon's time: the wall clock, unless the daemon runs on a clock of its own."""
        if self._wall_clock:
            return datetime.now(UTC)
        frame = self._call(lambda ask: {"now": ask})
        if frame is None:
            raise OSError("the daemon did not tell the time")
        return wire.time_from(frame)

    def _ask(self, environ: WSGIEnvironment) -> Response:
        timeout_s = WRITE_TIMEOUT_S if is_api_write(environ) else ASK_TIMEOUT_S
        frame = self._call(lambda ask: wire.request_frame(ask, environ), timeout_s)
        if frame is None:
            return Response("503 Service Unavailable", b"unavailable, try again later\n", _TEXT)
        try:
            return wire.response_from(frame)
        except wire.WireError as err:
            logger.error("http answer from the daemon unreadable error=%s", err)
            return Response("502 Bad Gateway", b"unavailable, try again later\n", _TEXT)

    def _call(
        self, frame: Callable[[int], wire.Frame], timeout_s: float = ASK_TIMEOUT_S
    ) -> wire.Frame | None:
        """Send a frame with a fresh id and wait for the daemon's frame with that id."""
        asked = _Asked()
        with self._lock:
            ask = next(self._ids)
            self._asked[ask] = asked
        try:
            self._channel.send(frame(ask))
            asked.done.wait(timeout_s)
        except OSError:
            pass
        finally:
            with self._lock:
                self._asked.pop(ask, None)
        return asked.frame

    def wait_for_key(self, done: threading.Event) -> None:
        """Return once the daemon has sent the signing key (its first frame), or ``done``."""
        while not self._keyed.wait(0.5) and not done.is_set():
            pass

    def read(self, done: threading.Event) -> None:
        """Read the daemon's frames until it closes its end, then set ``done``."""
        while True:
            try:
                frame = self._channel.receive()
            except (EOFError, OSError, wire.WireError):
                break
            self._take(frame)
        with self._lock:  # the daemon is gone: what waits for it is answered 503 now
            for asked in self._asked.values():
                asked.done.set()
        self._keyed.set()
        done.set()

    def _take(self, frame: wire.Frame) -> None:
        if "key" in frame:
            address = frame.get("ledger")
            if isinstance(address, str):
                self._ledgers.use_address(address)
            key = frame["key"]
            self._key = key if isinstance(key, str) else None
            self._keyed.set()
            with contextlib.suppress(OSError):  # the daemon is stopping
                self._channel.send({"keyed": True})
            return
        ask = frame.get("answer", frame.get("now"))
        with self._lock:
            asked = self._asked.get(ask) if isinstance(ask, int) else None
        if asked is not None:
            asked.frame = frame
            asked.done.set()


def _daemon_answers() -> NoReturn:
    raise RuntimeError("the daemon answers this, not the HTTP process")


def _lower_priority() -> None:
    """Lower the priority of the calling thread, and so of the threads it starts, by ``NICENESS``.

    On Linux a nice value belongs to a thread, and a new thread starts with its
    creator's: called after :class:`BatchedCounts` has started its writer, it leaves
    that thread at the daemon's priority. The writer holds the ledger's write lock while
    it writes, and the sender waits for that lock: a writer at a low priority would be
    the one thread the sender waits for that gets the CPU last.
    """
    try:
        os.nice(NICENESS)
    except OSError as err:  # a nice value can always be raised on Linux; elsewhere, serve as is
        logger.warning("http process priority not lowered error=%s", err)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mailopsd.http.process")
    parser.add_argument("--socket-fd", type=int, required=True)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--connections-per-client", type=int, default=10)
    parser.add_argument("--wall-clock", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until the daemon closes the channel or SIGTERM comes; the exit status."""
    args = _arguments(argv)
    channel = wire.Channel(Connection(args.channel_fd))
    root = logging.getLogger()
    root.handlers[:] = [_ChannelHandler(channel)]
    root.setLevel(logging.INFO)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ledgers = ThreadLedgers(args.state_dir)
    counts = BatchedCounts(ledgers)
    _lower_priority()
    front = Front(channel, ledgers, counts, wall_clock=args.wall_clock)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: done.set())
    reader = threading.Thread(
        target=front.read, args=(done,), name="mailopsd-http-channel", daemon=True
    )
    reader.start()
    front.wait_for_key(done)
    if done.is_set():
        return 0
    limits = ClientLimits(
        request_timeout_s=args.request_timeout,
        connections_per_client=args.connections_per_client,
    )
    server = start_server(
        front,
        sock=socket.socket(fileno=args.socket_fd),
        threads=args.threads,
        limits=limits,
    )
    while not done.wait(1.0):  # a timeout, so that SIGTERM's handler runs at once
        pass
    server.stop()
    counts.close()
    ledgers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

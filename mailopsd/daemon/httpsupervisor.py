"""The HTTP server's supervisor: it binds, starts, restarts and stops the HTTP process.

With an ``http`` section, the serving daemon (never a ``run --once``) binds
``http.listen`` and runs the HTTP server in a process of its own
(:mod:`mailopsd.http.process`), so that serving links never takes the interpreter from
sending. The daemon answers what that process hands it (``/readyz``, ``/metrics``,
the API) on a thread of its own, from the config and the state in its memory, and sends
it the signing key at the start and at each reload.

A reload starts a new process only when ``http.listen`` or a limit on clients changed;
otherwise the process gets the new signing key in place. A process that exits on its
own is logged and started again on the same socket (connections wait in the socket's
backlog meanwhile), after 1 s, 2 s, … when it keeps exiting soon after its start. At a
start, an address in use is tried again for up to 2 s (a killed daemon's HTTP process
lets go of it a moment later). An address that cannot be bound is logged, once while
the address and the error stay the same, and tried again at the next reload; sending
goes on meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import Pipe
from pathlib import Path

import mailopsd
from mailopsd.backoff import HTTP_PROCESS
from mailopsd.config.models import Http
from mailopsd.http import wire
from mailopsd.http.app import LinkApp, Response, Site, is_api_write
from mailopsd.http.ledgers import ThreadLedgers
from mailopsd.http.server import ClientLimits, bind, listen_address
from mailopsd.state import place
from mailopsd.state.errors import StorageError

__all__ = ["HttpSupervisor"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

SiteFactory = Callable[[ThreadLedgers], Site]

THREADS = 2
"""The HTTP process' worker threads: a request handed to the daemon holds one meanwhile,
and the other answers the links. More answer more requests and leave the sender less
CPU (``python -m bench http``: 1, 2, 4 workers sent at 0.61, 0.53-0.56, 0.48-0.51 of the
quiet pace, answering 2,200, 2,450-2,620, 3,100 requests/s)."""

WRITES_WAITING = 8
"""API writes that may wait for the one before them to be committed; more get a 503."""

_TEXT = "text/plain; charset=utf-8"
_STOP_WAIT_S = 5.0
_START_PATIENCE_S = 2.0
_STEADY_S = 30.0  # a process that ran this long before exiting starts again at once
# What the HTTP process must not inherit: the service manager's sockets and the
# age key's places. It reads neither, and holds only what the daemon sends it.
_WITHHELD = frozenset(
    {
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "CREDENTIALS_DIRECTORY",
        "MAILOPSD_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
    }
)


@dataclass(frozen=True)
class _Shape:
    """What a running server was started with: a change of either starts a new one."""

    listen: str
    limits: ClientLimits


class HttpSupervisor:
    """The daemon's HTTP server, while it is wanted and the config has an ``http`` section."""

    def __init__(
        self,
        state_dir: Path,
        site: SiteFactory,
        clock: Callable[[], datetime],
        *,
        wall_clock: bool,
        environment: Mapping[str, str],
    ) -> None:
        """Nothing runs until :meth:`start`.

        Args:
            state_dir: The state directory, whose ledger the server reads and writes.
            site: What the daemon answers from, given the connections of its answering thread.
            clock: The daemon's clock (a ``datetime`` each call).
            wall_clock: The clock is the wall clock, which the HTTP process reads itself;
                otherwise it asks the daemon for the time (tests, simulated days).
            environment: The daemon's environment, which the HTTP process gets less
                ``_WITHHELD``.
        """
        self._environment = environment
        self._state_dir = state_dir
        self._site = site
        self._clock = clock
        self._wall_clock = wall_clock
        self._wanted = False
        self._serving: _Serving | None = None
        self._error: str | None = None  # the last bind failure logged

    @property
    def listen(self) -> str | None:
        """Where the server listens (``host:port``, the real port), if it runs."""
        return self._serving.listen if self._serving is not None else None

    @property
    def pid(self) -> int | None:
        """The HTTP process' id, while one runs."""
        return self._serving.pid if self._serving is not None else None

    def start(self, http: Http | None) -> None:
        """Run the server from now on, while ``http`` (the config's section) is given.

        At a start, an address in use is tried again for a moment: the HTTP process of
        a daemon just killed lets go of it once it sees its daemon gone.
        """
        self._wanted = True
        self.sync(http, patience_s=_START_PATIENCE_S)

    def close(self) -> None:
        """Stop the server for good."""
        self._wanted = False
        self._stop()

    def sync(self, http: Http | None, *, patience_s: float = 0.0) -> None:
        """Start, restart or stop the server to match the config's ``http`` section now.

        Args:
            http: The config's ``http`` section (``None``: no server).
            patience_s: How long an address in use is tried again before it is reported.
        """
        if not self._wanted or http is None:
            self._stop()
            return
        shape = _Shape(
            http.listen,
            ClientLimits(
                request_timeout_s=http.request_timeout.seconds,
                connections_per_client=http.max_connections_per_client,
            ),
        )
        key = http.signing_key.get_secret_value()
        if self._serving is not None and self._serving.shape == shape:
            self._serving.set_key(key)
            return
        self._stop()
        try:
            sock = _bind_patiently(http, patience_s)
        except OSError as err:
            self._cannot_listen(http, err)
            return
        self._error = None
        ledgers = ThreadLedgers(self._state_dir)
        self._serving = _Serving(
            sock,
            shape,
            key,
            ledgers=ledgers,
            app=LinkApp(self._site(ledgers)),
            command=self._command,
            clock=self._clock,
            environment=_environment(self._environment),
            state_dir=self._state_dir,
        )
        self._serving.start()
        logger.info(
            "http server listening listen=%s threads=%d request_timeout_s=%s "
            "connections_per_client=%d",
            self._serving.listen,
            THREADS,
            shape.limits.request_timeout_s,
            shape.limits.connections_per_client,
        )

    def _cannot_listen(self, http: Http, err: OSError) -> None:
        message = f"{http.listen}: {err.strerror or err}"
        if message != self._error:
            logger.error(
                "http server cannot listen listen=%s error=%s; free the address or change "
                "http.listen: it is tried again at the next reload",
                http.listen,
                err.strerror or err,
            )
        self._error = message

    def _stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()
            logger.info("http server stopped listen=%s", serving.listen)

    def _command(self, sock: socket.socket, channel_fd: int, limits: ClientLimits) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "mailopsd.http.process",
            f"--socket-fd={sock.fileno()}",
            f"--channel-fd={channel_fd}",
            f"--state-dir={self._state_dir}",
            f"--threads={THREADS}",
            f"--request-timeout={limits.request_timeout_s}",
            f"--connections-per-client={limits.connections_per_client}",
        ]
        return [*command, "--wall-clock"] if self._wall_clock else command


@dataclass
class _Process:
    """One HTTP process and the daemon's end of its channel."""

    popen: subprocess.Popen[bytes]
    channel: wire.Channel
    started: float
    keyed: threading.Event = field(default_factory=threading.Event)
    """Set when the process says it has the last signing key sent."""

    def end(self) -> int:
        """Shut the channel down and wait for the process to exit (killed if it lingers)."""
        self.channel.shutdown()
        try:
            return self.popen.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            logger.warning("http process still running after %ss, killed", _STOP_WAIT_S)
            self.popen.kill()
            return self.popen.wait()


class _Serving:
    """One bound address and the HTTP process serving it, started again if it exits."""

    def __init__(
        self,
        sock: socket.socket,
        shape: _Shape,
        key: str,
        *,
        ledgers: ThreadLedgers,
        app: LinkApp,
        command: Callable[[socket.socket, int, ClientLimits], list[str]],
        clock: Callable[[], datetime],
        environment: dict[str, str],
        state_dir: Path,
    ) -> None:
        """Serve ``sock`` (bound); nothing runs until :meth:`start`.

        Args:
            sock: The bound, listening socket; closed by :meth:`stop`.
            shape: What the server is started with.
            key: The signing key now.
            ledgers: The connections of the threads that answer the process.
            app: What answers the requests the process hands over.
            command: The process' command line, given the socket, its end of the
                channel and the limits.
            clock: The daemon's clock, for a process that asks the time.
            environment: The process' environment.
            state_dir: The state directory (whose shared ledger the process is told).
        """
        self._environment = environment
        self._state_dir = state_dir
        self._sock = sock
        self.shape = shape
        self.listen = listen_address(sock)
        self._key = key
        self._ledgers = ledgers
        self._app = app
        self._command = command
        self._clock = clock
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._process: _Process | None = None
        self._threads: list[threading.Thread] = []
        self._failures = 0
        # API writes wait for a push and an apply: answered on a thread of their own, in
        # order, so that reads, /readyz and /metrics are not held up meanwhile.
        self._writes: queue.Queue[tuple[_Process, int, wire.Frame] | None] = queue.Queue(
            WRITES_WAITING
        )
        self._writer = threading.Thread(
            target=self._write, name="mailopsd-http-writes", daemon=True
        )

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.popen.pid if process is not None else None

    def start(self) -> None:
        self._writer.start()
        with self._lock:
            self._spawn()

    def set_key(self, key: str) -> None:
        """Send the process the reloaded config's signing key; return once it has it.

        So a reload is applied to the links when it is logged applied (or after
        ``_STOP_WAIT_S``, if the process does not answer).
        """
        self._key = key
        with self._lock:
            process = self._process
        if process is not None:
            process.keyed.clear()
            self._send(process, {"key": key})
            process.keyed.wait(_STOP_WAIT_S)

    def stop(self) -> None:
        """Stop the process, then close the socket and the answering thread's connections."""
        self._stopped.set()
        with self._lock:
            process, self._process = self._process, None
            threads = list(self._threads)
        if process is not None:
            process.end()
        for thread in threads:
            thread.join(_STOP_WAIT_S)
        self._end_writes()
        if self._writer.is_alive():
            self._writer.join()  # a write under way finishes first (its push is not cut)
        self._sock.close()
        self._ledgers.close()  # after the answering threads are done with them

    def _spawn(self) -> None:
        """Start a process on the socket (the lock held)."""
        ours, theirs = Pipe(duplex=True)
        try:
            popen = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                self._command(self._sock, theirs.fileno(), self.shape.limits),
                pass_fds=(self._sock.fileno(), theirs.fileno()),
                stdin=subprocess.DEVNULL,
                env=self._environment,
            )
        except OSError as err:
            ours.close()
            logger.error("http process cannot start error=%s; sending goes on", err)
            return
        finally:
            theirs.close()
        process = _Process(popen, wire.Channel(ours), time.monotonic())
        self._process = process
        self._send(process, {"key": self._key, "ledger": self._ledger_address()})
        thread = threading.Thread(
            target=self._run, args=(process,), name="mailopsd-http-answers", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _ledger_address(self) -> str | None:
        """The shared ledger's address, password included, for the HTTP process.

        A ledger file's password is decrypted here: the process has no age key.
        """
        try:
            return place.pointed(self._state_dir)
        except StorageError as err:  # the process then says why it has no ledger
            logger.error("http process gets no ledger address error=%s", err)
            return None

    def _send(self, process: _Process, frame: wire.Frame) -> None:
        try:
            process.channel.send(frame)
        except OSError as err:
            logger.debug("http process not reached error=%s", err)

    def _run(self, process: _Process) -> None:
        """Answer the process until it closes the channel; start another if it was not asked to."""
        self._answer(process)
        status = process.end()
        process.channel.close()  # this thread was its only reader
        if self._stopped.is_set():
            return
        steady = time.monotonic() - process.started >= _STEADY_S
        self._failures = 0 if steady else self._failures + 1
        delay = HTTP_PROCESS.delay_s(self._failures) if self._failures else 0.0
        logger.error(
            "http process exited status=%s listen=%s; started again in %gs",
            status,
            self.listen,
            delay,
        )
        if self._stopped.wait(delay):
            return
        with self._lock:
            if not self._stopped.is_set():
                self._spawn()

    def _answer(self, process: _Process) -> None:
        while True:
            try:
                frame = process.channel.receive()
            except (EOFError, OSError):
                return
            except wire.WireError as err:
                logger.error("http process sent an unreadable frame error=%s; stopped", err)
                return
            try:
                self._take(process, frame)
            except wire.WireError as err:
                logger.error("http process sent a bad frame error=%s; stopped", err)
                return

    def _take(self, process: _Process, frame: wire.Frame) -> None:
        if "log" in frame:
            name, level, message = frame["log"], frame.get("level"), frame.get("message")
            if (
                not isinstance(name, str)
                or not isinstance(level, int)
                or not isinstance(message, str)
            ):
                raise wire.WireError("a log frame needs a logger name, a level and a message")
            logging.getLogger(name).log(level, "%s", message)
        elif frame.get("keyed") is True:
            process.keyed.set()
        elif isinstance(ask := frame.get("ask"), int):
            if is_api_write(_request_of(frame)):
                self._queue_write(process, ask, frame)
            else:
                self._send(process, wire.response_frame(ask, self._respond(frame)))
        elif isinstance(now := frame.get("now"), int):
            self._send(process, {"now": now, "at": self._clock().isoformat()})
        else:
            raise wire.WireError("not a frame the HTTP process sends")

    def _queue_write(self, process: _Process, ask: int, frame: wire.Frame) -> None:
        try:
            self._writes.put_nowait((process, ask, frame))
        except queue.Full:
            busy = Response(
                "503 Service Unavailable", b"too many writes waiting, try again\n", _TEXT
            )
            self._send(process, wire.response_frame(ask, busy))

    def _end_writes(self) -> None:
        """Answer the writes still waiting with a 503 (not made), then end the thread."""
        stopping = Response("503 Service Unavailable", b"stopping, try again\n", _TEXT)
        while True:
            try:
                item = self._writes.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                process, ask, _ = item
                self._send(process, wire.response_frame(ask, stopping))
        self._writes.put(None)

    def _write(self) -> None:
        """Answer the API writes, one after another, until :meth:`stop`."""
        while (item := self._writes.get()) is not None:
            process, ask, frame = item
            try:
                response = self._respond(frame)
            except wire.WireError as err:
                logger.error("http process sent a bad frame error=%s", err)
                continue
            self._send(process, wire.response_frame(ask, response))

    def _respond(self, frame: wire.Frame) -> Response:
        environ = wire.environ_from(frame)
        try:
            return self._app.respond(environ)
        except Exception:
            logger.exception("http request failed path=%s", environ.get("PATH_INFO"))
            return Response("500 Internal Server Error", b"internal error\n", _TEXT)


def _request_of(frame: wire.Frame) -> Mapping[str, object]:
    """A request frame's CGI variables (unchecked: enough to route it)."""
    variables = frame.get("environ")
    return variables if isinstance(variables, dict) else {}


def _bind_patiently(http: Http, patience_s: float) -> socket.socket:
    """Bind ``http.listen``, trying an address in use again for up to ``patience_s``.

    Raises:
        OSError: It cannot be bound (still in use after the wait, or any other reason).
    """
    deadline = time.monotonic() + patience_s
    wait_s = 0.05
    while True:
        try:
            return bind(http.listen_host, http.listen_port)
        except OSError as err:
            if err.errno != errno.EADDRINUSE or time.monotonic() + wait_s > deadline:
                raise
        time.sleep(wait_s)
        wait_s *= 2


def _environment(daemon: Mapping[str, str]) -> dict[str, str]:
    """The HTTP process' environment: the daemon's, less ``_WITHHELD``, importing this code."""
    environment = {k: v for k, v in daemon.items() if k not in _WITHHELD}
    root = str(Path(mailopsd.__file__).resolve().parent.parent)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = f"{root}{os.pathsep}{path}" if path else root
    return environment

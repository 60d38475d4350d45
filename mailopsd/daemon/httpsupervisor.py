"""The HTTP server's supervisor: it starts, restarts and stops the server to match the config.

With an ``http`` section, the serving daemon (never a ``run --once``) runs the HTTP
server of :mod:`mailopsd.http` on threads of its own. A reload restarts it only when
``http.listen`` or a limit on clients changed; otherwise the server reads the new config
(signing key included) in place. A server that cannot bind its address is logged, once
while the address and the error stay the same, and tried again at the next reload;
sending goes on meanwhile. Each server has its own ledger connections, closed after its
threads are done with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mailopsd.config.models import Http
from mailopsd.http.app import LinkApp, Site
from mailopsd.http.ledgers import ThreadLedgers
from mailopsd.http.server import ClientLimits, HttpServer, start_server

__all__ = ["HttpSupervisor"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

SiteFactory = Callable[[ThreadLedgers], Site]


class HttpSupervisor:
    """The daemon's HTTP server, while it is wanted and the config has an ``http`` section."""

    def __init__(self, state_dir: Path, site: SiteFactory) -> None:
        """Nothing runs until :meth:`start`.

        Args:
            state_dir: The state directory, whose ledger the server reads and writes.
            site: What the server's application serves, given the server's ledgers.
        """
        self._state_dir = state_dir
        self._site = site
        self._wanted = False
        self._server: HttpServer | None = None
        self._shape: tuple[str, ClientLimits] | None = None  # the running server's
        self._ledgers: ThreadLedgers | None = None  # the running server's connections
        self._error: str | None = None  # the last bind failure logged

    @property
    def listen(self) -> str | None:
        """Where the server listens (``host:port``, the real port), if it runs."""
        return self._server.listen if self._server is not None else None

    def start(self, http: Http | None) -> None:
        """Run the server from now on, while ``http`` (the config's section) is given."""
        self._wanted = True
        self.sync(http)

    def close(self) -> None:
        """Stop the server for good."""
        self._wanted = False
        self._stop()

    def sync(self, http: Http | None) -> None:
        """Start, restart or stop the server to match the config's ``http`` section now."""
        if not self._wanted or http is None:
            self._stop()
            return
        limits = ClientLimits(
            request_timeout_s=http.request_timeout.seconds,
            connections_per_client=http.max_connections_per_client,
        )
        if self._server is not None and self._shape == (http.listen, limits):
            return  # the app reads the new config itself
        self._stop()
        self._serve(http, limits)

    def _serve(self, http: Http, limits: ClientLimits) -> None:
        ledgers = ThreadLedgers(self._state_dir)
        try:
            self._server = start_server(
                LinkApp(self._site(ledgers)),
                host=http.listen_host,
                port=http.listen_port,
                limits=limits,
            )
        except OSError as err:
            ledgers.close()
            self._cannot_listen(http, err)
            return
        self._error = None
        self._ledgers = ledgers
        self._shape = (http.listen, limits)

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
        if self._server is not None:
            self._server.stop()
        if self._ledgers is not None:
            self._ledgers.close()  # after the server's threads are done with them
        self._server = None
        self._ledgers = None
        self._shape = None

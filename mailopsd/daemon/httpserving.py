"""The HTTP server, as the daemon runs it: what it answers from, kept in step with the config.

The HTTP process (:mod:`.httpsupervisor`) hands the daemon what it cannot answer alone
(``/readyz``, ``/metrics``, the API, the dashboard); the daemon answers from a
:class:`~mailopsd.http.app.Site` that reads the config and the state in its memory. The
server starts once the daemon serves, and each config applied starts, restarts or stops
it to match its ``http`` section.

:class:`HttpServing` is a part of the daemon (:class:`~.loop.Daemon`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Http
from mailopsd.daemon.gitside import GitSide
from mailopsd.daemon.httpsupervisor import HttpSupervisor
from mailopsd.daemon.settings import DaemonSettings
from mailopsd.daemon.storage import StoragePause
from mailopsd.http.app import Site
from mailopsd.http.dashboard import board_for
from mailopsd.http.ledgers import ThreadLedgers
from mailopsd.http.metrics import ReloadCounts
from mailopsd.inbox.service import Inbox
from mailopsd.state.statefile import StateFile

__all__ = ["HttpServing"]


class HttpServing:
    """The daemon's part that runs the HTTP server and answers what it hands the daemon."""

    # The daemon's, set in its __init__: declared here so that their use is type-checked.
    settings: DaemonSettings
    state: StateFile
    loaded: LoadedConfig | None
    _http: HttpSupervisor
    _storage: StoragePause
    _reloads: ReloadCounts
    _inbox: Inbox | None
    _git: GitSide | None

    if TYPE_CHECKING:  # the daemon's own, or its other parts'

        def _now(self) -> datetime: ...

        def git_hook(self) -> tuple[bytes, Callable[[], None]] | None:
            """The webhook's secret and what it triggers, when a remote is followed with one."""

    @property
    def http_listen(self) -> str | None:
        """Where the HTTP server listens (``host:port``, the real port), if it runs."""
        return self._http.listen

    @property
    def http_pid(self) -> int | None:
        """The HTTP process' id, while one runs."""
        return self._http.pid

    def start_http(self) -> None:
        """Run the HTTP server while the config has an ``http`` section (after :meth:`start`)."""
        self._http.start(self._http_config())

    def _sync_http(self) -> None:
        """Start, restart or stop the HTTP server to match the config now running."""
        self._http.sync(self._http_config())

    def _http_config(self) -> Http | None:
        return self.loaded.config.http if self.loaded is not None else None

    def _signing_key(self) -> str | None:
        http = self._http_config()
        return http.signing_key.get_secret_value() if http is not None else None

    def _not_ready(self) -> str | None:
        if self.loaded is None:
            return "no config loaded"
        if self._storage.problem is not None:
            return "state directory not writable"
        return None

    def _site(self, ledgers: ThreadLedgers) -> Site:
        return Site(
            signing_key=self._signing_key,
            not_ready=self._not_ready,
            ledger=ledgers.get,
            clock=self.settings.clock,
            loaded=lambda: self.loaded,
            state=lambda: self.state,
            reloads=lambda: self._reloads,
            polls=lambda: self._inbox.poll_stats() if self._inbox is not None else {},
            git_hook=self.git_hook,
            api_writes=lambda: self._git.writes if self._git is not None else None,
            dashboard=lambda: board_for(self.loaded, self.settings.state_dir, self._now()),
        )

"""The daemon on a followed git remote (``run --git``): the commits it runs on.

At start, the daemon fetches the remote and loads from the commit it last applied (the
head, the first time). Then its loop takes in each fetch: it reloads from a new head's
work tree, and goes back to the last one if the commit is refused (see :mod:`.follow`).
What it decided is kept in the state file's ``daemon.git``. The remote's own parts (the
fetching thread, the webhook, the API's writes) are :class:`~.gitside.GitSide`'s.

:class:`GitFollowing` is a part of the daemon (:class:`~.loop.Daemon`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailopsd.config.loader import LoadedConfig
from mailopsd.daemon.apiwrites import DaemonView
from mailopsd.daemon.follow import Applied, GitFollow
from mailopsd.daemon.gitside import GitSide
from mailopsd.daemon.settings import DaemonSettings
from mailopsd.errors import ConfigError
from mailopsd.state.statefile import GitState, StateFile

__all__ = ["GitFollowing"]


class GitFollowing:
    """The daemon's part that starts on a followed remote and runs on its new heads."""

    # The daemon's, set in its __init__: declared here so that their use is type-checked.
    settings: DaemonSettings
    state: StateFile
    loaded: LoadedConfig | None
    _stop: threading.Event
    _wake: threading.Event
    _config_path: Path
    _git: GitSide | None
    _rejection: str
    _standby_config: LoadedConfig | None

    if TYPE_CHECKING:  # the daemon's own, or its other parts'

        def _now(self) -> datetime: ...

        def _save(self) -> None: ...

        def _reload_now(self, *, notify: bool) -> Applied: ...

        def _load(self) -> LoadedConfig: ...

    def _start_following(self, follow: GitFollow, environment: Mapping[str, str]) -> None:
        """Fetch the remote, then load from the applied commit (or the head, the first time).

        Args:
            follow: What to follow.
            environment: The daemon's environment, for git.

        Raises:
            RemoteError: Nothing to start on: never applied here, and the remote cannot be
                fetched (or its head is not signed as required).
        """
        view = DaemonView(
            loaded=lambda: self.loaded,
            git=lambda: self.state.daemon.git,
            clock=self._now,
            load_options=self.settings.load_options,
            stopping=self._stop.is_set,
        )
        side = GitSide(
            follow,
            self.settings.state_dir,
            environment,
            wake=self._wake.set,
            clock=self._now,
            view=view,
        )
        self._config_path, state = side.start(self.state.daemon.git)
        self._git = side
        self._set_git(state)

    def _set_git(self, state: GitState) -> None:
        if state != self.state.daemon.git:
            daemon = self.state.daemon.model_copy(update={"git": state})
            self.state = self.state.model_copy(update={"daemon": daemon})
            self._save()

    def _git_started(self) -> None:
        """After the first apply: the commit the daemon started on is the applied one."""
        state = self.state.daemon.git
        if self._git is not None and state is not None:
            self._set_git(self._git.started(state))

    def _follow(self) -> None:
        """Take in the last fetch, and run on a new head if it is good."""
        state = self.state.daemon.git
        if self._git is not None and state is not None:
            self._set_git(self._git.following.tick(state, self._run_on))

    def _run_on(self, path: Path) -> tuple[Applied, str]:
        """Reload from ``path`` (a commit's work tree); back to the last path if refused."""
        before, self._config_path = self._config_path, path
        outcome = self._reload_now(notify=True)
        if outcome is not Applied.APPLIED:
            self._config_path = before
        return outcome, self._rejection

    def _follow_standing_by(self) -> None:
        """While standing by on a shared ledger: fetch, and load (not apply) a new head.

        The config loaded is the one the daemon applies if it takes over, and whose
        revision it stands by on (so one behind catches up with the remote).
        """
        state = self.state.daemon.git
        if self._git is not None and state is not None:
            self._git.following.start()
            self._set_git(self._git.following.tick(state, self._load_only))

    def _load_only(self, path: Path) -> tuple[Applied, str]:
        """Load the config from ``path`` without applying it; back to the last if invalid."""
        before, self._config_path = self._config_path, path
        try:
            self._standby_config = self._load()
        except ConfigError as err:
            self._config_path = before
            return Applied.REFUSED, str(err)
        return Applied.APPLIED, ""

    def git_hook(self) -> tuple[bytes, Callable[[], None]] | None:
        """The webhook's secret and what it triggers, when a remote is followed with one."""
        return self._git.hook() if self._git is not None else None

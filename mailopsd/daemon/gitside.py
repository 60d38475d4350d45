"""A followed git remote, whole: the fetches and the commits applied, the webhook, the API's writes.

``run --git`` gives the daemon one :class:`GitSide`: the remote's copy in the state
directory and its fetching thread (:mod:`.follow`), and the write clone through which the
API's writes are committed (:mod:`.apiwrites`). The main loop keeps what it decides in
the state file's ``daemon.git``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from mailopsd.daemon.apiwrites import PUSH_TIMEOUT_S, ApiWrites, DaemonView
from mailopsd.daemon.follow import Following, GitFollow
from mailopsd.remote.repository import Repository
from mailopsd.remote.writer import Writer
from mailopsd.state.statefile import GitState

__all__ = ["GitSide"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")


class GitSide:
    """The remote a daemon follows, and the API's writes to it."""

    def __init__(
        self,
        follow: GitFollow,
        state_dir: Path,
        environment: Mapping[str, str],
        *,
        wake: Callable[[], None],
        clock: Callable[[], datetime],
        view: DaemonView,
    ) -> None:
        """Nothing is fetched until :meth:`start`.

        Args:
            follow: What to follow.
            state_dir: The state directory: the copies go in its ``git/``.
            environment: The daemon's environment, for git.
            wake: Wakes the main loop (after each fetch).
            clock: The daemon's clock.
            view: What an API write reads from the daemon.
        """
        repository = Repository(state_dir / "git", follow.source, environment)
        self.following = Following(follow, repository, wake=wake, clock=clock)
        writer = Writer(
            state_dir / "git" / "write", follow.source, environment, push_timeout_s=PUSH_TIMEOUT_S
        )
        signed = follow.source.allowed_signers is not None
        self.writes = ApiWrites(writer, self.following, view, signed=signed)
        self._follow = follow
        self._clock = clock

    def start(self, known: GitState | None) -> tuple[Path, GitState]:
        """Fetch once; the config path to load first, and the state with the fetch in it.

        Raises:
            RemoteError: Nothing to start on (see :meth:`Following.first_tree`).
        """
        return self.following.first_tree(self.following.fresh_state(known))

    def started(self, state: GitState) -> GitState:
        """After the first apply: the commit the daemon started on is the applied one."""
        if state.applied_commit is not None:
            return state
        head = state.fetched_commit
        logger.info(
            "git commit applied commit=%s remote=%s", (head or "")[:12], self.following.remote
        )
        return state.model_copy(update={"applied_commit": head, "applied_at": self._clock()})

    def hook(self) -> tuple[bytes, Callable[[], None]] | None:
        """The webhook's secret and the fetch it triggers; ``None`` without a secret."""
        secret = self._follow.webhook_secret
        if secret is None:
            return None
        return secret.get_secret_value().encode("utf-8"), self.following.fetch_soon

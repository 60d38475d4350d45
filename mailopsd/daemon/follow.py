"""Following a git remote: the config is a branch, fetched on an interval and on a webhook.

With ``run --git URL``, the daemon keeps a clone in ``<state dir>/git``
(:mod:`mailopsd.remote.repository`) and one work tree there that holds the commit it
runs on. A thread fetches the branch every ``interval_s`` seconds, and at once when
:meth:`Following.fetch_soon` is called (``POST /hooks/git``); it only fetches, and wakes
the main loop. The main loop (:meth:`Following.tick`) then decides, as for a file saved
today: a new head whose signature does not verify (with ``--git-allowed-signers``) is
refused and reported; otherwise the work tree is switched to it and the daemon reloads
from it; a config that is not valid, or cannot be applied, is refused, the work tree
goes back to the applied commit, and the daemon goes on with the last good one. A
refused commit is not tried again; the next one is. A head that rewrote history (a
force-push) is applied like any other commit, and logged.

What was fetched, applied and refused, and why, is kept in the state file's
``daemon.git`` (:class:`mailopsd.state.statefile.GitState`), which ``status`` and
``/metrics`` show; each change is logged once.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from mailopsd.remote.repository import RemoteError, Repository, Source, redact_url
from mailopsd.state.statefile import GitState

__all__ = ["Applied", "Following", "GitFollow"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class GitFollow:
    """What ``run --git`` follows, and how.

    Attributes:
        source: The remote, branch, config directory and the credentials to reach it.
        interval_s: Seconds between two fetches (a webhook fetches at once).
        webhook_secret: The shared secret of ``POST /hooks/git`` (HMAC-SHA256 of the
            body); without it the path answers 404.
    """

    source: Source
    interval_s: float = 60.0
    webhook_secret: SecretStr | None = None


class Applied(enum.Enum):
    """What became of a commit the daemon tried to run on."""

    APPLIED = "applied"
    REFUSED = "refused"
    """Not valid, or could not be applied: the last good config goes on."""
    LATER = "later"
    """Not tried: the work is paused (the state directory takes no writes)."""


@dataclass(frozen=True)
class _Fetch:
    """One fetch's outcome, as the thread saw it."""

    serial: int
    at: datetime
    commit: str | None = None
    previous: str | None = None
    rewritten: bool = False
    error: str | None = None


class Following:
    """The remote the daemon follows: the fetching thread and the main loop's decisions."""

    def __init__(
        self,
        follow: GitFollow,
        repository: Repository,
        *,
        wake: Callable[[], None],
        clock: Clock,
    ) -> None:
        """Nothing is fetched until :meth:`first_tree`.

        Args:
            follow: What to follow.
            repository: The clone in the state directory.
            wake: Wakes the main loop (after each fetch).
            clock: The daemon's clock.
        """
        self.follow = follow
        self._repository = repository
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._soon = threading.Event()
        self._stop = threading.Event()
        self._last = _Fetch(0, clock())
        self._seen = 0  # the serial of the last fetch the main loop took in
        self._thread: threading.Thread | None = None

    @property
    def remote(self) -> str:
        """The remote's URL as shown: any password in it removed."""
        return redact_url(self.follow.source.url)

    def fresh_state(self, known: GitState | None) -> GitState:
        """The state to start from: ``known`` when it is of this remote, branch and path."""
        source = self.follow.source
        mine = GitState(remote=self.remote, branch=source.branch, path=source.path)
        if known is None or (known.remote, known.branch, known.path) != (
            mine.remote,
            mine.branch,
            mine.path,
        ):
            return mine
        return known

    def in_repository(self, file: str) -> str:
        """A file of the work tree named as in the repository (``mailops/c.yaml``)."""
        tree = f"{self._repository.work_tree}/"
        return file.removeprefix(tree)

    def first_tree(self, state: GitState) -> tuple[Path, GitState]:
        """Fetch once, then switch the work tree to the commit to start on.

        That is the applied commit when there is one (a new head is then tried by the
        first :meth:`tick`, as it would be later), else the fetched head.

        Returns:
            The config path in the work tree, and the state with the fetch in it.

        Raises:
            RemoteError: Nothing can be started on: no commit applied before, and the
                remote cannot be fetched, or its head is not signed as required, or
                cannot be checked out.
        """
        self._fetch()
        failed = self._last.error
        if failed is not None and state.applied_commit is None:
            raise RemoteError(failed)  # the daemon does not start: the error says why
        state = self._took(state)
        if state.applied_commit is not None:
            try:
                return self._repository.switch(state.applied_commit), state
            except RemoteError as err:  # the local copy was removed or damaged
                logger.warning("git applied commit not at hand, starting on the head: %s", err)
                state = state.model_copy(update={"applied_commit": None, "applied_at": None})
        start = state.fetched_commit
        if start is None:
            raise RemoteError(state.fetch_error or f"{self.remote}: nothing fetched")
        reason = self._repository.verify(start)
        if reason is not None:
            raise RemoteError(f"{reason}, and no commit was applied before")
        return self._repository.switch(start), state

    def start(self) -> None:
        """Start the fetching thread (after the first fetch), unless it runs already."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mailopsd-git", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the fetching thread (a fetch under way is waited for, up to its timeout)."""
        self._stop.set()
        self._soon.set()
        if self._thread is not None:
            self._thread.join()

    def includes(self, applied: str, commit: str) -> bool:
        """Whether the applied commit is ``commit`` or has it in its history."""
        return applied == commit or self._repository.is_ancestor(commit, applied)

    def fetch_soon(self) -> None:
        """Fetch now, not at the next interval (the webhook); calls in a burst make one fetch."""
        self._soon.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._soon.wait(self.follow.interval_s)
            self._soon.clear()
            if self._stop.is_set():
                return
            self._fetch()
            self._wake()

    def _fetch(self) -> None:
        serial = self._last.serial + 1
        try:
            fetched = self._repository.fetch()
        except RemoteError as err:
            outcome = _Fetch(serial, self._clock(), error=str(err))
        else:
            outcome = _Fetch(
                serial, self._clock(), fetched.commit, fetched.previous, fetched.rewritten
            )
        with self._lock:
            self._last = outcome

    def tick(self, state: GitState, apply: Callable[[Path], tuple[Applied, str]]) -> GitState:
        """Take in the last fetch and try a new head; the state with what happened.

        Args:
            state: The state file's ``daemon.git`` now.
            apply: Reloads the daemon from a config path; what became of it, and why
                when it was refused.
        """
        state = self._took(state)
        head = state.fetched_commit
        if head is None or head in (state.applied_commit, state.refused_commit):
            return state
        reason = self._repository.verify(head)
        if reason is None:
            reason = self._try(head, apply)
            if reason is None:
                logger.info("git commit applied commit=%s remote=%s", head[:12], self.remote)
                return state.model_copy(
                    update={"applied_commit": head, "applied_at": self._clock()}
                )
            if reason == "":
                return state  # tried again at the next tick
        logger.error(
            "git commit not applied commit=%s: %s; running on commit %s",
            head[:12],
            reason,
            (state.applied_commit or "none")[:12],
        )
        return state.model_copy(update={"refused_commit": head, "refused_reason": reason})

    def _try(self, head: str, apply: Callable[[Path], tuple[Applied, str]]) -> str | None:
        """Run on ``head``: ``None`` once applied, ``""`` to try later, else why not."""
        applied = self._repository.current()
        try:
            path = self._repository.switch(head)
        except RemoteError as err:
            return str(err)
        outcome, reason = apply(path)
        if outcome is Applied.APPLIED:
            return None
        if applied is not None:
            self._repository.switch(applied)  # the work tree holds what runs
        return "" if outcome is Applied.LATER else reason

    def _took(self, state: GitState) -> GitState:
        """The state with the last fetch taken in (each fetch's news logged once)."""
        with self._lock:
            last = self._last
        if last.serial == self._seen:
            return state
        self._seen = last.serial
        if last.error is not None:
            if state.fetch_error != last.error:
                logger.error(
                    "git fetch failed remote=%s error=%s; running on commit %s, fetched "
                    "again in %gs",
                    self.remote,
                    last.error,
                    (state.applied_commit or "none")[:12],
                    self.follow.interval_s,
                )
            since = state.fetch_error_since if state.fetch_error is not None else last.at
            return state.model_copy(update={"fetch_error": last.error, "fetch_error_since": since})
        if state.fetch_error is not None:
            logger.info("git fetch works again remote=%s", self.remote)
        if last.rewritten:
            logger.warning(
                "git history rewritten remote=%s branch=%s from=%s to=%s: a force-push; the "
                "new head is applied like any other commit",
                self.remote,
                self.follow.source.branch,
                (last.previous or "")[:12],
                (last.commit or "")[:12],
            )
        if last.commit != state.fetched_commit:
            logger.info("git fetched commit=%s remote=%s", (last.commit or "")[:12], self.remote)
        return state.model_copy(
            update={
                "fetched_commit": last.commit,
                "fetched_at": last.at,
                "fetch_error": None,
                "fetch_error_since": None,
            }
        )

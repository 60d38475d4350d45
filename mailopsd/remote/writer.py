"""The write side of the followed git remote: a change to the config, committed and pushed.

An API write (add a credential, re-enable one...) edits the config's files in a clone of
the daemon's own, ``<directory>/clone``, commits as the API key that asked, and pushes to
the followed branch, or to a review branch. The clone is separate from the read side's
copy (:mod:`mailopsd.remote.repository`), so a write never touches the tree the daemon
runs on; like it, the clone keeps no URL or credential on disk (fetch and push go by URL,
through :mod:`mailopsd.remote.git`).

Each change starts from the remote's head exactly: whatever a failed write or a crash
left in the clone (edited files, a commit never pushed, a half-done rebase, a stale
``index.lock``) is dropped first. A commit made but not pushed is therefore never pushed
later: the caller sends its request again, and the remote gets the change once. A push
never forces: if another push came first, the one commit is rebased onto the new head,
checked again and pushed again (at most :data:`PUSH_ATTEMPTS` pushes); a rebase that
conflicts is a :class:`Conflict`. Nothing is ever merged.

Changes are serialised by a lock of the :class:`Writer` (threads) and an ``flock`` on
``<directory>/write.lock`` (processes: two daemons, or a daemon and the CLI).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailopsd.remote.git import Git, Outcome, RemoteError, Source, last_line

__all__ = ["Author", "Conflict", "Pushed", "Writer"]

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 60.0
PUSH_ATTEMPTS = 3
HEAD_REF = "refs/mailopsd/head"
LOCK_NAME = "write.lock"

# What a daemon's own ~/.gitconfig must not change in these commits: no hooks run, no
# signing is attempted, no recorded resolution settles a conflict, no gc outlives the
# command, files are committed as written, and no submodule is fetched (nor its URL
# reached with our credentials).
_PINNED = (
    *("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false"),
    *("-c", "rerere.enabled=false", "-c", "gc.autoDetach=false", "-c", "core.autocrlf=false"),
    *("-c", "rebase.autoStash=false", "-c", "fetch.recurseSubmodules=false"),
)
# `git push --porcelain` reasons for a rejection because the branch moved, and for a
# push refused because another push held the branch's lock at that moment.
_MOVED = ("(fetch first)", "(non-fast-forward)")
_LOCKED = ("(failed to update ref)", "(cannot lock ref")
_REBASE_STATES = ("rebase-merge", "rebase-apply")
_DISK_HINT = "check the free space and permissions of the state directory"
_PUSH_HINT = "check that the credentials may push to the branch"


@dataclass(frozen=True)
class Author:
    """Who a change is committed as (author and committer): the API key that asked.

    Attributes:
        name: The API key's name, e.g. ``ci-bot``.
        email: Its address, e.g. ``ci-bot@mailopsd.invalid``.

    Raises:
        ValueError: A part is empty or holds ``<``, ``>`` or a line break (git would
            change it).
    """

    name: str
    email: str

    def __post_init__(self) -> None:
        for part in (self.name, self.email):
            if not part.strip() or any(char in part for char in "<>\n\r\0"):
                raise ValueError(f"not a valid commit author part: {part[:80]!r}")


@dataclass(frozen=True)
class Pushed:
    """A change the remote now has.

    Attributes:
        commit: The full sha now at the branch (the head as found, if nothing changed).
        branch: The branch pushed to (the source's, or the review branch).
        rebased_onto: The remote head the change was rebased onto, when another push
            came first (``None`` otherwise).
    """

    commit: str
    branch: str
    rebased_onto: str | None


class Conflict(RemoteError):  # noqa: N818 - the API answers it as HTTP 409 Conflict
    """The change cannot be rebased onto what another push put on the branch.

    Attributes:
        commit: The full sha of the remote head the change lost to.
    """

    def __init__(self, message: str, *, commit: str) -> None:
        super().__init__(message)
        self.commit = commit


@dataclass(frozen=True)
class _Change:
    """One call's request, as the push and rebase steps need it."""

    target: str
    author: Author
    check: Callable[[Path], None]
    config: Path


class Writer:
    """Changes the config by commits pushed to the followed remote.

    Args:
        directory: Where the write clone lives (``<state dir>/git/write``), created on
            first use (0700).
        source: The remote followed: its URL, branch, config path and credentials.
        environment: The daemon's environment (``HOME``, ``PATH``...), passed to git.
        push_timeout_s: How long one fetch or push may take before it is killed.
    """

    def __init__(
        self,
        directory: Path,
        source: Source,
        environment: Mapping[str, str],
        *,
        push_timeout_s: float = PUSH_TIMEOUT_S,
    ) -> None:
        self._directory = directory
        self._clone = directory / "clone"
        self._source = source
        self._push_timeout_s = push_timeout_s
        self._runner = Git(source, environment)
        self._url = self._runner.url
        self._lock = threading.Lock()

    def change(
        self,
        edit: Callable[[Path], None],
        *,
        author: Author,
        message: str,
        check: Callable[[Path], None],
        branch: str | None = None,
    ) -> Pushed:
        """Edit the config from the remote's head, check it, commit it and push it.

        Calls are serialised, in this process and with others using ``directory``.

        Args:
            edit: Edits the config's files in place, given the config directory; an
                exception it raises propagates, and nothing is committed.
            author: The author and committer of the commit.
            message: The commit message, kept as given (several lines allowed).
            check: Raises (anything) if the config it is given is not acceptable; called
                after ``edit`` and again after each rebase. Its exception propagates and
                nothing is pushed.
            branch: A review branch to push to instead of the source's branch, which is
                then left alone. The change is made on the source's head; if the review
                branch exists and is not behind it, the change is rebased onto its head.

        Returns:
            The commit now at the branch, the branch, and the head rebased onto if any.
            When the edit changed nothing, the head as found: nothing is committed.

        Raises:
            Conflict: Another push changed the same lines first, or moved the branch
                before each attempt; nothing was pushed.
            RemoteError: git failed (fetch, push, the clone), or a push was refused.
            ValueError: ``message`` is empty or ``branch`` is not a valid branch name.
        """
        target = self._target(branch)
        if not message.strip() or "\0" in message:
            raise ValueError("a commit message must hold text and no NUL character")
        with self._lock, self._locked():
            head = self._start()
            config = self._clone / self._runner.subdirectory(head, where=self._where)
            edit(config)
            check(config)
            if not self._is_changed():
                logger.debug("nothing to push url=%s branch=%s", self._url, target)
                return Pushed(commit=head, branch=target, rebased_onto=None)
            commit = self._commit(author, message)
            return self._push(commit, head, _Change(target, author, check, config))

    def _target(self, branch: str | None) -> str:
        """The branch to push to, checked to be a valid branch name."""
        if branch is None:
            return self._source.branch
        valid = self._runner.run(
            ["check-ref-format", f"refs/heads/{branch}"],
            doing="cannot check a branch name",
            check=False,
        )
        if valid.code != 0:
            raise ValueError(f"not a valid branch name: {branch[:80]!r}")
        return branch

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock file's ``flock``; the kernel drops it if the process dies."""
        path = self._directory / LOCK_NAME
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise RemoteError(f"cannot open the lock file {path}: {err.strerror or err}") from err
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    @property
    def _where(self) -> list[str]:
        # --git-dir: a clone that lost its .git must fail, not let git find a repository
        # in a parent directory and clean that one
        return ["-C", str(self._clone), "--git-dir=.git", "--work-tree=.", *_PINNED]

    def _start(self) -> str:
        """Fetch the source branch's head and make the clone hold exactly it.

        A clone a reset cannot fix (a crash corrupted it) is made again, once.
        """
        self._create()
        self._recover()
        if not self._is_repository():
            self._redo()
        head = self._fetch(self._source.branch)
        if self._reset(head):
            return head
        self._redo()
        head = self._fetch(self._source.branch)
        if not self._reset(head):
            raise RemoteError(
                f"cannot check out commit {head[:12]} of {self._url} in {self._clone}; {_DISK_HINT}"
            )
        return head

    def _redo(self) -> None:
        logger.warning("redoing a broken write clone url=%s clone=%s", self._url, self._clone)
        self._remove(self._clone)
        self._create()

    def _is_repository(self) -> bool:
        return self._git(["rev-parse", "--git-dir"], "", check=False).code == 0

    def _create(self) -> None:
        """Make the clone (an empty repository, filled by fetches), made aside then renamed."""
        if (self._clone / ".git").is_dir():
            return
        doing = f"cannot create a write clone of {self._url} in {self._clone}"
        aside = self._directory / "clone.new"
        self._remove(aside)  # left by a crash
        self._remove(self._clone)  # a directory that lost its .git
        self._runner.run(["init", "--quiet", str(aside)], doing=doing, hint=_DISK_HINT)
        try:
            aside.rename(self._clone)
        except OSError as err:
            raise RemoteError(f"{doing}: {err.strerror or err}") from err

    def _recover(self) -> None:
        """Undo what a process killed amid git left: lock files, a rebase in progress.

        The ``flock`` is held, so no git of ours runs in the clone.
        """
        git_dir = self._clone / ".git"
        for lock in [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]:
            logger.warning("removing a lock file left by a crash path=%s", lock)
            self._remove(lock)
        if not self._is_rebasing():
            return
        logger.warning("aborting a rebase left by a crash clone=%s", self._clone)
        for way in ("--abort", "--quit"):
            if self._is_rebasing():
                self._git(["rebase", way], doing="", check=False)
        for state in _REBASE_STATES:
            self._remove(git_dir / state)

    def _is_rebasing(self) -> bool:
        return any((self._clone / ".git" / state).exists() for state in _REBASE_STATES)

    def _reset(self, head: str) -> bool:
        """Make the clone hold exactly ``head``, detached; whether it does."""
        doing = f"cannot reset the write clone {self._clone}"
        moved = self._git(["checkout", "--quiet", "--force", "--detach", head], doing, check=False)
        if moved.code != 0:
            return False
        # -f twice: a directory an edit made into a repository goes too
        self._git(["clean", "-q", "-f", "-f", "-d", "-x"], doing, check=False)
        now = self._git(["rev-parse", "HEAD"], doing, check=False)
        return now.code == 0 and now.out.strip() == head and not self._is_changed()

    def _is_changed(self) -> bool:
        """Whether the clone differs from its head (files changed, added or removed)."""
        doing = f"cannot read the state of the write clone {self._clone}"
        status = self._git(["status", "--porcelain", "--untracked-files=all"], doing)
        return bool(status.out.strip())

    def _commit(self, author: Author, message: str) -> str:
        """Commit every change in the clone as ``author``; the new commit's sha."""
        doing = f"cannot commit a change in the write clone {self._clone}"
        self._git(["add", "--all"], doing, hint=_DISK_HINT)
        self._git(
            [
                *_identity(author),
                *("commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-m", message),
            ],
            doing,
            hint=_DISK_HINT,
            env=self._author_environment(author),
        )
        return self._git(["rev-parse", "HEAD"], doing).out.strip()

    def _push(self, commit: str, base: str, change: _Change) -> Pushed:
        """Push ``commit``; while the branch moved first, rebase, check and push again."""
        target = change.target
        rebased_onto: str | None = None
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            if self._push_once(commit, target):
                logger.info(
                    "pushed change url=%s branch=%s commit=%s author=%s rebased_onto=%s",
                    self._url,
                    target,
                    commit,
                    change.author.name,
                    rebased_onto,
                )
                return Pushed(commit=commit, branch=target, rebased_onto=rebased_onto)
            logger.debug(
                "push rejected, the branch moved url=%s branch=%s attempt=%d",
                self._url,
                target,
                attempt,
            )
            if attempt == PUSH_ATTEMPTS:
                break
            rebased_onto = self._fetch(target)
            commit = self._rebase(onto=rebased_onto, base=base, change=change)
            base = rebased_onto
            change.check(change.config)
            if commit == rebased_onto:  # another push made the same change: it is there
                logger.info("change already pushed url=%s branch=%s", self._url, target)
                return Pushed(commit=commit, branch=target, rebased_onto=rebased_onto)
        head = self._fetch(target)
        raise Conflict(
            f"cannot push a change to branch {target!r} of {self._url}: other pushes came "
            f"first at each of {PUSH_ATTEMPTS} attempts, the last one commit {head[:12]}; "
            "try again",
            commit=head,
        )

    def _push_once(self, commit: str, target: str) -> bool:
        """Push without force: True if pushed, False if the branch moved since the fetch."""
        doing = f"cannot push commit {commit[:12]} to branch {target!r} of {self._url}"
        outcome = self._runner.run_remote(
            [
                *self._where,
                *("push", "--porcelain", "--quiet", "--no-verify", "--no-recurse-submodules"),
                *("--", self._source.url, f"{commit}:refs/heads/{target}"),
            ],
            doing=doing,
            hint=_PUSH_HINT,
            timeout_s=self._push_timeout_s,
            check=False,
        )
        if outcome.code == 0:
            return True
        refused = [line.split("\t") for line in outcome.out.splitlines() if line.startswith("!")]
        summary = refused[0][-1].strip() if refused else ""
        if summary.startswith("[rejected]") and summary.endswith(_MOVED):
            return False
        if summary.startswith("[remote rejected]") and any(lock in summary for lock in _LOCKED):
            return False
        why = self._runner.redact(summary or last_line(outcome.err))
        why = why or f"git exited with status {outcome.code}"
        raise RemoteError(f"{doing}: {why}; {_PUSH_HINT}")

    def _rebase(self, *, onto: str, base: str, change: _Change) -> str:
        """Replay the one commit above ``base`` onto ``onto``; the rebased commit's sha.

        Raises:
            Conflict: It does not apply (the clone is reset to ``onto`` first).
            RemoteError: git failed otherwise.
        """
        doing = f"cannot rebase a change onto commit {onto[:12]} of {self._url}"
        outcome = self._git(
            [*_identity(change.author), "rebase", "--quiet", "--onto", onto, base],
            doing,
            env=self._author_environment(change.author),
            check=False,
        )
        if outcome.code == 0:
            return self._git(["rev-parse", "HEAD"], doing).out.strip()
        if not self._is_rebasing():
            why = self._runner.redact(last_line(outcome.err)) or f"status {outcome.code}"
            raise RemoteError(f"{doing}: {why}; {_DISK_HINT}")
        self._git(["rebase", "--abort"], doing, check=False)
        self._reset(onto)
        raise Conflict(
            f"cannot rebase the change onto commit {onto[:12]}, which another push put on "
            f"branch {change.target!r} of {self._url}: both change the same lines; "
            "send the request again to change the new config",
            commit=onto,
        )

    def _fetch(self, branch: str) -> str:
        return self._runner.fetch(
            branch, ref=HEAD_REF, where=self._where, timeout_s=self._push_timeout_s
        )

    def _author_environment(self, author: Author) -> dict[str, str]:
        return {
            **self._runner.environment,
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }

    def _remove(self, path: Path) -> None:
        """Remove a file or a tree if it is there."""
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError as err:
            raise RemoteError(f"cannot remove {path}: {err.strerror or err}") from err

    def _git(
        self,
        args: Sequence[str],
        doing: str,
        *,
        hint: str = "",
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Outcome:
        """Run a local git command in the clone, with the pinned settings."""
        return self._runner.run([*self._where, *args], doing=doing, hint=hint, env=env, check=check)


def _identity(author: Author) -> list[str]:
    """The author as config options: no global config is needed, or used."""
    return ["-c", f"user.name={author.name}", "-c", f"user.email={author.email}"]

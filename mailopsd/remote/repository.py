"""A local copy of the git remote the daemon follows: fetched heads, signatures, a work tree.

Everything goes through the ``git`` command (argument lists, never a shell) on a bare
repository of the daemon's own, ``<directory>/repo.git``, that the remote is fetched
into by URL: no remote is configured, so no URL or credential is ever written to disk.
The commit the daemon runs on is checked out, detached, in one work tree,
``<directory>/tree``, switched from commit to commit.

git runs as :mod:`mailopsd.remote.git` runs it for both sides of the remote: secrets
stay off command lines (an HTTPS token reaches git through the ``GIT_CONFIG_COUNT``
environment variables of the fetch alone), a password in the URL is removed from every
message, and a fetch is killed whole (ssh and remote helpers included) when it outlives
its timeout.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailopsd.remote.git import (
    Git,
    Outcome,
    RemoteError,
    Source,
    last_line,
    redact_url,
)

__all__ = ["Fetched", "RemoteError", "Repository", "Source", "redact_url"]

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 60.0
FETCHED_REF = "refs/mailopsd/fetched"

_FULL_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_SIGNATURE_HEADERS = ("gpgsig ", "gpgsig-sha256 ")
_SSH_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"


@dataclass(frozen=True)
class Fetched:
    """The branch head a fetch found.

    Attributes:
        commit: The full sha of the branch head now.
        previous: The head fetched before (``None`` at the first fetch).
        rewritten: ``previous`` is not an ancestor of ``commit``: a force-push rewrote
            the branch's history.
    """

    commit: str
    previous: str | None
    rewritten: bool


def _signature(commit_text: str) -> str | None:
    """The signature header of a raw commit object (first line only), if any."""
    for line in commit_text.split("\n\n", 1)[0].splitlines():
        for header in _SIGNATURE_HEADERS:
            if line.startswith(header):
                return line.removeprefix(header).strip()
    return None


class Repository:
    """The daemon's local copy of a remote branch, and the work tree it runs on.

    Args:
        directory: Where the copy lives (``<state dir>/git``), created on first use (0700).
        source: The remote followed.
        environment: The daemon's environment (``HOME``, ``PATH``...), passed to git.
        fetch_timeout_s: How long a fetch may take before it is killed.
    """

    def __init__(
        self,
        directory: Path,
        source: Source,
        environment: Mapping[str, str],
        *,
        fetch_timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self._directory = directory
        self._repo = directory / "repo.git"
        self._source = source
        self._fetch_timeout_s = fetch_timeout_s
        self._runner = Git(source, environment)
        self._url = self._runner.url

    def fetch(self) -> Fetched:
        """Fetch the branch head from the remote.

        Returns:
            The head now, the head before, and whether history was rewritten.

        Raises:
            RemoteError: The branch is missing, the remote is unreachable, credentials
                are refused, or the fetch timed out.
        """
        self._create()
        previous = self.fetched()
        branch = self._source.branch
        commit = self._runner.fetch(
            branch,
            ref=FETCHED_REF,
            where=["--git-dir", str(self._repo)],
            timeout_s=self._fetch_timeout_s,
        )
        rewritten = (
            previous is not None and previous != commit and not self.is_ancestor(previous, commit)
        )
        if commit != previous:
            logger.debug(
                "fetched url=%s branch=%s commit=%s previous=%s rewritten=%s",
                self._url,
                branch,
                commit,
                previous,
                rewritten,
            )
        return Fetched(commit=commit, previous=previous, rewritten=rewritten)

    def fetched(self) -> str | None:
        """The head of the last fetch, read from the local copy (``None`` if never fetched)."""
        if not self._repo.is_dir():
            return None
        outcome = self._git(
            ["rev-parse", "--verify", "--quiet", f"{FETCHED_REF}^{{commit}}"],
            doing=f"cannot read the last fetched head of {self._url}",
            check=False,
        )
        return outcome.out.strip() if outcome.code == 0 else None

    def verify(self, commit: str) -> str | None:
        """Check that ``commit`` carries a good SSH signature by an allowed key.

        git finds the principal by the signing key (``ssh-keygen -Y find-principals``),
        never by the committer's email; only SSH signatures count, since git verifies a
        PGP signature with gpg's keyring whatever ``gpg.format`` says.

        Args:
            commit: A full sha of a fetched commit.

        Returns:
            ``None`` if signatures are not checked or this one is good; else why not, in
            one line for a person.

        Raises:
            RemoteError: The commit is not in the local copy.
            ValueError: ``commit`` is not a full sha.
        """
        signers = self._source.allowed_signers
        if signers is None:
            return None
        reason = self._signature_problem(commit, signers)
        if reason is not None:
            return reason
        config = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}"]
        doing = f"cannot verify commit {commit[:12]} of {self._url}"
        outcome = self._git([*config, "verify-commit", commit], doing=doing, check=False)
        if outcome.code == 0:
            return None
        status = self._git([*config, "show", "-s", "--format=%G?", commit], doing=doing)
        if status.out.strip() == "U":  # a good signature whose key has no principal
            return f"commit {commit[:12]} is signed by a key not in {signers}"
        line = self._runner.redact(last_line(outcome.err))
        line = line or f"git exited with status {outcome.code}"
        return f"commit {commit[:12]} has a signature that does not verify: {line}"

    def _signature_problem(self, commit: str, signers: Path) -> str | None:
        """Why the commit's signature cannot be an allowed SSH one, from the commit itself."""
        self._require(commit)
        raw = self._git(["cat-file", "commit", commit], doing=f"cannot read commit {commit}")
        signature = _signature(raw.out)
        if signature is None:
            return f"commit {commit[:12]} is not signed"
        if signature != _SSH_SIGNATURE:
            return f"commit {commit[:12]} is not signed with an SSH key (only SSH signatures count)"
        try:
            with signers.open("rb"):
                pass
        except OSError as err:
            return f"commit {commit[:12]} cannot be checked: cannot read {signers}: {err.strerror}"
        return None

    @property
    def work_tree(self) -> Path:
        """The one work tree the daemon runs on (see :meth:`switch`)."""
        return self._directory / "tree"

    def switch(self, commit: str) -> Path:
        """Make the one work tree, ``<directory>/tree``, hold exactly ``commit``.

        The daemon runs on this tree: its paths stay the same from commit to commit, so
        a reload reads again only the files a commit changed (a tree per commit would
        make every reload a cold load). Only the files that differ are written; anything
        else found in the tree is removed. A tree that is missing or broken is made again.

        Args:
            commit: A full sha of a fetched commit.

        Returns:
            The tree joined with the source's path.

        Raises:
            RemoteError: The commit is not in the local copy, the source's path is not a
                directory in it, or git cannot check it out.
            ValueError: ``commit`` is not a full sha.
        """
        self._require(commit)
        path = self._subdirectory(commit)
        tree = self.work_tree
        doing = f"cannot check out commit {commit[:12]} of {self._url} at {tree}"
        hint = "check the free space and permissions of the state directory"
        if (tree / ".git").is_file():
            here = ["-C", str(tree)]
            moved = self._git(
                ["checkout", "--quiet", "--force", "--detach", commit],
                doing=doing,
                where=here,
                check=False,
            )
            if moved.code == 0:
                self._git(["clean", "-q", "-f", "-d", "-x"], doing=doing, where=here, check=False)
        if not self._is_complete(tree, commit):
            self._discard(tree)
            self._git(
                ["worktree", "add", "--detach", "--force", "--quiet", str(tree), commit],
                doing=doing,
                hint=hint,
            )
        return tree / path

    def current(self) -> str | None:
        """The commit the work tree of :meth:`switch` holds, if there is one."""
        tree = self.work_tree
        if not (tree / ".git").is_file():
            return None
        head = self._git(["rev-parse", "HEAD"], doing="", where=["-C", str(tree)], check=False)
        return head.out.strip() if head.code == 0 else None

    def _create(self) -> None:
        """Make the bare repository, atomically: made aside, then renamed into place."""
        if self._repo.is_dir():
            return
        doing = f"cannot create a local copy of {self._url} in {self._repo}"
        aside = self._directory / "repo.git.new"
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.rmtree(aside, ignore_errors=True)  # left by a crash
        except OSError as err:
            raise RemoteError(f"{doing}: {err.strerror or err}") from err
        self._git(["init", "--bare", "--quiet", str(aside)], doing=doing, where=[])
        try:
            aside.rename(self._repo)
        except OSError as err:
            raise RemoteError(f"{doing}: {err.strerror or err}") from err

    def is_ancestor(self, previous: str, commit: str) -> bool:
        """Whether ``previous`` is an ancestor of ``commit`` (not if it is gone: unknown)."""
        outcome = self._git(
            ["merge-base", "--is-ancestor", previous, commit],
            doing=f"cannot compare commits of {self._url}",
            check=False,
        )
        return outcome.code == 0

    def _subdirectory(self, commit: str) -> str:
        """The source's path, checked to be a directory in ``commit``."""
        return self._runner.subdirectory(commit, where=["--git-dir", str(self._repo)])

    def _is_complete(self, tree: Path, commit: str) -> bool:
        """Whether ``tree`` holds exactly ``commit``, every file in place and nothing else."""
        if not (tree / ".git").is_file():
            return False
        doing = f"cannot read the tree {tree}"
        head = self._git(["rev-parse", "HEAD"], doing=doing, where=["-C", str(tree)], check=False)
        if head.code != 0 or head.out.strip() != commit:
            return False
        status = self._git(
            ["status", "--porcelain"], doing=doing, where=["-C", str(tree)], check=False
        )
        return status.code == 0 and not status.out.strip()

    def _discard(self, tree: Path) -> None:
        """Remove a half-made tree and git's record of it."""
        if tree.exists() or tree.is_symlink():
            logger.warning("redoing a broken work tree url=%s tree=%s", self._url, tree)
            self._remove(tree)
        self._git(["worktree", "prune"], doing=f"cannot prune the work trees of {self._url}")

    def _remove(self, tree: Path) -> None:
        try:
            if tree.is_dir() and not tree.is_symlink():
                shutil.rmtree(tree)
            else:
                tree.unlink()
        except OSError as err:
            raise RemoteError(f"cannot remove the tree {tree}: {err.strerror or err}") from err

    def _require(self, commit: str) -> None:
        """Check that ``commit`` is a full sha of a commit in the local copy."""
        if not _FULL_SHA.fullmatch(commit):
            raise ValueError(f"not a full commit sha: {commit[:80]!r}")
        found = self._repo.is_dir() and (
            self._git(["cat-file", "-e", f"{commit}^{{commit}}"], doing="", check=False).code == 0
        )
        if not found:
            raise RemoteError(
                f"commit {commit[:12]} is not in the local copy of {self._url}; fetch it first"
            )

    def _git(
        self,
        args: Sequence[str],
        *,
        doing: str,
        hint: str = "",
        where: Sequence[str] | None = None,
        check: bool = True,
    ) -> Outcome:
        """Run git on the local copy (or ``where``); raise ``RemoteError`` if it fails.

        Args:
            args: git's arguments after the repository option.
            doing: The message's start: what failed, on what.
            hint: The message's end: the next step.
            where: The repository options (default: ``--git-dir`` of the local copy).
            check: Raise if git fails (else the caller reads the exit code).
        """
        location = ["--git-dir", str(self._repo)] if where is None else list(where)
        return self._runner.run(
            [*location, *args],
            doing=doing,
            hint=hint,
            check=check,
        )

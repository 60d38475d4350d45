"""A local copy of the git remote the daemon follows: fetched heads, signatures, a work tree.

Everything goes through the ``git`` command (argument lists, never a shell) on a bare
repository of the daemon's own, ``<directory>/repo.git``, that the remote is fetched
into by URL: no remote is configured, so no URL or credential is ever written to disk.
The commit the daemon runs on is checked out, detached, in one work tree,
``<directory>/tree``, switched from commit to commit.

Secrets stay off command lines: an HTTPS token reaches git through the
``GIT_CONFIG_COUNT`` environment variables of the fetch alone, and a password in the
URL is removed from every message. A fetch runs in a process group of its own, killed
whole (ssh and remote helpers included) when it outlives its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from mailopsd.errors import MailopsError

__all__ = ["Fetched", "RemoteError", "Repository", "Source", "redact_url"]

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 60.0
LOCAL_TIMEOUT_S = 120.0  # a checkout of a large tree on a slow disk
FETCHED_REF = "refs/mailopsd/fetched"
QUOTE_MAX_CHARS = 300

# gc.autoDetach=false: gc after a fetch stays in the fetch's process group, under its
# timeout; --no-write-fetch-head: FETCH_HEAD would keep the URL on disk.
_FETCH_OPTIONS = (
    *("-c", "gc.autoDetach=false", "fetch"),
    *("--force", "--no-tags", "--quiet", "--no-write-fetch-head"),
)
_FULL_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*)@")
_SIGNATURE_HEADERS = ("gpgsig ", "gpgsig-sha256 ")
_SSH_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"
# Variables that would point git at another repository, index or config (the list git
# itself clears for its local subprocesses): the daemon's environment must not steer ours.
_REPOSITORY_VARIABLES = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_CONFIG",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
        "GIT_DIR",
        "GIT_GRAFT_FILE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_NAMESPACE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_OBJECT_DIRECTORY",
        "GIT_PREFIX",
        "GIT_REPLACE_REF_BASE",
        "GIT_SHALLOW_FILE",
        "GIT_WORK_TREE",
    }
)
# git's advice after a failed fetch, true of every failure: the line before it says why.
_BOILERPLATE = (
    "fatal: could not read from remote repository.",
    "please make sure you have the correct access rights",
    "and the repository exists.",
)


@dataclass(frozen=True)
class Source:
    """The remote the daemon follows.

    Attributes:
        url: Any URL or path git accepts.
        branch: The branch whose head is followed.
        path: The config's subdirectory in the repository ("" = its root).
        allowed_signers: An ssh ``allowed_signers`` file: only commits signed by its keys
            are applied (``None``: signatures are not checked).
        ssh_key: The private key for ``ssh://`` or scp-like URLs.
        token_file: A file holding an HTTPS token, sent as ``Authorization: Bearer``.
        known_hosts: The remote's SSH host keys (``ssh-keyscan`` output): only a host
            key listed there is accepted (``None``: ssh's own files, never a prompt).
    """

    url: str
    branch: str
    path: str = ""
    allowed_signers: Path | None = None
    ssh_key: Path | None = None
    token_file: Path | None = None
    known_hosts: Path | None = None


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


class RemoteError(MailopsError):
    """git could not do it.

    ``str()`` is one line for a person, naming the URL (without any password) and git's
    own last stderr line; never a token.
    """


@dataclass(frozen=True)
class _Outcome:
    code: int
    out: str
    err: str


def redact_url(url: str) -> str:
    """Remove the password from a URL's userinfo (``https://u:p@h/r`` -> ``https://u@h/r``).

    Like git, the userinfo is what comes before an ``@`` that precedes the first ``/``
    after the scheme; scp-like URLs (``git@host:repo``) carry no password and are kept.
    """
    match = _USERINFO.match(url)
    if match is None or ":" not in match[2]:
        return url
    user = match[2].partition(":")[0]
    return f"{match[1]}{user}@{url[match.end() :]}"


def _password(url: str) -> str:
    match = _USERINFO.match(url)
    return match[2].partition(":")[2] if match else ""


def _last_line(stderr: str) -> str:
    """The last line of git's stderr that says why, without its generic advice."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [
        line
        for line in lines
        if not line.lower().startswith(_BOILERPLATE) and not line.startswith("hint:")
    ]
    return (telling or lines or [""])[-1]


def _signature(commit_text: str) -> str | None:
    """The signature header of a raw commit object (first line only), if any."""
    for line in commit_text.split("\n\n", 1)[0].splitlines():
        for header in _SIGNATURE_HEADERS:
            if line.startswith(header):
                return line.removeprefix(header).strip()
    return None


def _run(argv: Sequence[str], *, env: Mapping[str, str], timeout_s: float) -> _Outcome:
    """Run a command in a process group of its own, killed whole if it outlives the timeout.

    Raises:
        OSError: The command cannot be started.
        subprocess.TimeoutExpired: It did not end in time (it was killed).
    """
    process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,  # ssh and remote helpers die with git
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return _Outcome(process.returncode, out, err)


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
        self._url = redact_url(source.url)
        self._environment = self._git_environment(environment)

    def _git_environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        env = {
            name: value
            for name, value in environment.items()
            if name not in _REPOSITORY_VARIABLES
            and not name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
        }
        env |= {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
        ssh = []
        if self._source.ssh_key is not None:
            # git runs GIT_SSH_COMMAND through the shell: paths are quoted for it
            key = shlex.quote(str(self._source.ssh_key))
            ssh += [f"-i {key}", "-o IdentitiesOnly=yes"]
        if self._source.known_hosts is not None:
            hosts = shlex.quote(str(self._source.known_hosts))
            ssh += [f"-o UserKnownHostsFile={hosts}", "-o StrictHostKeyChecking=yes"]
        if ssh:
            env["GIT_SSH_COMMAND"] = " ".join(["ssh", *ssh, "-o BatchMode=yes"])
        return env

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
        doing = f"cannot fetch branch {branch!r} of {self._url}"
        token = self._token(doing)
        refspec = f"+refs/heads/{branch}:{FETCHED_REF}"
        self._git(
            [*_FETCH_OPTIONS, "--", self._source.url, refspec],
            doing=doing,
            hint="check the URL, the branch and the credentials",
            timeout_s=self._fetch_timeout_s,
            secrets=(token,),
            env=self._token_environment(token),
        )
        commit = self.fetched()
        if commit is None:
            raise RemoteError(f"{doing}: git fetched nothing")
        rewritten = (
            previous is not None and previous != commit and not self._is_ancestor(previous, commit)
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
        line = self._scrub(_last_line(outcome.err)) or f"git exited with status {outcome.code}"
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

    def _token(self, doing: str) -> str | None:
        """The HTTPS token, read at each fetch so that a replaced file takes effect."""
        if self._source.token_file is None:
            return None
        try:
            token = self._source.token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise RemoteError(
                f"{doing}: cannot read token file {self._source.token_file}: {why}"
            ) from err
        if not token or not token.isprintable():
            raise RemoteError(
                f"{doing}: token file {self._source.token_file} is empty or holds more "
                "than the token; write the token alone in it"
            )
        return token

    def _token_environment(self, token: str | None) -> dict[str, str]:
        """The environment of a fetch: the token as config, in neither argv nor a file."""
        if token is None:
            return self._environment
        return self._environment | {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}",
        }

    def _is_ancestor(self, previous: str, commit: str) -> bool:
        """Whether ``previous`` is an ancestor of ``commit`` (not if it is gone: unknown)."""
        outcome = self._git(
            ["merge-base", "--is-ancestor", previous, commit],
            doing=f"cannot compare commits of {self._url}",
            check=False,
        )
        return outcome.code == 0

    def _subdirectory(self, commit: str) -> str:
        """The source's path, checked to be a directory in ``commit``."""
        path = PurePosixPath(self._source.path.strip("/") or ".")
        wrong = f"path {self._source.path!r} is not a directory in commit {commit[:12]} of "
        if ".." in path.parts:
            raise RemoteError(f"{wrong}{self._url}: it leaves the repository")
        spec = "" if str(path) == "." else str(path)
        outcome = self._git(
            ["cat-file", "-t", f"{commit}:{spec}"], doing=wrong + self._url, check=False
        )
        if outcome.code != 0 or outcome.out.strip() != "tree":
            found = outcome.out.strip() or "nothing"
            raise RemoteError(f"{wrong}{self._url} (found {found}); check the configured path")
        return spec

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

    def _scrub(self, text: str) -> str:
        """Git's text without the URL's password, capped for a message."""
        text = text.replace(self._source.url, self._url)
        password = _password(self._source.url)
        for secret in (password, unquote(password)):
            if secret:
                text = text.replace(secret, "***")
        return text[:QUOTE_MAX_CHARS]

    def _git(
        self,
        args: Sequence[str],
        *,
        doing: str,
        hint: str = "",
        where: Sequence[str] | None = None,
        timeout_s: float = LOCAL_TIMEOUT_S,
        secrets: Sequence[str | None] = (),
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> _Outcome:
        """Run git on the local copy (or ``where``); raise ``RemoteError`` if it fails.

        Args:
            args: git's arguments after the repository option.
            doing: The message's start: what failed, on what.
            hint: The message's end: the next step.
            where: The repository options (default: ``--git-dir`` of the local copy).
            timeout_s: How long git may run.
            secrets: Texts removed from git's text before it is quoted.
            env: git's environment (default: the daemon's, with our settings).
            check: Raise if git fails (else the caller reads the exit code).
        """
        location = ["--git-dir", str(self._repo)] if where is None else list(where)
        argv = ["git", *location, *args]
        try:
            outcome = _run(argv, env=env or self._environment, timeout_s=timeout_s)
        except subprocess.TimeoutExpired as err:
            why = f"no answer within {timeout_s:g} s"
            raise RemoteError(f"{doing}: {why}; {hint or 'try again later'}") from err
        except OSError as err:
            why = f"cannot run git: {err.strerror or err}"
            raise RemoteError(f"{doing}: {why}; install git or fix PATH") from err
        if check and outcome.code != 0:
            line = self._scrub(_last_line(outcome.err))
            for secret in secrets:
                if secret:
                    line = line.replace(secret, "***")
            why = line or f"git exited with status {outcome.code}"
            raise RemoteError(f"{doing}: {why}" + (f"; {hint}" if hint else ""))
        return outcome

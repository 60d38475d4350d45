"""Running git for one followed remote: its credentials, its timeouts and its messages.

The read side (:mod:`mailopsd.remote.repository`) and the write side
(:mod:`mailopsd.remote.writer`) both run git through :class:`Git`, so both keep the same
rules. A command is an argument list, never a shell, with an environment cleared of the
variables that would point git at another repository. Secrets stay off disk and off
command lines: git fetches and pushes by URL (no remote is configured), an ssh key and
known_hosts reach ssh through ``GIT_SSH_COMMAND``, and an HTTPS token reaches git through
the ``GIT_CONFIG_COUNT`` environment variables of the network commands alone. A failure
is a :class:`RemoteError`, one line naming the URL without its password. A command runs
in a process group of its own, killed whole (ssh and remote helpers included) when it
outlives its timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from mailopsd.errors import MailopsError

__all__ = [
    "LOCAL_TIMEOUT_S",
    "QUOTE_MAX_CHARS",
    "Git",
    "Outcome",
    "RemoteError",
    "Source",
    "last_line",
    "redact_url",
]

LOCAL_TIMEOUT_S = 120.0  # a checkout of a large tree on a slow disk
QUOTE_MAX_CHARS = 300

# gc.autoDetach=false: gc after a fetch stays in the fetch's process group, under its
# timeout; --no-write-fetch-head: FETCH_HEAD would keep the URL on disk.
_FETCH_OPTIONS = (
    *("-c", "gc.autoDetach=false", "fetch"),
    *("--force", "--no-tags", "--quiet", "--no-write-fetch-head"),
)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*)@")
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


class RemoteError(MailopsError):
    """git could not do it.

    ``str()`` is one line for a person, naming the URL (without any password) and git's
    own last stderr line; never a token.
    """


@dataclass(frozen=True)
class Outcome:
    """What a git command gave: its exit code and its output."""

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


def last_line(stderr: str) -> str:
    """The last line of git's stderr that says why, without its generic advice."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [
        line
        for line in lines
        if not line.lower().startswith(_BOILERPLATE) and not line.startswith("hint:")
    ]
    return (telling or lines or [""])[-1]


def _run(argv: Sequence[str], *, env: Mapping[str, str], timeout_s: float) -> Outcome:
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
    return Outcome(process.returncode, out, err)


class Git:
    """git, run for one remote: the environment, the credentials and the messages.

    Args:
        source: The remote (its URL and credentials).
        environment: The daemon's environment (``HOME``, ``PATH``...), passed to git.
    """

    def __init__(self, source: Source, environment: Mapping[str, str]) -> None:
        self._source = source
        self.url = redact_url(source.url)
        """The source's URL without its password, for messages and logs."""
        self.environment: Mapping[str, str] = self._git_environment(environment)
        """git's environment: the daemon's, cleared and with our settings (no token)."""

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

    def fetch(self, branch: str, *, ref: str, where: Sequence[str], timeout_s: float) -> str:
        """Fetch a branch's head from the remote into ``ref`` (forced), by URL.

        Args:
            branch: The remote's branch.
            ref: The local ref that receives its head.
            where: The repository options (``--git-dir``, ``-C``).
            timeout_s: How long the fetch may take before it is killed.

        Returns:
            The full sha of the head fetched.

        Raises:
            RemoteError: The branch is missing, the remote is unreachable, credentials
                are refused, or the fetch timed out.
        """
        doing = f"cannot fetch branch {branch!r} of {self.url}"
        self.run_remote(
            [*where, *_FETCH_OPTIONS, "--", self._source.url, f"+refs/heads/{branch}:{ref}"],
            doing=doing,
            hint="check the URL, the branch and the credentials",
            timeout_s=timeout_s,
        )
        head = self.run(
            [*where, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            doing=doing,
            check=False,
        )
        if head.code != 0:
            raise RemoteError(f"{doing}: git fetched nothing")
        return head.out.strip()

    def subdirectory(self, commit: str, *, where: Sequence[str]) -> str:
        """The source's path, checked to be a directory in ``commit`` (a symlink is not).

        Raises:
            RemoteError: It is missing, not a directory, or leaves the repository.
        """
        path = PurePosixPath(self._source.path.strip("/") or ".")
        wrong = f"path {self._source.path!r} is not a directory in commit {commit[:12]} of "
        if ".." in path.parts:
            raise RemoteError(f"{wrong}{self.url}: it leaves the repository")
        spec = "" if str(path) == "." else str(path)
        outcome = self.run(
            [*where, "cat-file", "-t", f"{commit}:{spec}"], doing=wrong + self.url, check=False
        )
        if outcome.code != 0 or outcome.out.strip() != "tree":
            found = outcome.out.strip() or "nothing"
            raise RemoteError(f"{wrong}{self.url} (found {found}); check the configured path")
        return spec

    def run_remote(
        self,
        args: Sequence[str],
        *,
        doing: str,
        hint: str,
        timeout_s: float,
        check: bool = True,
    ) -> Outcome:
        """Run a git command that reaches the remote, with the token if there is one.

        Args:
            args: git's arguments, the URL among them.
            doing: The message's start: what failed, on what.
            hint: The message's end: the next step.
            timeout_s: How long git may run.
            check: Raise if git fails (else the caller reads the exit code).

        Returns:
            git's exit code and output, the token removed from them.

        Raises:
            RemoteError: The token file cannot be read, or git failed (with ``check``).
        """
        token = self._token(doing)
        outcome = self.run(
            args,
            doing=doing,
            hint=hint,
            timeout_s=timeout_s,
            secrets=(token,),
            env=self._token_environment(token),
            check=check,
        )
        if not token:
            return outcome
        return Outcome(
            outcome.code, outcome.out.replace(token, "***"), outcome.err.replace(token, "***")
        )

    def _token(self, doing: str) -> str | None:
        """The HTTPS token, read at each use so that a replaced file takes effect."""
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

    def _token_environment(self, token: str | None) -> Mapping[str, str]:
        """A network command's environment: the token as config, in neither argv nor a file."""
        if token is None:
            return self.environment
        return {
            **self.environment,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}",
        }

    def run(
        self,
        args: Sequence[str],
        *,
        doing: str,
        hint: str = "",
        timeout_s: float = LOCAL_TIMEOUT_S,
        secrets: Sequence[str | None] = (),
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Outcome:
        """Run git; raise ``RemoteError`` if it fails.

        Args:
            args: git's arguments (the repository options first).
            doing: The message's start: what failed, on what.
            hint: The message's end: the next step.
            timeout_s: How long git may run.
            secrets: Texts removed from git's text before it is quoted.
            env: git's environment (default: :attr:`environment`).
            check: Raise if git fails (else the caller reads the exit code).

        Raises:
            RemoteError: git cannot be run, timed out, or failed (with ``check``).
        """
        try:
            outcome = _run(["git", *args], env=env or self.environment, timeout_s=timeout_s)
        except subprocess.TimeoutExpired as err:
            why = f"no answer within {timeout_s:g} s"
            raise RemoteError(f"{doing}: {why}; {hint or 'try again later'}") from err
        except OSError as err:
            why = f"cannot run git: {err.strerror or err}"
            raise RemoteError(f"{doing}: {why}; install git or fix PATH") from err
        if check and outcome.code != 0:
            why = self.redact(last_line(outcome.err), secrets=secrets)
            why = why or f"git exited with status {outcome.code}"
            raise RemoteError(f"{doing}: {why}" + (f"; {hint}" if hint else ""))
        return outcome

    def redact(self, text: str, *, secrets: Sequence[str | None] = ()) -> str:
        """Git's text without the URL's password or ``secrets``, capped for a message."""
        text = text.replace(self._source.url, self.url)
        password = _password(self._source.url)
        for secret in (password, unquote(password), *secrets):
            if secret:
                text = text.replace(secret, "***")
        return text[:QUOTE_MAX_CHARS]

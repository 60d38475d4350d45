"""The credentials API's writes: a change committed to the followed remote, then applied.

With ``api.write: commit`` and a daemon that follows a git remote (``run --git``), a
write by a write key is made as a person would make it: in a clone of the remote
(:class:`mailopsd.remote.writer.Writer`), the file that declares the campaign is edited
with its text kept (:mod:`mailopsd.config.edits`), new secret values are sealed with the
file's own data key and recipients (:func:`mailopsd.secrets.edit.edit_sops_file`), the
whole config is validated as a push would be, and the change is committed with the API
key's name as author and the request (no secret in it) as message, and pushed. The
answer waits until the daemon runs on that commit (a fetch is asked for at once), so a
client that reads after a write sees it. With ``api.write: branch``, the change goes to
a review branch of its own and is answered ``202`` with the commit: merging it is a
person's decision.

Writes are serialised (the writer's lock, and its ``flock`` with other processes); a
write racing a push from elsewhere is rebased onto it and checked again, or answered
``409`` with the commit it lost to. A write that fails validation changes nothing in git.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailopsd.atomicfile import write_atomically
from mailopsd.config.edits import (
    CredentialEditError,
    add_credential,
    delete_credential,
    update_credential,
)
from mailopsd.config.loader import LoadCache, LoadedConfig, LoadOptions, load_config
from mailopsd.config.reenable import credential_target, set_reenabled_at
from mailopsd.daemon.follow import Following
from mailopsd.errors import ConfigError, SecretError
from mailopsd.http.writes import (
    Kind,
    WriteRefused,
    WriteRequest,
    Written,
    credential_id_for,
    field_errors,
    invalid,
)
from mailopsd.remote.git import RemoteError
from mailopsd.remote.writer import Author, Conflict, Writer
from mailopsd.secrets import age
from mailopsd.secrets.edit import edit_sops_file
from mailopsd.state.statefile import GitState

__all__ = ["APPLY_WAIT_S", "ApiWrites", "DaemonView"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

APPLY_WAIT_S = 30.0
"""How long a write waits for the daemon to run on its commit before answering 202."""

PUSH_TIMEOUT_S = 20.0
"""How long one fetch or push of a write may take."""

REVIEW_PREFIX = "mailopsd/api/"
"""The review branches of ``api.write: branch``: ``mailopsd/api/<time>-<key>-<what>``."""

_POLL_S = 0.05
_AUTHOR_DOMAIN = "api.mailopsd.invalid"


@dataclass(frozen=True)
class DaemonView:
    """What a write reads from the daemon, each time it needs it.

    Attributes:
        loaded: The config now running, or ``None``.
        git: The state file's ``daemon.git`` now.
        clock: The daemon's clock.
        load_options: How the daemon loads its config (identities, plaintext secrets).
        stopping: Whether the daemon is stopping (it applies nothing more).
    """

    loaded: Callable[[], LoadedConfig | None]
    git: Callable[[], GitState | None]
    clock: Callable[[], datetime]
    load_options: LoadOptions
    stopping: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class _Plan:
    """Where a write goes: the file (relative to the config directory) and the mapping."""

    file: Path
    credential_id: str
    place: tuple[str, ...]


class ApiWrites:
    """Commits the API's writes to the followed remote (see the module docstring)."""

    def __init__(
        self, writer: Writer, following: Following, daemon: DaemonView, *, signed: bool
    ) -> None:
        """Write with ``writer`` to the remote ``following`` follows.

        Args:
            writer: The write clone of the remote.
            following: The remote followed, which applies what is pushed.
            daemon: What a write reads from the daemon.
            signed: Only signed commits are applied (``--git-allowed-signers``): the
                writer's commits are not signed, so only review branches are written.
        """
        self._writer = writer
        self._following = following
        self._daemon = daemon
        self._signed = signed
        self._cache = LoadCache()  # the write clone's config, kept between writes

    def __call__(
        self, request: WriteRequest, *, key: str, mode: str, method: str, path: str
    ) -> Written:
        """Commit ``request`` and push it; once applied (``commit``), or at once (``branch``).

        Raises:
            WriteRefused: The write is answered with an error (see :meth:`_refused`).
        """
        if mode == "commit" and self._signed:
            raise WriteRefused(
                "405 Method Not Allowed",
                "method_not_allowed",
                "this daemon applies only signed commits (--git-allowed-signers), and an API "
                "write's commit is not signed: set api.write: branch, and merge its review "
                "branch with a signed commit",
            )
        loaded = self._daemon.loaded()
        if loaded is None:
            raise WriteRefused("503 Service Unavailable", "not_ready", "no config is loaded yet")
        plan = _plan(loaded, request)
        branch = self._review_branch(key, request, plan) if mode == "branch" else None
        try:
            pushed = self._writer.change(
                self._edit(request, plan),
                author=Author(key, f"{key}@{_AUTHOR_DOMAIN}"),
                message=request.describe(method, path, plan.credential_id),
                check=self._check(plan),
                branch=branch,
            )
        except (Conflict, CredentialEditError, ConfigError, SecretError, RemoteError) as err:
            raise _refused(err, plan) from None
        logger.info(
            "api write pushed key=%s kind=%s credential=%s/%s branch=%s commit=%s",
            key,
            request.kind.value,
            request.campaign_id,
            plan.credential_id,
            pushed.branch,
            pushed.commit[:12],
        )
        applied = mode == "commit" and self._wait_applied(pushed.commit)
        return Written(pushed.commit, pushed.branch, applied, plan.credential_id)

    def _edit(self, request: WriteRequest, plan: _Plan) -> Callable[[Path], None]:
        """The edit of the config directory a write makes."""
        now = self._daemon.clock()
        identities = self._daemon.load_options.identities

        def change(text: str) -> str:
            where = str(plan.file)
            campaign, credential = request.campaign_id, plan.credential_id
            if request.kind is Kind.ADD:
                return add_credential(text, campaign, credential, request.fields, where)
            if request.kind is Kind.UPDATE:
                return update_credential(text, campaign, credential, request.fields, where)
            if request.kind is Kind.DELETE:
                return delete_credential(text, campaign, credential, where)
            return set_reenabled_at(text, plan.place, now, where)

        def edit(config: Path) -> None:
            file = config / plan.file
            text = file.read_text(encoding="utf-8")
            keys = identities() if identities is not None else age.IdentitySet((), "no key")
            write_atomically(file, edit_sops_file(text, keys, str(plan.file), change, now=now))

        return edit

    def _check(self, plan: _Plan) -> Callable[[Path], None]:
        """Validates the edited config directory as a push of it would be."""
        options = self._daemon.load_options

        def check(config: Path) -> None:
            try:
                load_config(config, options, cache=self._cache)
            except ConfigError as err:
                clone = f"{config}/"
                errors = field_errors(
                    err.issues,
                    ".".join(plan.place),
                    lambda file: (
                        str(plan.file.parent / file.removeprefix(clone))
                        if file.startswith(clone)
                        else file
                    ),
                )
                raise invalid(errors) from None

        return check

    def _wait_applied(self, commit: str) -> bool:
        """Wait until the daemon runs on ``commit`` (or a later one): whether it did.

        Raises:
            WriteRefused: The daemon refused the commit (``500 not_applied``).
        """
        self._following.fetch_soon()
        deadline = time.monotonic() + APPLY_WAIT_S
        checked: str | None = None
        while True:
            git = self._daemon.git()
            applied = git.applied_commit if git is not None else None
            if applied is not None and applied != checked:
                if self._following.includes(applied, commit):
                    return True
                checked = applied
            if git is not None and git.refused_commit == commit:
                raise WriteRefused(
                    "500 Internal Server Error",
                    "not_applied",
                    f"commit {commit[:12]} was pushed but the daemon did not apply it: "
                    f"{git.refused_reason}; it runs on commit {(applied or 'none')[:12]}; "
                    "revert the commit or push a fix",
                    commit=commit,
                )
            if self._daemon.stopping():
                return False  # applied at the next start: answered as pushed
            if time.monotonic() >= deadline:
                logger.warning(
                    "api write not applied within %gs commit=%s; answered as pushed",
                    APPLY_WAIT_S,
                    commit[:12],
                )
                return False
            time.sleep(_POLL_S)

    def _review_branch(self, key: str, request: WriteRequest, plan: _Plan) -> str:
        stamp = self._daemon.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        what = f"{request.kind.value}-{request.campaign_id}-{plan.credential_id}"
        return f"{REVIEW_PREFIX}{stamp}-{key}-{what}"


def _plan(loaded: LoadedConfig, request: WriteRequest) -> _Plan:
    """The file and mapping a write changes, from the config now running.

    A new credential's id comes from its label, unique among the campaign's.

    Raises:
        WriteRefused: A change to the fields of a credential that names a shared mailbox
            (``409``): they are the mailbox's, in every campaign that names it.
    """
    campaign = loaded.config.campaigns[request.campaign_id]
    file = loaded.campaign_files[request.campaign_id].relative_to(loaded.root)
    if request.kind is Kind.ADD:
        credential_id = credential_id_for(request.fields, campaign.smtp_credentials)
        place = ("campaigns", request.campaign_id, "smtp_credentials", credential_id)
        return _Plan(file, credential_id, place)
    credential_id = request.credential_id or ""
    credential = campaign.smtp_credentials[credential_id]
    if request.kind is Kind.REENABLE:
        target = credential_target(loaded, request.campaign_id, credential_id)
        return _Plan(target.path.relative_to(loaded.root), credential_id, target.place)
    shared = credential.shared_as
    if request.kind is Kind.UPDATE and shared is not None:
        mailbox_file = loaded.mailbox_files[shared].relative_to(loaded.root)
        raise WriteRefused(
            "409 Conflict",
            "shared_mailbox",
            f"{request.campaign_id}/{credential_id} names the shared mailbox {shared}, whose "
            f"fields hold in every campaign that names it: edit mailboxes.{shared} in "
            f"{mailbox_file} and commit it",
        )
    place = ("campaigns", request.campaign_id, "smtp_credentials", credential_id)
    return _Plan(file, credential_id, place)


def _refused(err: Exception, plan: _Plan) -> WriteRefused:
    """The answer to a write that failed: nothing of it was pushed."""
    if isinstance(err, Conflict):
        return WriteRefused("409 Conflict", "conflict", str(err), commit=err.commit)
    if isinstance(err, CredentialEditError):
        return _edit_refused(err, plan)
    if isinstance(err, SecretError):
        logger.error("api write failed: a file cannot be sealed error=%s", err)
        return WriteRefused(
            "500 Internal Server Error",
            "secret_error",
            f"{plan.file} cannot be opened or sealed again with the daemon's keys: {err}",
        )
    if isinstance(err, ConfigError):  # the edit's own (reenable: no such mapping)
        return WriteRefused("409 Conflict", "conflict", str(err))
    logger.error("api write failed: the remote error=%s", err)
    return WriteRefused("502 Bad Gateway", "remote_error", f"{err}; nothing was changed")


def _edit_refused(err: CredentialEditError, plan: _Plan) -> WriteRefused:
    """The answer to an edit the file did not allow (it changed since, or its layout)."""
    issue = err.issues[0]
    if err.reason == "unknown-campaign":
        return WriteRefused("404 Not Found", "campaign_not_found", issue.message)
    if err.reason == "unknown-credential":
        return WriteRefused("404 Not Found", "smtp_credential_not_found", issue.message)
    if err.reason == "exists":
        return WriteRefused(
            "409 Conflict",
            "conflict",
            f"a credential {plan.credential_id} was added by another change meanwhile; "
            "send the request again",
        )
    return WriteRefused(
        "409 Conflict",
        "not_editable",
        f"{err}; edit the file by hand and commit it",
    )

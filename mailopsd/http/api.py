"""The credentials API: campaigns and their SMTP credentials, as JSON.

Paths and shapes follow the credential API this project mirrors (``/campaigns``,
``/campaigns/{id}/smtp_credentials``...). The config files are the source of truth: by
default a write answers 405 with the file and line to edit. With ``api.write`` set and
a daemon that follows a git remote, a key of scope ``write`` adds, changes, deletes and
re-enables credentials by commits to that remote (:mod:`mailopsd.http.writes`); a key
of scope ``read`` gets 403. A request carries ``Authorization: Bearer <key>``; the key's
account decides which campaigns exist for it, and another account's campaign is
indistinguishable from a missing one. No response holds an SMTP username, password or
the signing key.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from mailopsd import goyaml
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Campaign, Credential
from mailopsd.http import apikeys
from mailopsd.http.openapi import OPENAPI
from mailopsd.http.writes import Committer, Kind, WriteRefused, Written, read_request
from mailopsd.refs import credential_key
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from mailopsd.state.mailboxes import mailbox_entry
from mailopsd.state.statefile import CredentialState, StateFile, format_time
from mailopsd.status import report

__all__ = ["OPENAPI_PATH", "PREFIX", "ApiResponse", "Reader", "answer"]

logger = logging.getLogger(__name__)

PREFIX = "/campaigns"
OPENAPI_PATH = "/openapi.json"
_JSON = "application/json"
_READ = ("GET", "HEAD")


@dataclass(frozen=True)
class ApiResponse:
    """A JSON response: status line, body, extra headers."""

    status: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _JSON


@dataclass(frozen=True)
class Reader:
    """What the API reads from the daemon, each time it needs it.

    Attributes:
        loaded: The config now running, or ``None``.
        state: The daemon's state (disabled credentials, bounce windows).
        ledger: The calling thread's ledger connection, kept open: never closed by the caller.
        clock: The current time.
        writes: What commits a write, while the daemon follows a git remote (else ``None``).
    """

    loaded: Callable[[], LoadedConfig | None]
    state: Callable[[], StateFile]
    ledger: Callable[[], Ledger]
    clock: Callable[[], datetime]
    writes: Callable[[], Committer | None] = lambda: None


@dataclass(frozen=True)
class _Request:
    """What a request is: its method and path, and the key it came with."""

    method: str
    path: str
    key: str
    scope: str
    body: bytes


@dataclass(frozen=True)
class _Target:
    """What a path names: the campaign, the credential, whether it is ``/reenable``."""

    campaign_id: str | None = None
    listing: bool = False
    credential_id: str | None = None
    reenable: bool = False


def _json(status_line: str, data: object, *headers: tuple[str, str]) -> ApiResponse:
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return ApiResponse(status_line, body, headers)


def _error(status_line: str, code: str, message: str, *headers: tuple[str, str]) -> ApiResponse:
    return _json(status_line, {"error": {"code": code, "message": message}}, *headers)


def _unauthorized(message: str) -> ApiResponse:
    return _error(
        "401 Unauthorized", "unauthorized", message, ("WWW-Authenticate", 'Bearer realm="mailopsd"')
    )


def _no_campaign(campaign_id: str) -> ApiResponse:
    return _error("404 Not Found", "campaign_not_found", f'no campaign "{campaign_id}"')


def _parse(path: str) -> _Target | None:
    """The target of a path under ``/campaigns``, or ``None`` when it names nothing."""
    parts = path.removeprefix(PREFIX).strip("/").split("/") if path != PREFIX else []
    if any(part == "" for part in parts) or len(parts) > 4:
        return None
    if len(parts) >= 2 and parts[1] != "smtp_credentials":
        return None
    if len(parts) == 4 and parts[3] != "reenable":
        return None
    return _Target(
        campaign_id=parts[0] if parts else None,
        listing=len(parts) == 2,
        credential_id=parts[2] if len(parts) >= 3 else None,
        reenable=len(parts) == 4,
    )


def _bearer(environ: Mapping[str, object]) -> str | None:
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def answer(
    reader: Reader, method: str, path: str, environ: Mapping[str, object], body: bytes = b""
) -> ApiResponse:
    """Answer a request to the API (``/openapi.json`` or a path under ``/campaigns``).

    Args:
        reader: Where the config, state and ledger come from.
        method: The request method, upper case.
        path: The request path.
        environ: The WSGI environment (for the ``Authorization`` header).
        body: The request body, as the server read it (bounded).

    Returns:
        The response to write.
    """
    if path == OPENAPI_PATH:
        if method not in _READ:
            return _not_allowed(_READ, "the API description is read-only")
        return _json("200 OK", OPENAPI)
    target = _parse(path)
    loaded = reader.loaded()
    if loaded is None:
        return _error("503 Service Unavailable", "not_ready", "no config is loaded yet")
    presented = _bearer(environ)
    if presented is None:
        return _unauthorized("send the API key as: Authorization: Bearer <key>")
    name = apikeys.find_api_key(loaded.config.api_keys, presented)
    if name is None:
        return _unauthorized("the API key is not one of api_keys; check it or make a new one")
    if target is None:
        return _error("404 Not Found", "not_found", f"no API path {path}")
    key = loaded.config.api_keys[name]
    request = _Request(method, path, name, key.scope, body)
    return _Answer(reader, loaded, key.account).respond(request, target)


def _not_allowed(allowed: tuple[str, ...], message: str) -> ApiResponse:
    return _error(
        "405 Method Not Allowed", "method_not_allowed", message, ("Allow", ", ".join(allowed))
    )


def _line_of(file: Path, keys: list[str | int]) -> int | None:
    """The line of ``keys`` in ``file``, composed again (the loader keeps no positions)."""
    try:
        root = goyaml.compose_yaml(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line, _, depth = goyaml.locate(root, keys, key=True)
    return line if depth == len(keys) else None


class _Answer:
    """One request's answer, for the account of the key it came with."""

    def __init__(self, reader: Reader, loaded: LoadedConfig, account: str) -> None:
        self.reader = reader
        self.loaded = loaded
        self.account = account

    def _campaigns(self) -> dict[str, Campaign]:
        campaigns = self.loaded.config.campaigns.items()
        return {key: value for key, value in sorted(campaigns) if value.account == self.account}

    def respond(self, request: _Request, target: _Target) -> ApiResponse:
        """Resolve the target for this account, then read it or write it."""
        method = request.method
        campaigns = self._campaigns()
        campaign_id = target.campaign_id
        if campaign_id is None:
            if method not in _READ:
                return self._refuse(method, None, None)
            return self._read_all(campaigns)
        campaign = campaigns.get(campaign_id)
        if campaign is None:
            return _no_campaign(campaign_id)
        credential_id = target.credential_id
        if credential_id is not None and credential_id not in campaign.smtp_credentials:
            return _error(
                "404 Not Found",
                "smtp_credential_not_found",
                f'no SMTP credential "{credential_id}" in campaign "{campaign_id}"',
            )
        if method not in _READ or target.reenable:
            return self._write(request, target, campaign_id, credential_id)
        return self._read(campaign_id, campaign, target)

    def _write(
        self, request: _Request, target: _Target, campaign_id: str, credential_id: str | None
    ) -> ApiResponse:
        """A write: refused (405, 403), or committed through the reader's committer."""
        method = request.method
        kind, allowed = _kind(method, target)
        committer = self.reader.writes()
        mode = self.loaded.config.api.write
        if mode == "off" or committer is None:
            why = "" if kind is None else _why_read_only(mode)
            return self._refuse(
                method, campaign_id, credential_id, reenable=target.reenable, why=why
            )
        if kind is None:
            return _not_allowed(allowed, f"{method} is not served on {request.path}")
        if request.scope != "write":
            logger.info("api write refused key=%s status=403 code=forbidden", request.key)
            return _error(
                "403 Forbidden",
                "forbidden",
                f'the API key "{request.key}" may only read (scope: read); writes need a key '
                "of scope: write under api_keys",
            )
        if kind is Kind.REENABLE and credential_id is not None:
            enabled = self._enabled(campaign_id, credential_id)
            if enabled is not None:  # nothing to re-enable: nothing is committed
                return _json("200 OK", enabled)
        try:
            write = read_request(kind, campaign_id, credential_id, request.body)
            written = committer(write, key=request.key, mode=mode, method=method, path=request.path)
        except WriteRefused as err:
            logger.info(
                "api write refused key=%s status=%s code=%s",
                request.key,
                err.status.split(" ")[0],
                err.code,
            )
            if err.status.startswith("405 "):  # writes are not served here at all
                reads = () if target.reenable else _READ
                return _json(err.status, err.body(), ("Allow", ", ".join(reads)))
            return _json(err.status, err.body())
        return self._written(kind, campaign_id, written)

    def _enabled(self, campaign_id: str, credential_id: str) -> dict[str, object] | None:
        """The answer to a re-enable of a credential that is not disabled, else ``None``."""
        credential = self.loaded.config.campaigns[campaign_id].smtp_credentials[credential_id]
        if self._entry(campaign_id, credential_id, credential).is_disabled(credential.reenabled_at):
            return None
        return {"id": credential_id, "from_email": credential.from_email, "status": "enabled"}

    def _written(self, kind: Kind, campaign_id: str, written: Written) -> ApiResponse:
        """The answer to a write the remote has: what now runs, or 202 with the commit."""
        commit = ("Mailopsd-Commit", written.commit)
        credential_id = written.credential_id or ""
        loaded = self.reader.loaded() if written.applied else None
        campaign = loaded.config.campaigns.get(campaign_id) if loaded is not None else None
        credential = campaign.smtp_credentials.get(credential_id) if campaign else None
        if kind is Kind.DELETE and campaign is not None and credential is None:
            return ApiResponse("204 No Content", b"", (commit,))
        if credential is None:
            pushed = {"id": written.credential_id, "status": "pushed", "commit": written.commit}
            return _json("202 Accepted", {**pushed, "branch": written.branch}, commit)
        if kind is Kind.REENABLE:
            reenabled = {"id": credential_id, "from_email": credential.from_email}
            return _json("200 OK", {**reenabled, "status": "enabled"}, commit)
        fields = _credential_fields(credential_id, credential)
        if kind is Kind.ADD:
            where = f"{PREFIX}/{campaign_id}/smtp_credentials/{credential_id}"
            return _json("201 Created", fields, commit, ("Location", where))
        return _json("200 OK", fields, commit)

    def _read_all(self, campaigns: dict[str, Campaign]) -> ApiResponse:
        rows = [_campaign_json(key, value) for key, value in campaigns.items()]
        return _json("200 OK", {"campaigns": rows})

    def _read(self, campaign_id: str, campaign: Campaign, target: _Target) -> ApiResponse:
        if not target.listing and target.credential_id is None:
            return _json("200 OK", _campaign_json(campaign_id, campaign))
        chosen = target.credential_id
        ids = [chosen] if chosen is not None else sorted(campaign.smtp_credentials)
        try:
            ledger = self.reader.ledger()
            rows = [self._credential(ledger, campaign_id, campaign, key) for key in ids]
        except StorageError as err:
            logger.warning("api read failed, ledger not readable error=%s", err)
            return _error(
                "503 Service Unavailable", "unavailable", "the ledger cannot be read; try again"
            )
        return _json("200 OK", rows[0] if chosen is not None else {"smtp_credentials": rows})

    def _entry(
        self, campaign_id: str, credential_id: str, credential: Credential
    ) -> CredentialState:
        """A credential's entry in the state; a shared mailbox's, when it names one.

        A mailbox disabled in one campaign is disabled in every campaign that names it.
        """
        key = (campaign_id, credential_id)
        uses = self.loaded.config.mailbox_uses.get(credential.shared_as or "", (key,))
        return mailbox_entry(self.reader.state(), key, uses)

    def _credential(
        self, ledger: Ledger, campaign_id: str, campaign: Campaign, credential_id: str
    ) -> dict[str, object]:
        credential = campaign.smtp_credentials[credential_id]
        entry = self._entry(campaign_id, credential_id, credential)
        figures = report.measure_credential(
            ledger,
            (campaign_id, credential_id),
            bounce_window=campaign.bounce_window,
            entry=entry,
            now=self.reader.clock(),
            reasons=campaign.counted_reasons,
        )
        disabled = entry.is_disabled(credential.reenabled_at)
        return {
            **_credential_fields(credential_id, credential),
            "mailbox": credential.shared_as,
            "status": "disabled" if disabled else "enabled",
            "disabled_at": format_time(entry.disabled_at)
            if disabled and entry.disabled_at
            else None,
            "sends_today": figures.counts.sent_today,
            "followups_today": figures.counts.followups_today,
            "bounce_rate": figures.bounce_rate,
            "sends_in_window": figures.counts.sends_in_window,
            "bounces_in_window": figures.counts.bounces_in_window,
        }

    def _refuse(
        self,
        method: str,
        campaign_id: str | None,
        credential_id: str | None,
        *,
        reenable: bool = False,
        why: str = "",
    ) -> ApiResponse:
        """405 for a write, naming the file and line to edit instead."""
        if campaign_id is None:
            files = ", ".join(path.name for path in self.loaded.files)
            hint = f"campaigns are declared in {files}: add or edit one there and commit it"
            return _not_allowed(_READ, f"{method} is not served: the API is read-only; {hint}")
        keys: list[str | int] = ["campaigns", campaign_id]
        if credential_id is not None:
            keys += ["smtp_credentials", credential_id]
        file = self.loaded.campaign_files[campaign_id]
        shared = self._shared(campaign_id, credential_id)
        if shared is not None and method != "DELETE":  # its fields are the mailbox's
            keys, file = ["mailboxes", shared], self.loaded.mailbox_files[shared]
        line = _line_of(file, keys)
        where = f"{file.name}:{line}" if line is not None else file.name
        dotted = ".".join(str(key) for key in keys)
        if shared is not None and method != "DELETE":
            dotted += f": the shared mailbox {campaign_id}/{credential_id} names"
            others = [
                credential_key(*use)
                for use in self.loaded.config.mailbox_uses[shared]
                if use != (campaign_id, credential_id)
            ]
            dotted += f", also used by {', '.join(others)}" if others else ""
        hint = f"edit {where} ({dotted}) and commit it"
        if credential_id is not None:
            hint += f"; {self._reenable_command(campaign_id, credential_id)}"
        if why:
            hint += f"; {why}"
        allowed = () if reenable else _READ
        return _not_allowed(allowed, f"{method} is not served: the API is read-only; {hint}")

    def _shared(self, campaign_id: str, credential_id: str | None) -> str | None:
        """The shared mailbox a campaign's credential names, if it names one."""
        if credential_id is None:
            return None
        return self.loaded.config.campaigns[campaign_id].smtp_credentials[credential_id].shared_as

    def _reenable_command(self, campaign_id: str, credential_id: str) -> str:
        """The ``mailopsd reenable`` command line for a credential, and where to run it.

        Its ``--config`` is the campaign's file, unless the shared mailbox it names is
        declared in another file: then the config directory, which holds both.
        """
        config = self.loaded.campaign_files[campaign_id]
        where = f"the directory of {config.name}"
        shared = self._shared(campaign_id, credential_id)
        if shared is not None and self.loaded.mailbox_files[shared] != config:
            config = self.loaded.root
            where = f"the directory that holds {config.name}/"
        name = shlex.quote(config.name)
        command = f"mailopsd reenable {campaign_id} {credential_id} --config {name}"
        return f"{command}, run in {where}, writes reenabled_at for you"


def _kind(method: str, target: _Target) -> tuple[Kind | None, tuple[str, ...]]:
    """The write a method makes on a target, and the methods the target answers."""
    if target.reenable:
        return (Kind.REENABLE if method == "POST" else None), ("POST",)
    if target.credential_id is not None:
        kinds = {"PATCH": Kind.UPDATE, "DELETE": Kind.DELETE}
        return kinds.get(method), (*_READ, "PATCH", "DELETE")
    if target.listing:
        return (Kind.ADD if method == "POST" else None), (*_READ, "POST")
    return None, _READ


def _why_read_only(mode: str) -> str:
    """Why a write the API has is not served here, and what would serve it."""
    if mode == "off":
        return "or set api.write: commit and use a key of scope: write"
    return f"api.write: {mode} needs the daemon to follow a git remote (run --git URL)"


def _campaign_json(campaign_id: str, campaign: Campaign) -> dict[str, object]:
    return {
        "id": campaign_id,
        "name": campaign.name,
        "timezone": campaign.timezone,
        "bounce_threshold": campaign.bounce_threshold,
        "bounce_window": str(campaign.bounce_window),
        "smtp_credentials": sorted(campaign.smtp_credentials),
    }


def _credential_fields(credential_id: str, credential: Credential) -> dict[str, object]:
    """The public fields of a credential's config: never a login or a password."""
    return {
        "id": credential_id,
        "label": credential.label,
        "from_email": credential.from_email,
        "from_name": credential.from_name,
        "smtp_host": credential.smtp_host,
        "smtp_port": credential.smtp_port,
        "daily_limit": credential.daily_limit,
        "reply_detection": credential.imap_host is not None,
    }

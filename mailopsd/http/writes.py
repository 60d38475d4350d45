"""Writes of the credentials API, read and checked before any file is touched.

A write (``POST``, ``PATCH``, ``DELETE`` of a credential, ``POST …/reenable``) is read
here into a :class:`WriteRequest`: the JSON body's fields checked for their names and
JSON types, and new passwords for their strength. What only the whole config can tell
(an address that is not one, a ``daily_limit`` of 0, IMAP fields given in part) is
checked by validating the config as a push would, by whoever commits the change
(:mod:`mailopsd.daemon.apiwrites`), whose refusals are :class:`WriteRefused`.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import SecretStr

from mailopsd.config.edits import CREDENTIAL_FIELD_ORDER
from mailopsd.errors import ConfigIssue
from mailopsd.secrets.strength import weak_password

__all__ = [
    "Committer",
    "FieldError",
    "Kind",
    "WriteRefused",
    "WriteRequest",
    "Written",
    "credential_id_for",
    "field_errors",
    "invalid",
    "read_request",
]

REQUIRED = tuple(
    name for name in CREDENTIAL_FIELD_ORDER if name != "label" and not name.startswith("imap_")
)
"""The fields a new credential must have (the reference's "required": all but the label
and the IMAP fields)."""

_INTEGERS = frozenset({"smtp_port", "imap_port", "daily_limit"})
_PASSWORDS = frozenset({"smtp_password", "imap_password"})
_LOGINS = frozenset({"smtp_username", "imap_username"})
_ENVELOPE = "smtp_credential"
_SLUG_CUT = re.compile(r"[^a-z0-9]+")
_ID_CHARS = 63


class Kind(enum.Enum):
    """What a write does."""

    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"
    REENABLE = "reenable"


@dataclass(frozen=True)
class FieldError:
    """One field's problem, as ``validation_failed`` lists them.

    Attributes:
        field: The request field (``daily_limit``), or the config path when the problem
            is elsewhere in the config the write would make.
        message: What is wrong; never a password or a login.
    """

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The error as JSON."""
        return {"field": self.field, "message": self.message}


class WriteRefused(Exception):  # noqa: N818 - an answer, not a failure of the code
    """A write that is answered with an error: its HTTP status, code and message.

    Attributes:
        status: The status line (``422 Unprocessable Content``).
        code: The error code (``validation_failed``).
        message: What happened and what to do.
        errors: The field errors (``validation_failed``).
        commit: The commit concerned (the one a ``409`` lost to), if any.
    """

    def __init__(
        self,
        status: str,
        code: str,
        message: str,
        *,
        errors: Iterable[FieldError] = (),
        commit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = tuple(errors)
        self.commit = commit

    def body(self) -> dict[str, object]:
        """The JSON body: ``{"error": {"code", "message", ["errors"], ["commit"]}}``."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.errors:
            error["errors"] = [found.as_dict() for found in self.errors]
        if self.commit is not None:
            error["commit"] = self.commit
        return {"error": error}


def invalid(errors: Iterable[FieldError], message: str = "") -> WriteRefused:
    """A ``422 validation_failed`` with the field errors."""
    errors = tuple(errors)
    summary = "; ".join(f"{found.field}: {found.message}" for found in errors)
    return WriteRefused(
        "422 Unprocessable Content",
        "validation_failed",
        message or summary or "the request is not valid",
        errors=errors,
    )


@dataclass(frozen=True)
class WriteRequest:
    """A write, read from its path and body.

    Attributes:
        kind: What it does.
        campaign_id: The campaign.
        credential_id: The credential (``None`` when adding: the id comes from the label).
        fields: The fields to set, typed as the config reads them (passwords and logins as
            ``SecretStr``); ``None`` removes an optional field (``PATCH``).
    """

    kind: Kind
    campaign_id: str
    credential_id: str | None = None
    fields: Mapping[str, object] = field(default_factory=dict)

    def describe(self, method: str, path: str, credential_id: str | None) -> str:
        """The commit message: what was done, then the request with no secret in it."""
        target = f"{self.campaign_id}/{credential_id or self.credential_id}"
        title = {
            Kind.ADD: f"Add SMTP credential {target}",
            Kind.UPDATE: f"Update SMTP credential {target}",
            Kind.DELETE: f"Delete SMTP credential {target}",
            Kind.REENABLE: f"Re-enable SMTP credential {target}",
        }[self.kind]
        lines = [title, "", f"{method} {path}"]
        if self.fields:
            shown = {name: _shown(name, value) for name, value in self.fields.items()}
            lines.append(json.dumps({_ENVELOPE: shown}, sort_keys=True, ensure_ascii=False))
        return "\n".join(lines) + "\n"


def _shown(name: str, value: object) -> object:
    """A field as a commit message shows it: passwords and logins only as set or removed."""
    if name in _PASSWORDS | _LOGINS:
        return None if value is None else "(set, not shown)"
    return value


@dataclass(frozen=True)
class Written:
    """A write the remote has.

    Attributes:
        commit: The commit at the branch (the head as found when nothing changed).
        branch: The branch pushed to.
        applied: Whether the daemon runs on it now (``False``: pushed to a review branch,
            or not applied within the wait).
        credential_id: The credential written (a new one's id).
    """

    commit: str
    branch: str
    applied: bool
    credential_id: str | None


def read_request(
    kind: Kind, campaign_id: str, credential_id: str | None, body: bytes
) -> WriteRequest:
    """Read a write's body (``{"smtp_credential": {…}}`` for ``POST`` and ``PATCH``).

    Raises:
        WriteRefused: ``400 invalid_json`` for a body that is not JSON, ``422
            validation_failed`` with each field's problem otherwise.
    """
    if kind in (Kind.DELETE, Kind.REENABLE):
        return WriteRequest(kind, campaign_id, credential_id)
    try:
        document = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise WriteRefused(
            "400 Bad Request", "invalid_json", 'the body must be JSON: {"smtp_credential": {…}}'
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get(_ENVELOPE), dict):
        raise invalid(
            [FieldError(_ENVELOPE, 'required: send {"smtp_credential": {…}} with the fields')]
        )
    extra = sorted(key for key in document if key != _ENVELOPE)
    given: dict[str, object] = document[_ENVELOPE]
    errors = [FieldError(name, "not a field of a request") for name in extra]
    errors += _checked(kind, given)
    if kind is Kind.UPDATE and not given and not errors:
        errors.append(FieldError(_ENVELOPE, "no field to change"))
    if errors:
        raise invalid(errors)
    return WriteRequest(kind, campaign_id, credential_id, _typed(given))


def _checked(kind: Kind, given: Mapping[str, object]) -> list[FieldError]:
    """Each field's problem: unknown, missing, of the wrong JSON type, a weak password."""
    known = ", ".join(CREDENTIAL_FIELD_ORDER)
    errors = [
        FieldError(name[:80], f"not a credential field (fields: {known})")
        for name in sorted(set(given) - set(CREDENTIAL_FIELD_ORDER))
    ]
    if kind is Kind.ADD:
        errors += [FieldError(name, "required") for name in REQUIRED if given.get(name) is None]
    for name in CREDENTIAL_FIELD_ORDER:
        problem = _problem(kind, name, given[name]) if name in given else None
        if problem is not None:
            errors.append(FieldError(name, problem))
    return errors


def _problem(kind: Kind, name: str, value: object) -> str | None:
    """What is wrong with one field's value, if anything."""
    if value is None:
        return (
            "required: it cannot be removed" if kind is Kind.UPDATE and name in REQUIRED else None
        )
    if name in _INTEGERS:
        return (
            None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
        )
    if not isinstance(value, str):
        return "must be a string"
    return weak_password(value) if name in _PASSWORDS else None


def _typed(given: Mapping[str, object]) -> dict[str, object]:
    """The fields in the API's order, passwords and logins kept as ``SecretStr``."""
    typed: dict[str, object] = {}
    for name in CREDENTIAL_FIELD_ORDER:
        if name in given:
            value = given[name]
            is_secret = name in _PASSWORDS | _LOGINS and isinstance(value, str)
            typed[name] = SecretStr(str(value)) if is_secret else value
    return typed


def credential_id_for(fields: Mapping[str, object], taken: Iterable[str]) -> str:
    """A new credential's id: its label slugged (else its address' local part), unique.

    ``Backup relay`` gives ``backup-relay``; when that is taken, ``backup-relay-2``, ….
    """
    label, address = fields.get("label"), fields.get("from_email")
    source = label if isinstance(label, str) and label.strip() else None
    if source is None and isinstance(address, str):
        source = address.partition("@")[0]
    # Letters with accents keep their base letter (Zoë → zoe); other characters go.
    plain = unicodedata.normalize("NFKD", source or "").encode("ascii", "ignore").decode()
    slug = _SLUG_CUT.sub("-", plain.lower()).strip("-")[:_ID_CHARS].strip("-")
    slug = slug or "credential"
    used = set(taken)
    found, number = slug, 1
    while found in used:
        number += 1
        suffix = f"-{number}"
        found = slug[: _ID_CHARS - len(suffix)].rstrip("-") + suffix
    return found


def field_errors(
    issues: Iterable[ConfigIssue], credential_path: str, shown: Callable[[str], str]
) -> list[FieldError]:
    """The field errors of a config the write would make invalid.

    An issue under the credential written is named by its field (``daily_limit``);
    any other by its whole location, ``file:line:col: path``.

    Args:
        issues: The config's issues.
        credential_path: The written credential's dotted path
            (``campaigns.c.smtp_credentials.backup``).
        shown: How to name a file in a message (as in the repository).
    """
    errors: list[FieldError] = []
    for issue in issues:
        prefix = credential_path + "."
        if issue.path.startswith(prefix):
            errors.append(FieldError(issue.path.removeprefix(prefix), issue.message))
            continue
        file = shown(issue.file)
        errors.append(FieldError(issue.path or file, str(_renamed(issue, file))))
    return errors


def _renamed(issue: ConfigIssue, file: str) -> ConfigIssue:
    return ConfigIssue(file, issue.line, issue.column, issue.path, issue.message)


class Committer(Protocol):
    """Commits a write to the followed remote and waits for it to be applied."""

    def __call__(
        self, request: WriteRequest, *, key: str, mode: str, method: str, path: str
    ) -> Written:
        """Make the change; what the remote has.

        Args:
            request: The write, checked.
            key: The API key's name: the commit's author.
            mode: ``commit`` (the followed branch, answered once applied) or ``branch``
                (a review branch of its own).
            method: The request method, for the commit message.
            path: The request path, for the commit message.

        Raises:
            WriteRefused: The write is answered with an error.
        """
        ...

"""The state file: what the daemon observed that a person must see, written only by it.

``<state-dir>/state.yaml`` holds, per credential (``campaign/credential``), when it was
auto-disabled and why, where its bounce window starts and the last re-enable applied;
for the daemon, the config revision applied and attempted, the last reload, and the
conditions (``Ready``, ``ConfigError``). It is written atomically (temp file in the same
directory, fsync, rename, fsync the directory) with mode 0600. A file that cannot be read
or parsed stops the daemon with a clear message and is never overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from mailopsd import goyaml
from mailopsd.atomicfile import write_atomically
from mailopsd.errors import StateError
from mailopsd.state.errors import storage_error

__all__ = [
    "SCHEMA_VERSION",
    "STATE_FILE",
    "Condition",
    "CredentialState",
    "DaemonState",
    "GitState",
    "StateFile",
    "format_time",
    "load_state",
    "save_state",
]

SCHEMA_VERSION = 1
STATE_FILE = "state.yaml"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` and whole seconds, as the state file writes times."""
    return goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))


Time = Annotated[datetime, PlainSerializer(format_time, return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialState(_Model):
    """What the daemon knows of one credential beyond its config."""

    disabled_at: Time | None = Field(default=None, description="When it was auto-disabled.")
    disabled_reason: str | None = Field(default=None, description="Why, with the numbers.")
    bounce_window_start: Time | None = Field(
        default=None, description="Bounces before this instant do not count (re-enable)."
    )
    reenabled_at: Time | None = Field(default=None, description="Last re-enable applied.")
    auth_failures: int = Field(default=0, description="AUTH failures in a row.")
    auth_failed_at: Time | None = Field(
        default=None, description="When repeated AUTH failures stopped its use (until it changes)."
    )
    auth_failed_reason: str | None = Field(default=None, description="The server's last answer.")
    inbox_error: str | None = Field(
        default=None, description="Why its mailbox cannot be read now (polls retry by themselves)."
    )
    inbox_error_since: Time | None = Field(default=None, description="Since when.")
    smtp_error: str | None = Field(
        default=None,
        description="Why its server takes no mail now (421, no answer, TLS refused); it retries.",
    )
    smtp_error_since: Time | None = Field(default=None, description="Since when.")

    def is_disabled(self, reenabled_at: datetime | None) -> bool:
        """Tell whether it is disabled, given the ``reenabled_at`` its config holds now."""
        if self.disabled_at is None:
            return False
        return reenabled_at is None or reenabled_at < self.disabled_at


class Condition(_Model):
    """A condition in the shape every condition shares."""

    type: Literal["Ready", "ConfigError", "StateWritable"]
    status: Literal["True", "False"]
    reason: str
    message: str = ""
    last_transition: Time
    errors: tuple[str, ...] = ()


class GitState(_Model):
    """The git remote the daemon follows (``run --git``): what it fetched and applied."""

    remote: str = Field(description="The remote's URL, any password in it removed.")
    branch: str
    path: str = Field(default="", description="The config's directory in the repository.")
    fetched_commit: str | None = Field(default=None, description="The branch's head last fetched.")
    fetched_at: Time | None = None
    applied_commit: str | None = Field(default=None, description="The commit the daemon runs on.")
    applied_at: Time | None = None
    refused_commit: str | None = Field(
        default=None, description="The last fetched commit not applied, until another is."
    )
    refused_reason: str | None = None
    fetch_error: str | None = Field(default=None, description="Why the last fetch failed.")
    fetch_error_since: Time | None = None


class DaemonState(_Model):
    """What the daemon applied and attempted, and when."""

    applied_revision: str | None = None
    applied_content_hash: str | None = None
    applied_at: Time | None = None
    last_reload_at: Time | None = None
    last_reload_result: Literal["ok", "error"] | None = None
    git: GitState | None = None


class StateFile(_Model):
    """The whole state file."""

    schema_version: Literal[1] = 1
    daemon: DaemonState = DaemonState()
    conditions: tuple[Condition, ...] = ()
    credentials: dict[str, CredentialState] = Field(default_factory=dict)

    def credential(self, key: str) -> CredentialState:
        """Return a credential's state (an empty one if there is none)."""
        return self.credentials.get(key, CredentialState())

    def condition(self, kind: str) -> Condition | None:
        """Return the condition of type ``kind``, if set."""
        return next((c for c in self.conditions if c.type == kind), None)

    def with_condition(self, condition: Condition) -> StateFile:
        """Return a copy with ``condition`` set, keeping its transition time if unchanged."""
        old = self.condition(condition.type)
        if old is not None and old.status == condition.status:
            condition = condition.model_copy(update={"last_transition": old.last_transition})
        others = [c for c in self.conditions if c.type != condition.type]
        ordered = sorted([*others, condition], key=lambda c: c.type != "Ready")
        return self.model_copy(update={"conditions": tuple(ordered)})


def _problem(path: Path, what: str) -> StateError:
    return StateError(
        f"state file {path} {what}; mailopsd will not overwrite it: fix it, or move it "
        "away to start from an empty state (auto-disabled credentials are then forgotten)"
    )


def load_state(directory: Path) -> StateFile:
    """Read ``state.yaml`` from ``directory`` (an empty state when there is none).

    Raises:
        StateError: The file exists but cannot be read or is not a valid state file.
    """
    path = directory / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StateFile()
    except (OSError, UnicodeDecodeError) as err:
        raise _problem(path, f"cannot be read ({err})") from err
    try:
        data = goyaml.parse_yaml(text).data
    except goyaml.YamlSyntaxError as err:
        raise _problem(path, f"is not valid YAML (line {err.line}: {err.message})") from err
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise _problem(path, f"has schema version {version!r}, not {SCHEMA_VERSION}")
    try:
        return StateFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(step) for step in first["loc"])
        raise _problem(path, f"is corrupt at {where}: {first['msg']}") from err


def save_state(directory: Path, state: StateFile) -> None:
    """Write ``state.yaml`` atomically with mode 0600.

    Raises:
        StorageError: The file cannot be written (the old one is left as it was); the
            subclass says why (a full disk, a read-only one).
    """
    text = "# Written by mailopsd. Do not edit: re-enable a credential in its YAML config.\n"
    text += yaml.safe_dump(state.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    path = directory / STATE_FILE
    try:
        write_atomically(path, text, mode=0o600)
    except OSError as err:
        raise storage_error(err, f"cannot write state file {path}: {err.strerror or err}") from err

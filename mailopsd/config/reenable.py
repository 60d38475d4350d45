"""Writing ``reenabled_at`` into the YAML file that defines a credential or shared mailbox.

Only one line changes (the value of an existing ``reenabled_at``, or one new line at the
end of the mapping); every other byte, comments included, stays. The text is located
through the nodes' positions, as the SOPS writer does. A campaign's credential that
names a shared mailbox (``{mailbox: id}``) has no fields of its own: its
``reenabled_at`` is the mailbox's, under the top-level ``mailboxes`` in the file that
declares it, and it re-enables the mailbox in every campaign that names it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from mailopsd import goyaml
from mailopsd.config import suggest
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Config
from mailopsd.errors import ConfigError, ConfigIssue
from mailopsd.refs import CredentialRef, credential_key

__all__ = [
    "IgnoredReenable",
    "Target",
    "credential_target",
    "ignored_issue",
    "ignored_issues",
    "mailbox_target",
    "reenable_hint",
    "set_reenabled_at",
    "unknown_credential",
    "unknown_mailbox",
]

FIELD = "reenabled_at"


@dataclass(frozen=True)
class Target:
    """Where a re-enable is written, and what it re-enables.

    Attributes:
        place: The keys of the mapping that gets ``reenabled_at``: a campaign's
            credential, or a shared mailbox (``("mailboxes", id)``).
        path: The config file that declares that mapping.
        uses: The campaigns' credentials it re-enables: the credential, or every use of
            the shared mailbox.
        mailbox: The shared mailbox's id, if it is one.
    """

    place: tuple[str, ...]
    path: Path
    uses: tuple[CredentialRef, ...]
    mailbox: str | None = None

    @property
    def name(self) -> str:
        """How messages name it: ``campaign/credential``, or ``shared mailbox <id>``."""
        if self.mailbox is not None:
            return f"shared mailbox {self.mailbox}"
        return credential_key(*self.uses[0])

    @property
    def arguments(self) -> list[str]:
        """The arguments of ``mailopsd reenable`` that name it."""
        if self.mailbox is not None:
            return ["--mailbox", self.mailbox]
        return list(self.uses[0])

    @property
    def uses_text(self) -> str:
        """The campaigns' credentials it re-enables, as ``campaign/credential, ...``."""
        return ", ".join(credential_key(*use) for use in self.uses) or "none"


def mailbox_target(loaded: LoadedConfig, mailbox_id: str) -> Target:
    """The re-enable of a shared mailbox (one the config declares: see ``unknown_mailbox``)."""
    return Target(
        place=("mailboxes", mailbox_id),
        path=loaded.mailbox_files[mailbox_id],
        uses=loaded.config.mailbox_uses.get(mailbox_id, ()),
        mailbox=mailbox_id,
    )


def credential_target(loaded: LoadedConfig, campaign_id: str, credential_id: str) -> Target:
    """The re-enable of a campaign's credential: its own, or that of the mailbox it names.

    The credential must be one the config defines (see ``unknown_credential``).
    """
    credential = loaded.config.campaigns[campaign_id].smtp_credentials[credential_id]
    if credential.shared_as is not None:
        return mailbox_target(loaded, credential.shared_as)
    return Target(
        place=("campaigns", campaign_id, "smtp_credentials", credential_id),
        path=loaded.campaign_files[campaign_id],
        uses=((campaign_id, credential_id),),
    )


def _child(node: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    found = None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            found = (key_node, value_node)
    return found


def _described(place: Sequence[str]) -> str:
    """A place as messages name it: ``credential camp/primary`` or ``mailbox ada``."""
    if place[0] == "mailboxes":
        return f"mailbox {place[1]}"
    return f"credential {credential_key(place[1], place[3])}"


def _mapping_node(root: Node | None, place: Sequence[str], where: str) -> MappingNode:
    node: Node | None = root
    for step in place:
        pair = _child(node, step)
        if pair is None:
            raise ConfigError([ConfigIssue(where, 0, 0, "", f"defines no {_described(place)}")])
        node = pair[1]
    if not isinstance(node, MappingNode):
        raise ConfigError([ConfigIssue(where, 0, 0, "", f"{place[-1]} is not a mapping")])
    return node


def unknown_mailbox(config: Config, mailbox_id: str) -> str | None:
    """Say what is wrong with a shared mailbox id a person gave (``None``: it is declared)."""
    if mailbox_id in config.mailboxes:
        return None
    known = list(config.mailboxes)
    hint = suggest.did_you_mean(mailbox_id, known)
    return (
        f"no shared mailbox {mailbox_id} in the config (top-level mailboxes:)"
        f"{f'; {hint}' if hint else ''} (mailboxes: {suggest.listed(known) or 'none'})"
    )


def unknown_credential(config: Config, campaign_id: str, credential_id: str) -> str | None:
    """Say what is wrong with a campaign and credential id a person gave, if anything.

    Args:
        config: The loaded config.
        campaign_id: The campaign id as given.
        credential_id: The credential id as given.

    Returns:
        ``None`` when the config defines that credential; else a message naming the id
        that is unknown, the closest known one, and the ids there are.
    """
    campaign = config.campaigns.get(campaign_id)
    if campaign is None:
        known = list(config.campaigns)
        hint = suggest.did_you_mean(campaign_id, known)
        return (
            f"no campaign {campaign_id} in the config{f'; {hint}' if hint else ''} "
            f"(campaigns: {suggest.listed(known) or 'none'})"
        )
    if credential_id in campaign.smtp_credentials:
        return None
    known = list(campaign.smtp_credentials)
    hint = suggest.did_you_mean(credential_id, known)
    return (
        f"no credential {campaign_id}/{credential_id} in the config{f'; {hint}' if hint else ''} "
        f"(credentials of {campaign_id}: {suggest.listed(known)})"
    )


def _insert(text: str, node: MappingNode, value: str) -> str:
    end: int = node.end_mark.index
    if node.flow_style:
        closing = text.rindex("}", 0, end)
        return text[:closing] + f", {FIELD}: {value}" + text[closing:]
    column: int = node.value[0][0].start_mark.column
    line = " " * column + f"{FIELD}: {value}\n"
    start_of_line = text.rfind("\n", 0, end) + 1
    if text[start_of_line:end].strip():
        return text[:end] + ("" if text[:end].endswith("\n") else "\n") + line + text[end:]
    return text[:start_of_line] + line + text[start_of_line:]


def set_reenabled_at(text: str, place: Sequence[str], moment: datetime, where: str) -> str:
    """Return ``text`` with ``reenabled_at`` set to ``moment`` in the mapping at ``place``.

    Args:
        text: A YAML config file (plaintext, or SOPS-encrypted with the field in clear).
        place: The keys of the mapping (``Target.place``): a campaign's credential, or a
            shared mailbox.
        moment: The instant to write (RFC 3339, UTC).
        where: The file name, for messages.

    Raises:
        ConfigError: The file does not define that mapping.
    """
    value = goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))
    node = _mapping_node(goyaml.compose_yaml(text), place, where)
    existing = _child(node, FIELD)
    if existing is None:
        return _insert(text, node, value)
    start: int = existing[1].start_mark.index
    end: int = existing[1].end_mark.index
    return text[:start] + value + text[end:]


def ignored_issue(
    target: Target,
    *,
    reenabled_at: datetime,
    disabled_at: datetime,
    command: str,
) -> ConfigIssue:
    """Say, at the field, that a ``reenabled_at`` before the auto-disable has no effect.

    Args:
        target: The credential or shared mailbox that holds the field.
        reenabled_at: The value the file holds.
        disabled_at: When the daemon disabled the credential (its state file says).
        command: The ``mailopsd reenable`` command line that writes a value that counts.

    Returns:
        The warning, at the field's line and column (0 if the file cannot be read now).
    """
    path = target.path
    loc = (*target.place, FIELD)
    what = "mailbox" if target.mailbox is not None else "credential"
    try:
        line, column, _ = goyaml.locate(goyaml.compose_yaml(path.read_text("utf-8")), loc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        line = column = 0
    written, disabled = (
        goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))
        for moment in (reenabled_at, disabled_at)
    )
    message = (
        f"{written} is before the {what}'s disabled_at {disabled} (it was auto-disabled "
        f"after that time), so it has no effect and the {what} stays disabled; to "
        f"re-enable it, run: {command}"
    )
    return ConfigIssue(str(path), line, column, ".".join(loc), message)


class IgnoredReenable(Protocol):
    """A ``reenabled_at`` with no effect, as reconcile reports it (``ReenableIgnored``)."""

    @property
    def campaign_id(self) -> str:
        """The campaign."""

    @property
    def credential_id(self) -> str:
        """Its credential."""

    @property
    def reenabled_at(self) -> datetime:
        """What its config holds."""

    @property
    def disabled_at(self) -> datetime:
        """When the daemon disabled it, after that."""


def ignored_issues(
    loaded: LoadedConfig, ignored: Iterable[IgnoredReenable], *, given: Sequence[str]
) -> list[ConfigIssue]:
    """Each ``reenabled_at`` that has no effect, at its field, with the command that helps.

    A shared mailbox's is said once, however many campaigns name it, with
    ``mailopsd reenable --mailbox ID``.

    Args:
        loaded: The config.
        ignored: The ``reenabled_at`` values that have no effect, by credential.
        given: The options to repeat in the command (``--config PATH``, ...).
    """
    issues: dict[str, ConfigIssue] = {}
    for note in ignored:
        target = credential_target(loaded, note.campaign_id, note.credential_id)
        command = shlex.join(["mailopsd", "reenable", *target.arguments, *given])
        issue = ignored_issue(
            target, reenabled_at=note.reenabled_at, disabled_at=note.disabled_at, command=command
        )
        issues.setdefault(str(issue), issue)
    return list(issues.values())


def _key_line(text: str, place: Sequence[str]) -> int | None:
    """The 1-based line of the last key of ``place`` in ``text``, if the file has it."""
    try:
        node: Node | None = goyaml.compose_yaml(text)
    except yaml.YAMLError:
        return None
    line = None
    for step in place:
        pair = _child(node, step)
        if pair is None:
            return None
        line, node = int(pair[0].start_mark.line) + 1, pair[1]
    return line


def reenable_hint(
    loaded: LoadedConfig, campaign_id: str, credential_id: str, moment: datetime
) -> str | None:
    """What re-enables a campaign's credential, for a person: the line, and the command.

    Returns ``None`` when the config defines no such credential. The file is named as
    under the config directory (``c.yaml``, or ``mailops/c.yaml`` below it).
    """
    if unknown_credential(loaded.config, campaign_id, credential_id) is not None:
        return None
    target = credential_target(loaded, campaign_id, credential_id)
    root = loaded.root if loaded.root.is_dir() else loaded.root.parent
    try:
        name = str(target.path.relative_to(root))
        line = _key_line(target.path.read_text(encoding="utf-8"), target.place)
    except (OSError, UnicodeDecodeError, ValueError):
        name, line = target.path.name, None
    at = goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))
    where = f"{name}:{line}" if line is not None else name
    command = shlex.join(["mailopsd", "reenable", *target.arguments, "--config", name])
    return (
        f"In {where}, under {'.'.join(target.place)}, add the line\n"
        f"  {FIELD}: {at}\n"
        f"and commit it; or run {command} in the config directory, which writes it."
    )

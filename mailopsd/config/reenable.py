"""Writing ``reenabled_at`` into the YAML file that defines a credential.

Only one line changes (the value of an existing ``reenabled_at``, or one new line at the
end of the credential's mapping); every other byte, comments included, stays. The text is
located through the nodes' positions, as the SOPS writer does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from mailopsd import goyaml
from mailopsd.config import suggest
from mailopsd.config.models import Config
from mailopsd.errors import ConfigError, ConfigIssue
from mailopsd.refs import CredentialRef

__all__ = ["ignored_issue", "set_reenabled_at", "unknown_credential"]

FIELD = "reenabled_at"


def _child(node: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    found = None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            found = (key_node, value_node)
    return found


def _credential_node(
    root: Node | None, campaign_id: str, credential_id: str, where: str
) -> MappingNode:
    node: Node | None = root
    for step in ("campaigns", campaign_id, "smtp_credentials", credential_id):
        pair = _child(node, step)
        if pair is None:
            raise ConfigError(
                [
                    ConfigIssue(
                        where, 0, 0, "", f"defines no credential {campaign_id}/{credential_id}"
                    )
                ]
            )
        node = pair[1]
    if not isinstance(node, MappingNode):
        raise ConfigError([ConfigIssue(where, 0, 0, "", f"{credential_id} is not a mapping")])
    return node


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


def set_reenabled_at(
    text: str, campaign_id: str, credential_id: str, moment: datetime, where: str
) -> str:
    """Return ``text`` with the credential's ``reenabled_at`` set to ``moment``.

    Args:
        text: A YAML config file (plaintext, or SOPS-encrypted with the field in clear).
        campaign_id: The campaign.
        credential_id: The credential.
        moment: The instant to write (RFC 3339, UTC).
        where: The file name, for messages.

    Raises:
        ConfigError: The file does not define that credential.
    """
    value = goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))
    node = _credential_node(goyaml.compose_yaml(text), campaign_id, credential_id, where)
    existing = _child(node, FIELD)
    if existing is None:
        return _insert(text, node, value)
    start: int = existing[1].start_mark.index
    end: int = existing[1].end_mark.index
    return text[:start] + value + text[end:]


def ignored_issue(
    path: Path,
    ids: CredentialRef,
    *,
    reenabled_at: datetime,
    disabled_at: datetime,
    command: str,
) -> ConfigIssue:
    """Say, at the field, that a ``reenabled_at`` before the auto-disable has no effect.

    Args:
        path: The config file that defines the credential.
        ids: ``(campaign id, credential id)``.
        reenabled_at: The value the file holds.
        disabled_at: When the daemon disabled the credential (its state file says).
        command: The ``mailopsd reenable`` command line that writes a value that counts.

    Returns:
        The warning, at the field's line and column (0 if the file cannot be read now).
    """
    loc = ("campaigns", ids[0], "smtp_credentials", ids[1], FIELD)
    try:
        line, column, _ = goyaml.locate(goyaml.compose_yaml(path.read_text("utf-8")), loc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        line = column = 0
    written, disabled = (
        goyaml.format_go_time(moment.replace(microsecond=0).astimezone(UTC))
        for moment in (reenabled_at, disabled_at)
    )
    message = (
        f"{written} is before the credential's disabled_at {disabled} (it was auto-disabled "
        "after that time), so it has no effect and the credential stays disabled; to "
        f"re-enable it, run: {command}"
    )
    return ConfigIssue(str(path), line, column, ".".join(loc), message)

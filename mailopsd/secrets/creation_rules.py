"""``.sops.yaml`` creation rules: which recipients and which rule a new file is encrypted with.

As ``sops`` does: the nearest ``.sops.yaml`` above the file is read, and the first rule
whose ``path_regex`` is empty or is found in the file's path (relative to the
``.sops.yaml`` directory) applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.secrets.metadata import RULE_KEYS, Rule

__all__ = ["CONFIG_NAME", "CreationRule", "NoMatchingRuleError", "find_creation_rule"]

CONFIG_NAME = ".sops.yaml"


@dataclass(frozen=True)
class CreationRule:
    """What a matching creation rule asks for, and which file it came from.

    ``recipients`` is empty for a rule that names none: ``--age`` gives them then.
    """

    source: Path
    recipients: tuple[str, ...]
    rule: Rule | None
    mac_only_encrypted: bool


def _nearest_config(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _recipients(entry: dict[object, object], source: Path) -> tuple[str, ...]:
    value = entry.get("age")
    groups = entry.get("key_groups")
    if value is None and isinstance(groups, list) and len(groups) == 1:
        group = groups[0]
        value = group.get("age") if isinstance(group, dict) else None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return tuple(part.strip() for part in value)
    if value is None:
        return ()
    raise SecretError(f"{source}: the matching creation rule's age: is not a list of recipients")


def _rule(entry: dict[object, object], source: Path) -> Rule | None:
    found = [(key, entry[key]) for key in RULE_KEYS if entry.get(key) not in (None, "")]
    if len(found) > 1:
        raise SecretError(f"{source}: a creation rule names several encryption rules")
    if not found:
        return None
    key, pattern = found[0]
    return Rule(key, str(pattern))


class NoMatchingRuleError(SecretError):
    """A ``.sops.yaml`` applies to the file, but none of its rules matches it."""

    def __init__(self, source: Path, relative: str) -> None:
        """Keep the ``.sops.yaml`` and the path its rules were matched against."""
        super().__init__(f"{source}: no creation rule matches {relative}")
        self.source = source
        self.relative = relative


def find_creation_rule(file: Path) -> CreationRule | None:
    """Return the creation rule for ``file``, or ``None`` when no ``.sops.yaml`` applies.

    Raises:
        NoMatchingRuleError: A ``.sops.yaml`` applies, but none of its rules matches the file.
        SecretError: A ``.sops.yaml`` applies but is invalid.
    """
    absolute = file.resolve()
    source = _nearest_config(absolute.parent)
    if source is None:
        return None
    try:
        data = goyaml.parse_yaml(source.read_text(encoding="utf-8")).data
    except (OSError, UnicodeDecodeError, goyaml.YamlSyntaxError) as err:
        raise SecretError(f"{source}: cannot read: {err}") from err
    rules = data.get("creation_rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return None
    relative = str(absolute).removeprefix(str(source.parent) + "/")
    for entry in rules:
        if not isinstance(entry, dict):
            continue
        pattern = entry.get("path_regex") or ""
        try:
            matches = not pattern or re.search(str(pattern), relative) is not None
        except re.error as err:
            raise SecretError(f"{source}: path_regex {pattern!r} is invalid: {err}") from err
        if matches:
            return CreationRule(
                source=source,
                recipients=_recipients(entry, source),
                rule=_rule(entry, source),
                mac_only_encrypted=entry.get("mac_only_encrypted") is True,
            )
    raise NoMatchingRuleError(source, relative)

"""The ``sops:`` block of an encrypted file: recipients, MAC, and the rule for what is encrypted.

The metadata names at most one rule (a key suffix, a key regex, or a comment regex, each
"encrypted" or "unencrypted"); without one, ``unencrypted_suffix: _unencrypted`` applies.
A value is encrypted or not depending on the map keys on its path (or, for comment rules,
the comments above it), exactly as ``sops`` decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailopsd.errors import SecretError
from mailopsd.goyaml import format_go_time, parse_go_timestamp

__all__ = [
    "DEFAULT_RULE",
    "RULE_KEYS",
    "AgeStanza",
    "Metadata",
    "Rule",
    "mac_aad",
    "parse_metadata",
]

RULE_KEYS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)
_OTHER_KEY_TYPES = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")


@functools.lru_cache(maxsize=4096)
def _key_matches(pattern: str, key: str) -> bool:
    """Tell whether a map key matches a rule's regex (keys repeat: cached)."""
    return _compiled(pattern).search(key) is not None


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Rule:
    """Which values of a file are encrypted: one of the six SOPS rules."""

    kind: str
    pattern: str

    @property
    def is_comment_rule(self) -> bool:
        """Tell whether the rule looks at comments rather than keys."""
        return self.kind.endswith("_comment_regex")

    def key_hit(self, key: str) -> bool:
        """Tell whether one map key matches the rule's suffix or regex (key rules only)."""
        if self.kind.endswith("_suffix"):
            return key.endswith(self.pattern)
        return _key_matches(self.pattern, key)

    def encrypts_hit(self, hit: bool) -> bool:
        """Whether a value is encrypted, given whether any key of its path matches."""
        return hit if self.kind in ("encrypted_suffix", "encrypted_regex") else not hit

    def encrypts(self, path: Sequence[str]) -> bool:
        """Tell whether a value under the map keys ``path`` is encrypted (key rules only)."""
        return self.encrypts_hit(any(self.key_hit(key) for key in path))

    def __str__(self) -> str:
        """Render as it is written in the metadata."""
        return f"{self.kind}: {self.pattern}"


DEFAULT_RULE = Rule("unencrypted_suffix", "_unencrypted")


@dataclass(frozen=True)
class AgeStanza:
    """One recipient's copy of the data key."""

    recipient: str
    enc: str


@dataclass(frozen=True)
class Metadata:
    """What an encrypted file's ``sops:`` block says."""

    age: tuple[AgeStanza, ...]
    lastmodified: str
    mac: str
    rule: Rule
    mac_only_encrypted: bool
    version: str

    @property
    def recipients(self) -> list[str]:
        """The age recipients the data key is wrapped for."""
        return [stanza.recipient for stanza in self.age]


def mac_aad(lastmodified: str) -> str:
    """Return the AAD of the MAC: ``lastmodified`` re-formatted as RFC 3339, whole seconds."""
    moment = parse_go_timestamp(lastmodified.strip())
    if moment is None:
        raise SecretError(f"lastmodified {lastmodified!r} is not an RFC 3339 time")
    return format_go_time(moment.replace(microsecond=0))


def _rule(block: Mapping[object, object], where: str) -> Rule:
    found = [(key, block[key]) for key in RULE_KEYS if block.get(key) not in (None, "")]
    if len(found) > 1:
        names = ", ".join(key for key, _ in found)
        raise SecretError(f"{where}: the sops metadata names several rules ({names}); keep one")
    if not found:
        return DEFAULT_RULE
    key, pattern = found[0]
    if not isinstance(pattern, str):
        raise SecretError(f"{where}: sops.{key} must be a string")
    if key.endswith("regex"):
        try:
            re.compile(pattern)
        except re.error as err:
            raise SecretError(f"{where}: sops.{key} is not a valid regex: {err}") from err
    return Rule(key, pattern)


def _age_stanzas(block: Mapping[object, object], where: str) -> tuple[AgeStanza, ...]:
    groups = block.get("key_groups")
    entries = block.get("age")
    if isinstance(groups, list) and groups:
        if len(groups) > 1:
            raise SecretError(
                f"{where}: the data key is split across {len(groups)} key groups (Shamir); "
                "mailopsd reads files with a single group of age recipients"
            )
        entries = groups[0].get("age") if isinstance(groups[0], Mapping) else None
    stanzas = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("enc"), str):
            stanzas.append(AgeStanza(str(entry.get("recipient", "")), str(entry["enc"])))
    if not stanzas:
        others = [key for key in _OTHER_KEY_TYPES if block.get(key)]
        detail = f"only {', '.join(others)} keys" if others else "no age recipients"
        raise SecretError(
            f"{where}: encrypted with {detail}; mailopsd decrypts with age identities only"
        )
    return tuple(stanzas)


def parse_metadata(block: object, where: str) -> Metadata:
    """Read a ``sops:`` block.

    Args:
        block: The value of the top-level ``sops`` key.
        where: The file name, for messages.

    Returns:
        The metadata.

    Raises:
        SecretError: The block is missing pieces or uses what mailopsd does not support.
    """
    if not isinstance(block, Mapping):
        raise SecretError(f"{where}: the sops metadata is not a mapping")
    lastmodified = block.get("lastmodified")
    if isinstance(lastmodified, datetime):
        lastmodified = format_go_time(lastmodified)
    mac = block.get("mac")
    if not isinstance(lastmodified, str) or not isinstance(mac, str):
        raise SecretError(f"{where}: the sops metadata has no lastmodified or no mac")
    return Metadata(
        age=_age_stanzas(block, where),
        lastmodified=lastmodified,
        mac=mac,
        rule=_rule(block, where),
        mac_only_encrypted=block.get("mac_only_encrypted") is True,
        version=str(block.get("version", "")),
    )

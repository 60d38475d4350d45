"""The weak passwords among those a config file holds in clear text, to be encrypted.

``validate`` and ``secrets encrypt`` warn of each password that ``secrets encrypt``
would encrypt (the ``smtp_password`` and ``imap_password`` of campaigns' credentials and
of shared mailboxes, in clear in a plaintext file, or not yet ``ENC[…]`` in a SOPS file
whose rule covers them) when it is weak by :mod:`mailopsd.secrets.strength`: once
encrypted, it is too late to choose it well. An encrypted password is not estimated,
since that would take decrypting it, which these warnings never do. A warning names the
field and where its value is, never the value.

The files are read again for this, apart from the load: their clear passwords are wanted
even when the load fails on them (a secret in clear is an error unless
``--allow-plaintext-secrets``), and the daemon never needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mailopsd import goyaml, secrets
from mailopsd.config import confined, loader
from mailopsd.config.origins import Source
from mailopsd.errors import ConfigError, ConfigIssue, SecretError
from mailopsd.secrets import strength
from mailopsd.secrets.values import is_sealed

__all__ = ["PASSWORD_FIELDS", "read_weak_clear_passwords", "weak_clear_passwords"]

PASSWORD_FIELDS = ("smtp_password", "imap_password")
"""The fields holding a password chosen for a mailbox (``smtp_username`` is a login)."""


def _entries(value: object) -> Iterator[tuple[str, object]]:
    """The entries of a mapping by id (none for anything else)."""
    if isinstance(value, dict):
        for key, entry in value.items():
            yield str(key), entry


def _password_places(data: dict[str, object]) -> Iterator[tuple[tuple[str, ...], object]]:
    """Each password field of a config file's tree with its value as stored.

    Shared mailboxes first, then campaigns' own credentials (an entry that names a shared
    mailbox, ``{mailbox: id}``, has none).
    """
    places: list[tuple[tuple[str, ...], object]] = [
        (("mailboxes", mailbox_id), mailbox)
        for mailbox_id, mailbox in _entries(data.get("mailboxes"))
    ]
    for campaign_id, campaign in _entries(data.get("campaigns")):
        if isinstance(campaign, dict):
            places.extend(
                (("campaigns", campaign_id, "smtp_credentials", credential_id), credential)
                for credential_id, credential in _entries(campaign.get("smtp_credentials"))
            )
    for loc, credential in places:
        if isinstance(credential, dict):
            for name in PASSWORD_FIELDS:
                if name in credential:
                    yield (*loc, name), credential[name]


def _file_rule(
    data: dict[str, object], path: Path, rule: secrets.Rule | None
) -> secrets.Rule | None:
    """The rule that decides which values of the file are encrypted (``None``: every secret).

    Raises:
        SecretError: A SOPS file's ``sops:`` block cannot be read.
    """
    if secrets.is_encrypted_data(data):
        return secrets.parse_metadata(data["sops"], str(path)).rule
    return rule


def _is_covered(loc: tuple[str, ...], rule: secrets.Rule | None) -> bool:
    """Whether ``rule`` encrypts the value at ``loc``.

    A comment rule decides by comments, which the parsed tree does not keep: the
    password is taken as covered.
    """
    return rule is None or rule.is_comment_rule or rule.encrypts(loc)


def weak_clear_passwords(
    path: Path, text: str, *, rule: secrets.Rule | None = None
) -> list[ConfigIssue]:
    """Return a warning for each weak password a config file holds in clear, to be encrypted.

    Args:
        path: The file, as its warnings name it.
        text: Its text, as stored.
        rule: For a plaintext file, the rule it is to be encrypted with (default: every
            password); a SOPS file's own rule is in its ``sops:`` block.

    Returns:
        One warning per weak password in file order, located at its value, with the reason
        :func:`mailopsd.secrets.strength.weak_password` gives. None for a text that is
        not a config mailopsd can read (not YAML, not a mapping, a ``sops:`` block it
        cannot read): loading or encrypting it says what is wrong.
    """
    try:
        data = goyaml.parse_yaml(text).data
        if not isinstance(data, dict):
            return []
        file_rule = _file_rule(data, path, rule)
    except (goyaml.YamlSyntaxError, SecretError):
        return []
    source = Source(path=path, raw=text.encode(), text=text)
    reasons: dict[str, str | None] = {}  # a password set in several places is estimated once
    issues = []
    for loc, value in _password_places(data):
        if not isinstance(value, str) or is_sealed(value) or not _is_covered(loc, file_rule):
            continue
        if value not in reasons:
            reasons[value] = strength.weak_password(value)
        reason = reasons[value]
        if reason is not None:
            issues.append(source.issue(loc, reason))
    return sorted(issues)


def read_weak_clear_passwords(config_path: Path) -> list[ConfigIssue]:
    """Read the config files at ``config_path`` and warn of their weak clear passwords.

    Args:
        config_path: A config file or a directory of config files.

    Returns:
        The warnings of :func:`weak_clear_passwords`, file by file in merge order. A file
        that cannot be read is left out: loading the config says why.
    """
    try:
        files = loader.config_files(config_path)
    except ConfigError:
        return []
    root = confined.tree_root(config_path) if config_path.is_dir() else None
    issues = []
    for file in files:
        try:
            raw = confined.read_bytes(
                file, root, what="config file", limit_bytes=confined.CONFIG_MAX_BYTES
            )
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            continue
        issues.extend(weak_clear_passwords(file, text))
    return issues

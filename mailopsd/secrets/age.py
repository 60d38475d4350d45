"""Age identities and recipients: finding the key, unwrapping and wrapping the data key.

Identities are looked for in this order, the first place that exists being used:
``--age-key-file``, ``$MAILOPSD_AGE_KEY_FILE``, ``$CREDENTIALS_DIRECTORY/age-key`` (systemd
``LoadCredential=``), ``$SOPS_AGE_KEY_FILE``, ``$SOPS_AGE_KEY``, then
``~/.config/sops/age/keys.txt``. The environment is passed in by the entry point.
"""

from __future__ import annotations

import logging
import shlex
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyrage
from pyrage import x25519

from mailopsd.errors import SecretError

__all__ = [
    "IdentitySet",
    "find_identities",
    "generate_identity",
    "parse_identities",
    "parse_recipient",
    "unwrap_data_key",
    "wrap_data_key",
]

logger = logging.getLogger(__name__)

_ARMOR_HEADER = "-----BEGIN AGE ENCRYPTED FILE-----"


@dataclass(frozen=True)
class IdentitySet:
    """Age identities and where they came from (for messages)."""

    identities: tuple[x25519.Identity, ...]
    where: str

    def __repr__(self) -> str:
        """Never show key material."""
        return f"IdentitySet({len(self.identities)} identities from {self.where})"


def parse_identities(text: str, where: str) -> IdentitySet:
    """Read identities as ``age-keygen`` writes them: one a line, ``#`` comments.

    Raises:
        SecretError: A line is neither blank, a comment, nor an X25519 identity (the
            line is named by number, never shown), or there is no identity at all.
    """
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not entry.startswith("AGE-SECRET-KEY-1"):
            raise SecretError(
                f"{where}: line {number} is not an age identity (expected AGE-SECRET-KEY-1…; "
                "post-quantum and plugin identities are not supported)"
            )
        try:
            identities.append(x25519.Identity.from_str(entry))
        except pyrage.IdentityError as err:
            raise SecretError(f"{where}: line {number} is not a valid age identity") from err
    if not identities:
        raise SecretError(f"{where}: holds no age identity")
    return IdentitySet(tuple(identities), where)


def _read_key_file(path: Path) -> IdentitySet:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise SecretError(f"cannot read age key file {path}: {reason}") from err
    except UnicodeDecodeError as err:
        raise SecretError(f"age key file {path} is not UTF-8 text: is it a key file?") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "age key file readable by others path=%s mode=%s; run: chmod 600 %s",
            path,
            oct(mode & 0o777),
            shlex.quote(str(path)),
        )
    return parse_identities(text, str(path))


def find_identities(
    *, key_file: Path | None, environ: Mapping[str, str], home: Path
) -> IdentitySet:
    """Find the age identities to decrypt with, in the documented order.

    Args:
        key_file: ``--age-key-file``, if given.
        environ: The process environment.
        home: The user's home directory.

    Returns:
        The identities of the first place that exists.

    Raises:
        SecretError: No place holds identities, or the one found is unusable.
    """
    places: list[tuple[str, Callable[[], IdentitySet | None]]] = [
        ("--age-key-file", lambda: _read_key_file(key_file) if key_file else None),
        ("$MAILOPSD_AGE_KEY_FILE", lambda: _from_env_file(environ, "MAILOPSD_AGE_KEY_FILE")),
        ("$CREDENTIALS_DIRECTORY/age-key", lambda: _from_credentials(environ)),
        ("$SOPS_AGE_KEY_FILE", lambda: _from_env_file(environ, "SOPS_AGE_KEY_FILE")),
        ("$SOPS_AGE_KEY", lambda: _from_env_keys(environ)),
        ("~/.config/sops/age/keys.txt", lambda: _from_default(environ, home)),
    ]
    for _, find in places:
        found = find()
        if found is not None:
            return found
    tried = ", ".join(name for name, _ in places)
    raise SecretError(f"no age identity found (looked at {tried}); give one with --age-key-file")


def _from_env_file(environ: Mapping[str, str], name: str) -> IdentitySet | None:
    value = environ.get(name)
    return _read_key_file(Path(value)) if value else None


def _from_credentials(environ: Mapping[str, str]) -> IdentitySet | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory or not (Path(directory) / "age-key").exists():
        return None
    return _read_key_file(Path(directory) / "age-key")


def _from_env_keys(environ: Mapping[str, str]) -> IdentitySet | None:
    value = environ.get("SOPS_AGE_KEY")
    if not value:
        return None
    return parse_identities("\n".join(value.split()), "$SOPS_AGE_KEY")


def _from_default(environ: Mapping[str, str], home: Path) -> IdentitySet | None:
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    path = base / "sops" / "age" / "keys.txt"
    return _read_key_file(path) if path.exists() else None


def parse_recipient(text: str) -> x25519.Recipient:
    """Read an ``age1…`` recipient.

    Raises:
        SecretError: The text is not an X25519 age recipient.
    """
    try:
        return x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError as err:
        if text.strip().upper().startswith("AGE-SECRET-KEY-"):
            # Never echo it: this is the private half, given where the public one belongs.
            raise SecretError(
                "a private age identity (AGE-SECRET-KEY-1…) was given where a recipient "
                "belongs; give its public key instead, the age1… on the '# public key:' "
                "line of the key file"
            ) from None
        raise SecretError(f"{text.strip()!r} is not an age recipient (age1…)") from err


def wrap_data_key(data_key: bytes, recipient: str) -> str:
    """Encrypt the data key for one recipient, ASCII-armored as ``sops`` writes it."""
    armored = pyrage.encrypt(data_key, [parse_recipient(recipient)], armored=True)
    return armored.decode("ascii")


def unwrap_data_key(
    stanzas: Sequence[tuple[str, str]], identities: IdentitySet, where: str
) -> bytes:
    """Recover the data key from the first ``(recipient, enc)`` stanza an identity opens.

    Raises:
        SecretError: No identity opens any stanza (the message lists the recipients).
    """
    for _, enc in stanzas:
        text = enc.strip()
        if not text.startswith(_ARMOR_HEADER):
            continue
        try:
            data_key = pyrage.decrypt(text.encode("ascii"), list(identities.identities))
        except (pyrage.DecryptError, UnicodeEncodeError):
            continue
        if len(data_key) == 32:
            return data_key
    recipients = ", ".join(recipient for recipient, _ in stanzas) or "no recipient"
    raise SecretError(
        f"none of the age identities in {identities.where} can open {where}; "
        f"it is encrypted for {recipients}"
    )


def generate_identity() -> tuple[str, str]:
    """Return a new ``(identity, recipient)`` pair as strings."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())

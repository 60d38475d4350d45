"""A ledger file: a shared ledger's address and its password, the password encrypted.

::

    ledger: postgresql://mailopsd@db.example.com:5432/mailopsd
    ledger_password: ENC[AES256_GCM,data:…,type:str]   # mailopsd secrets encrypt
    sops: …

``run --ledger FILE`` points the state directory at it (``ledger.url`` then holds the
file's path, never the password), and every command that opens the ledger reads it
again: its password is decrypted in memory with the age key found as the config's is
(``--age-key-file``, ``$CREDENTIALS_DIRECTORY/age-key`` under systemd, …). A password
in clear is refused, as in the config. Without ``ledger_password``, the file is the
address alone, and the password comes as for an address (``passfile=``, ``~/.pgpass``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from mailopsd import secrets
from mailopsd.errors import SecretError
from mailopsd.state.errors import StorageError

__all__ = ["LEDGER_PASSWORD", "LedgerFileError", "read", "use_age_key_file"]

LEDGER_PASSWORD = "ledger_password"  # noqa: S105 - a field's name
"""The field holding the password (which ``mailopsd secrets encrypt`` encrypts)."""
_KEYS = frozenset({"ledger", LEDGER_PASSWORD, "sops"})

_key_file: Path | None = None
_environ: Mapping[str, str] = {}


class LedgerFileError(StorageError):
    """A ledger file that cannot be used (the message says why and what to do)."""


def use_age_key_file(path: Path | None, environ: Mapping[str, str]) -> None:
    """Decrypt ledger files with the key the config's would be found with.

    That is ``path`` (``--age-key-file``), else one that ``environ`` (the process's
    environment) names. Set by the entry point, once per command.
    """
    global _key_file, _environ
    _key_file, _environ = path, environ


def read(path: Path) -> tuple[str, str | None]:
    """The address in the ledger file at ``path``, and its password (decrypted) or None.

    Read once per version of the file (its time and size), then from memory.

    Raises:
        LedgerFileError: The file cannot be read or decrypted, has no address, or holds
            its password in clear.
    """
    try:
        stat = path.stat()
    except OSError as err:
        raise LedgerFileError(f"ledger file {path}: {err.strerror or err}") from err
    return _read(path, stat.st_mtime_ns, stat.st_size, _key_file)


@lru_cache(maxsize=8)
def _read(path: Path, _mtime_ns: int, _size: int, key_file: Path | None) -> tuple[str, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LedgerFileError(f"ledger file {path} cannot be read: {err}") from err
    where = str(path)
    try:
        encrypted = secrets.is_encrypted_text(text, where)
        if encrypted:
            identities = secrets.find_identities(
                key_file=key_file, environ=_environ, home=Path.home()
            )
            data = secrets.decrypt_yaml_data(text, identities, where)[0]
        else:
            data = yaml.safe_load(text)
    except SecretError as err:
        raise LedgerFileError(f"ledger file {path}: {err}") from err
    except yaml.YAMLError as err:
        raise LedgerFileError(f"ledger file {path} is not YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("ledger"), str):
        raise LedgerFileError(
            f"ledger file {path} has no 'ledger: postgresql://USER@HOST[:PORT]/DATABASE'"
        )
    unknown = sorted(str(key) for key in data if key not in _KEYS)
    if unknown:
        raise LedgerFileError(
            f"ledger file {path}: unknown field(s) {', '.join(unknown)} "
            f"(it holds ledger and {LEDGER_PASSWORD})"
        )
    password = data.get(LEDGER_PASSWORD)
    if password is not None and not encrypted:
        raise LedgerFileError(
            f"ledger file {path}: {LEDGER_PASSWORD} is in clear; encrypt it: "
            f"mailopsd secrets encrypt --in-place {path}"
        )
    return str(data["ledger"]), None if password is None else str(password)

"""One SOPS value: its ``ENC[AES256_GCM,…]`` string, its typed plaintext, its MAC bytes.

A value is encrypted with AES-256-GCM under the file's data key, with the value's path
(map keys joined by ``:`` plus a trailing ``:``) as additional authenticated data, so a
ciphertext moved to another key no longer decrypts. Plaintexts are written the way
``sops`` writes them, so either tool reads what the other wrote.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailopsd.goyaml import format_go_time, parse_go_timestamp

__all__ = [
    "IV_BYTES",
    "Comment",
    "NotOpenedError",
    "SealError",
    "Sealed",
    "ValueCipher",
    "canonical_bytes",
    "format_go_float",
    "is_sealed",
    "parse_sealed",
]

IV_BYTES = 32
_TAG_BYTES = 16
_PREFIX = "ENC[AES256_GCM,data:"
_SEALED = re.compile(r"ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_GO_INT = re.compile(r"[-+]?[0-9]+\Z")
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_KINDS = frozenset({"str", "int", "float", "bool", "time", "comment", "bytes"})


class SealError(ValueError):
    """A value cannot be sealed or opened; the text says why (never the value)."""


class NotOpenedError(SealError):
    """A well-formed value that this key does not open under this path (AAD)."""


@dataclass(frozen=True)
class Comment:
    """A YAML comment's text (without the ``#``), as a SOPS tree item."""

    text: str


@dataclass(frozen=True)
class Sealed:
    """The parts of an ``ENC[AES256_GCM,…]`` string."""

    data: bytes
    iv: bytes
    tag: bytes
    kind: str


def is_sealed(value: object) -> bool:
    """Tell whether ``value`` is a string that starts like an encrypted SOPS value."""
    return isinstance(value, str) and value.startswith("ENC[AES256_GCM,")


def _parts(text: str) -> tuple[bytes, bytes, bytes, str] | None:
    """Split a well-formed ``ENC[…]`` string the short way; ``None`` for anything else.

    Forty thousand values spent more time in the regular expression and ``b64decode``'s
    checks than in AES-GCM; this takes the common shape apart with string methods and
    strict base64, and leaves every other text to :func:`parse_sealed`'s general way.
    """
    if not text.startswith(_PREFIX) or not text.endswith("]"):
        return None
    fields = text[len(_PREFIX) : -1].split(",")
    if len(fields) != 4:
        return None
    data, iv, tag, kind = fields
    if not (iv.startswith("iv:") and tag.startswith("tag:") and kind.startswith("type:")):
        return None
    try:
        return (
            binascii.a2b_base64(data, strict_mode=True),
            binascii.a2b_base64(iv[3:], strict_mode=True),
            binascii.a2b_base64(tag[4:], strict_mode=True),
            kind[5:],
        )
    except (binascii.Error, ValueError):
        return None


def parse_sealed(text: str) -> Sealed:
    """Split an ``ENC[…]`` string into its parts.

    Raises:
        SealError: The text is not a well-formed encrypted value.
    """
    match = _SEALED.match(text)
    if match is None:
        raise SealError("is not a well-formed ENC[AES256_GCM,…] value")
    data, iv, tag, kind = match.groups()
    try:
        parts = [base64.b64decode(part, validate=True) for part in (data, iv, tag)]
    except binascii.Error as err:
        raise SealError("has invalid base64 in its ENC[…] value") from err
    return Sealed(data=parts[0], iv=parts[1], tag=parts[2], kind=kind)


def format_go_float(number: float) -> str:
    """Format a float as Go's shortest plain decimal (``1``, ``12.5``, never ``1e+21``)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return format(Decimal(repr(number)).normalize(), "f")


def canonical_bytes(value: object) -> bytes:
    """Return the bytes ``sops`` feeds to its MAC (and encrypts) for a typed value.

    Raises:
        SealError: The value has a type SOPS cannot store.
    """
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise SealError("is an integer outside the 64-bit range sops can store")
        return str(value).encode()
    if isinstance(value, float):
        return format_go_float(value).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, datetime):
        return format_go_time(value).encode()
    if isinstance(value, Comment):
        return value.text.encode()
    if isinstance(value, bytes):
        return value
    raise SealError(f"has a type sops cannot store ({type(value).__name__})")


def _kind_of(value: object) -> str:
    kinds: list[tuple[type, str]] = [
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (datetime, "time"),
        (Comment, "comment"),
        (bytes, "bytes"),
    ]
    return next(kind for cls, kind in kinds if isinstance(value, cls))


def _decode(plaintext: bytes, kind: str) -> object:
    text = plaintext.decode("utf-8", errors="strict")
    if kind == "str":
        return text
    if kind == "int" and _GO_INT.match(text):
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool" and text in _GO_TRUE | _GO_FALSE:
        return text in _GO_TRUE
    if kind == "time":
        moment = parse_go_timestamp(text)
        if moment is not None:
            return moment
    if kind == "comment":
        return Comment(text)
    if kind == "bytes":
        return plaintext
    raise SealError(f"has a plaintext that is not a valid {kind}")


class ValueCipher:
    """Seals and opens values with one file's data key."""

    def __init__(self, data_key: bytes) -> None:
        """Use ``data_key`` (32 bytes) for every value."""
        if len(data_key) != 32:
            raise SealError("data key must be 32 bytes")
        self._aead = AESGCM(data_key)

    def open(self, text: str, aad: str) -> object:
        """Decrypt an ``ENC[…]`` string and restore its type.

        Args:
            text: The encrypted value.
            aad: The value's path, ``a:b:c:``.

        Returns:
            The typed plaintext (``Comment`` for a comment).

        Raises:
            SealError: Malformed, not decryptable with this key at this path, or an
                unknown type.
        """
        parts = _parts(text)
        if parts is None:
            sealed = parse_sealed(text)
            parts = (sealed.data, sealed.iv, sealed.tag, sealed.kind)
        data, iv, tag, kind = parts
        if kind not in _KINDS:
            raise SealError(f"has an unknown type {kind!r}")
        try:
            plaintext = self._aead.decrypt(iv, data + tag, aad.encode())
        except (InvalidTag, ValueError) as err:
            raise NotOpenedError(
                "cannot be decrypted (moved from another key, or corrupted)"
            ) from err
        if kind == "str":  # most values: no more to do than _decode does
            try:
                return plaintext.decode()
            except UnicodeDecodeError as err:
                raise SealError("has a plaintext that is not a valid str") from err
        try:
            return _decode(plaintext, kind)
        except (UnicodeDecodeError, ValueError) as err:
            raise SealError(f"has a plaintext that is not a valid {kind}") from err

    def seal(self, value: object, aad: str) -> str:
        """Encrypt a typed value (with a fresh random IV) into an ``ENC[…]`` string."""
        plaintext = canonical_bytes(value)
        iv = os.urandom(IV_BYTES)
        output = self._aead.encrypt(iv, plaintext, aad.encode())
        data, tag = output[:-_TAG_BYTES], output[-_TAG_BYTES:]
        parts = (base64.b64encode(part).decode() for part in (data, iv, tag))
        return "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]".format(*parts, _kind_of(value))

"""Signed tokens for the links put into messages: unsubscribe, open pixel, click redirect.

A token names what a link is about (campaign, lead, and for a click the original URL)
and carries an HMAC-SHA256 over that and the link's purpose, truncated to 128 bits. It
is not guessable, cannot be turned into another lead's, campaign's or purpose's token,
and a click token cannot point anywhere its URL does not: the redirect target is inside
what is signed. Tokens do not expire (a link in an old message keeps working).

Wire form, URL-safe base64 without padding of::

    version (1 byte) | len campaign | campaign | len email | email | url | mac (16 bytes)

lengths are unsigned LEB128, strings UTF-8; the URL (clicks only) runs up to the MAC.
The MAC key is derived from the configured signing key, so the raw key signs nothing
directly. Pure: no I/O, and a malformed token is ``None``, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "CLICK",
    "OPEN",
    "PURPOSES",
    "UNSUBSCRIBE",
    "Claims",
    "link_path",
    "link_url",
    "parse_link_path",
    "sign",
    "verify",
]

UNSUBSCRIBE = "u"
OPEN = "o"
CLICK = "c"
PURPOSES = frozenset({UNSUBSCRIBE, OPEN, CLICK})

_VERSION = 1
_MAC_BYTES = 16
_MAX_TOKEN_CHARS = 8192
_KDF_LABEL = b"mailopsd link tokens v1"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_LINK_PATH = re.compile(r"/(?:([uc])/([A-Za-z0-9_-]+)|(o)/([A-Za-z0-9_-]+)\.gif)")


@dataclass(frozen=True)
class Claims:
    """What a valid token says.

    Attributes:
        campaign_id: The campaign the message belongs to.
        email: The lead's address, lower case.
        url: For a click token, the original link target; ``None`` otherwise.
    """

    campaign_id: str
    email: str
    url: str | None = None


def _mac_key(key: bytes) -> bytes:
    return hmac.new(key, _KDF_LABEL, hashlib.sha256).digest()


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if not number:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return _varint(len(data)) + data


def _mac(key: bytes, purpose: str, payload: bytes) -> bytes:
    digest = hmac.new(_mac_key(key), _field(purpose) + payload, hashlib.sha256).digest()
    return digest[:_MAC_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(key: bytes, purpose: str, campaign_id: str, email: str, url: str | None = None) -> str:
    """Make the token of one link.

    Args:
        key: The signing key (``http.signing_key``), as bytes.
        purpose: ``"u"`` unsubscribe, ``"o"`` open pixel or ``"c"`` click redirect.
        campaign_id: The campaign of the message.
        email: The lead's address (signed lower case).
        url: The click's original target: required for ``"c"``, refused otherwise.

    Returns:
        The token: URL-safe base64 without padding.

    Raises:
        ValueError: Unknown purpose, or ``url`` given where it does not belong.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if (purpose == CLICK) != bool(url):
        raise ValueError("a click token needs the url; other tokens take none")
    payload = bytes([_VERSION]) + _field(campaign_id) + _field(email.lower())
    if url:
        payload += url.encode("utf-8")
    return _encode(payload + _mac(key, purpose, payload))


def _decode(token: str) -> bytes | None:
    if len(token) > _MAX_TOKEN_CHARS or len(token) % 4 == 1 or not _TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # Only the canonical form: the same bytes never have two tokens.
    return raw if _encode(raw) == token else None


def _read_field(payload: bytes, start: int) -> tuple[str, int]:
    """Read one length-prefixed string; ``ValueError`` (or ``IndexError``) if malformed."""
    length = shift = 0
    position = start
    while True:
        byte = payload[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if shift > 21:
            raise ValueError("length too long")
    end = position + length
    if end > len(payload):
        raise ValueError("field past the end")
    return payload[position:end].decode("utf-8"), end


def _claims(purpose: str, payload: bytes) -> Claims | None:
    try:
        if payload[0] != _VERSION:
            return None
        campaign_id, position = _read_field(payload, 1)
        email, position = _read_field(payload, position)
        url = payload[position:].decode("utf-8") or None
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if (purpose == CLICK) != (url is not None):
        return None
    return Claims(campaign_id, email, url)


def verify(key: bytes, purpose: str, token: str) -> Claims | None:
    """Check a token received on a link of ``purpose``, and read it.

    Args:
        key: The signing key (``http.signing_key``), as bytes.
        purpose: The purpose of the link it came on (``"u"``, ``"o"`` or ``"c"``).
        token: The token as received.

    Returns:
        What the token says, or ``None`` when it is malformed, made with another key, or
        made for another purpose.
    """
    if purpose not in PURPOSES or not isinstance(token, str):
        return None
    raw = _decode(token)
    if raw is None or len(raw) <= _MAC_BYTES:
        return None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        return None
    return _claims(purpose, payload)


def link_path(purpose: str, token: str) -> str:
    """The path of a link: ``/u/<token>``, ``/o/<token>.gif`` or ``/c/<token>``.

    Raises:
        ValueError: Unknown purpose.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return f"/{purpose}/{token}.gif" if purpose == OPEN else f"/{purpose}/{token}"


def parse_link_path(path: str) -> tuple[str, str] | None:
    """Split a request path made by ``link_path`` into ``(purpose, token)``.

    Returns:
        The purpose and the token (still to be verified), or ``None`` for any other path.
    """
    match = _LINK_PATH.fullmatch(path)
    if match is None:
        return None
    if match.group(1) is not None:
        return match.group(1), match.group(2)
    return match.group(3), match.group(4)


def link_url(
    base_url: str,
    key: bytes,
    *,
    purpose: str,
    campaign_id: str,
    email: str,
    url: str | None = None,
) -> str:
    """The full URL of a signed link: ``base_url`` then ``link_path``.

    Args:
        base_url: ``http.public_base_url`` (no trailing slash).
        key: The signing key, as bytes.
        purpose: ``"u"``, ``"o"`` or ``"c"``.
        campaign_id: The campaign of the message.
        email: The lead's address.
        url: The click's original target (``"c"`` only).

    Returns:
        The link to put into the message.
    """
    return base_url + link_path(purpose, sign(key, purpose, campaign_id, email, url))

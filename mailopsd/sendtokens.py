"""Send tokens (VERP): which exact send a delivery report speaks of, proven by a MAC.

A mailbox with ``verp_domain`` sends each message with the envelope sender
``bounces+<token>@<verp_domain>`` and the header ``X-Mailopsd-Send: <token>``. Delivery
reports go to the envelope sender, so the token comes back in the report's envelope
fields (``Delivered-To``, ``X-Original-To``, ``Envelope-To``, ``To``) even when the
report quotes nothing of the message; when it returns the message's headers, in their
``Return-Path`` and ``X-Mailopsd-Send`` too.

The token is the ledger's send id and a MAC, both in lowercase base32 without padding
(RFC 4648 alphabet ``a-z2-7``): servers may change the case of a local part, so the
token is read case-insensitively::

    send id (base32 digits, most significant first, no leading "a") | MAC (16 chars)

The MAC is HMAC-SHA256, with a key derived from the daemon's send-token key, over a
purpose label, the send id and the send's Message-ID, truncated to 80 bits. The
Message-ID binds the token to the one ledger row it was made for: were send ids ever
given again (a ledger started afresh beside the old key), an old report still names no
new send. A token cannot be guessed or turned into another send's. Tokens are at most
29 characters, so ``bounces+<token>`` stays far below the 64 characters of a local part.

Pure: no I/O; malformed input is ``None`` or no candidate, never an exception, and the
search reads at most ``MAX_SCAN`` bytes of a message, in time linear in them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

__all__ = [
    "HEADER",
    "LOCAL_PREFIX",
    "MAX_CANDIDATES",
    "MAX_SCAN",
    "candidates",
    "envelope_sender",
    "make",
    "parse",
    "verify",
]

HEADER = "X-Mailopsd-Send"
"""The header that carries a message's send token."""
LOCAL_PREFIX = "bounces+"
"""The envelope sender's local part, before the token."""
MAX_SCAN = 512 * 1024  # bytes of a message searched for tokens
MAX_CANDIDATES = 8  # distinct tokens kept of one message, the first ones
MAX_HEADER_FIELDS = 500  # header fields of a message's own header block looked at

_MAC_BYTES = 10  # 80 bits
_MAC_CHARS = 16  # base32 of 10 bytes, no padding
_MAX_ID_CHARS = 13  # 2**64 - 1 in base32 digits
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_DIGITS = {char: value for value, char in enumerate(_ALPHABET)}
_KDF_LABEL = b"mailopsd send tokens v1"
_PURPOSE = b"verp"
_SHAPE = f"[a-z2-7]{{{_MAC_CHARS + 1},{_MAC_CHARS + _MAX_ID_CHARS}}}"
_TOKEN = re.compile(_SHAPE)
# The token in an address (bounces+<token>@...), and alone as a header's value.
_IN_ADDRESS = re.compile(rf"(?<![\w.+-])bounces\+({_SHAPE})@", re.IGNORECASE)
# Envelope recipients of the message itself: where a report to the envelope sender went.
_ENVELOPE_FIELDS = (b"delivered-to", b"x-original-to", b"envelope-to", b"to")
# In a returned message's headers, wherever a report carries them (a text/rfc822-headers
# or message/rfc822 part, or a copy pasted into the text): bounded lines, one at a time.
_RETURNED = re.compile(
    rb"^(?:return-path:[ \t]{0,50}<?[ \t]{0,50}bounces\+(" + _SHAPE.encode() + rb")@"
    rb"|x-mailopsd-send:[ \t]{0,50}(?:\r?\n[ \t]{1,50})?(" + _SHAPE.encode() + rb")[ \t]*\r?$)",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _mac(key: bytes, send_id: int, message_id: str) -> bytes:
    mac_key = hmac.new(key, _KDF_LABEL, hashlib.sha256).digest()
    data = _PURPOSE + b"\0" + str(send_id).encode("ascii") + b"\0" + message_id.encode()
    return hmac.new(mac_key, data, hashlib.sha256).digest()[:_MAC_BYTES]


def _id_text(send_id: int) -> str:
    digits = []
    while send_id:
        send_id, digit = divmod(send_id, 32)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def make(key: bytes, send_id: int, message_id: str) -> str:
    """Make the token of one send.

    Args:
        key: The daemon's send-token key (32 random bytes; see ``state.sendkey``).
        send_id: The send's id in the ledger (its intent row), at least 1.
        message_id: The send's Message-ID, as recorded in the ledger.

    Returns:
        The token: lowercase base32, 17 to 29 characters.

    Raises:
        ValueError: ``send_id`` is not a positive 64-bit number.
    """
    if not 0 < send_id < 2**64:
        raise ValueError(f"a send id is a positive 64-bit number, not {send_id}")
    mac = base64.b32encode(_mac(key, send_id, message_id)).decode("ascii").lower()
    return _id_text(send_id) + mac


def parse(token: str) -> int | None:
    """The send id a token claims, not yet verified; ``None`` when it is malformed.

    Any case is read (a server may have changed it).
    """
    if len(token) > _MAC_CHARS + _MAX_ID_CHARS:
        return None
    text = token.lower()
    if not _TOKEN.fullmatch(text) or text.startswith(_ALPHABET[0]):
        return None  # "a" is the digit 0: no leading zeros, one token per send
    send_id = 0
    for char in text[:-_MAC_CHARS]:
        send_id = send_id * 32 + _DIGITS[char]
    return send_id if send_id < 2**64 else None


def verify(key: bytes, token: str, message_id: str) -> int | None:
    """Check a token against the Message-ID of the send it claims.

    Args:
        key: The daemon's send-token key.
        token: The token as found (any case).
        message_id: The Message-ID the ledger has for the send ``parse(token)`` names.

    Returns:
        The send id when the MAC is right, else ``None`` (malformed, another key, another
        send, or tampered with).
    """
    send_id = parse(token)
    if send_id is None:
        return None
    try:
        mac = base64.b32decode(token[-_MAC_CHARS:].upper())
    except (binascii.Error, ValueError):
        return None
    return send_id if hmac.compare_digest(mac, _mac(key, send_id, message_id)) else None


def envelope_sender(token: str, domain: str) -> str:
    """The envelope sender (``MAIL FROM``) of a send: ``bounces+<token>@<domain>``."""
    return f"{LOCAL_PREFIX}{token}@{domain}"


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """A header block's fields, names lowercased, folded lines joined; the first ones."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            if len(value) < 4096:  # a field folded over thousands of lines says no more
                fields[-1] = (name, value + b" " + line.strip())
            continue
        if len(fields) >= MAX_HEADER_FIELDS:
            break
        name, colon, value = line.partition(b":")
        if colon and 0 < len(name) <= 80:
            fields.append((name.strip().lower(), value.strip()))
    return fields


def candidates(raw: bytes) -> tuple[str, ...]:
    """The send tokens a message may carry, lowercased, first found first, unverified.

    Looked for in the message's own envelope fields (``Delivered-To``, ``X-Original-To``,
    ``Envelope-To``, ``To``: a token in ``bounces+<token>@``), then in the returned
    message's headers (``Return-Path: <bounces+<token>@...>`` and ``X-Mailopsd-Send``).
    At most ``MAX_CANDIDATES`` of them, from the first ``MAX_SCAN`` bytes.

    Args:
        raw: The message as read (header block, and the body if it was read).

    Returns:
        The distinct candidates; empty when there is none.
    """
    data = raw[:MAX_SCAN]
    split = _BLANK_LINE.search(data)
    head, body = (data[: split.start()], data[split.end() :]) if split else (data, b"")
    found: dict[str, None] = {}
    fields = _header_fields(head)
    for wanted in _ENVELOPE_FIELDS:
        for name, value in fields:
            if name == wanted:
                text = value.decode("ascii", "replace")
                for match in _IN_ADDRESS.finditer(text):
                    found[match.group(1).lower()] = None
                    if len(found) >= MAX_CANDIDATES:
                        return tuple(found)
    for line in _RETURNED.finditer(body):
        found[(line.group(1) or line.group(2)).decode("ascii").lower()] = None
        if len(found) >= MAX_CANDIDATES:
            break
    return tuple(found)

"""A message ready for SMTP: its wire form and its envelope, and how that form is written.

What composing makes (a campaign step, a forwarded delivery report) and what a transport
sends. Messages are written straight to their wire form (CRLF line ends, header lines
folded under 78 characters, text parts in UTF-8 quoted-printable) rather than through
``email.message``: the same MIME at a fraction of the cost, since a message is composed
for every send. A header value never holds a line break (one would be header injection)
nor any other control character, and no line passes 998 characters. Pure.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr

from mailopsd import sendtokens
from mailopsd.config.scalars import CONTROL_CHARACTERS

__all__ = [
    "ComposeError",
    "Outgoing",
    "ascii_address",
    "date_header",
    "fold",
    "forwarded_report",
    "from_header",
    "text_body",
    "text_header",
    "with_send_token",
]

_FOLD_AT = 78
_MAX_LINE = 998  # RFC 5322 2.1.1: a line of a message, CRLF excluded


class ComposeError(ValueError):
    """A message could not be written for a lead (the text says which part and why)."""


@dataclass(frozen=True)
class Outgoing:
    """A composed message and its envelope.

    Attributes:
        data: The whole message as sent (headers and body, CRLF line ends), before the
            SMTP dot-stuffing.
        message_id: Its ``Message-ID``, angle brackets included.
        subject: Its subject (decoded).
        envelope_from: ``MAIL FROM``.
        recipients: ``RCPT TO``: the lead first, then the BCC copy if any.
    """

    data: bytes
    message_id: str
    subject: str
    envelope_from: str
    recipients: tuple[str, ...]


def with_send_token(outgoing: Outgoing, *, token: str, verp_domain: str) -> Outgoing:
    """``outgoing`` sent with a send token (VERP): in ``MAIL FROM`` and in a header.

    The envelope sender becomes ``bounces+<token>@<verp_domain>``, where delivery reports
    go, and the ``X-Mailopsd-Send`` header carries the token, for reports that return the
    message's headers. The header goes first: the order of header fields means nothing.

    Args:
        outgoing: The composed message.
        token: The send's token (:func:`mailopsd.sendtokens.make`).
        verp_domain: The credential's ``verp_domain`` (ASCII, as the config keeps it).
    """
    header = fold(sendtokens.HEADER, token).encode("ascii")
    return replace(
        outgoing,
        data=header + outgoing.data,
        envelope_from=sendtokens.envelope_sender(token, verp_domain),
    )


def _check_header_value(name: str, value: str) -> None:
    """Refuse a header value holding a line break or another control character.

    A line break would be header injection; NUL, VT, FF, FS and the like are not allowed
    in a header (RFC 5322 2.2) and some parsers take them for line ends. The value is not
    quoted in the error: it may hold the very characters a log line cannot show.

    Raises:
        ComposeError: The value holds one; the text names the header and the character.
    """
    found = CONTROL_CHARACTERS.search(value)
    if found is None:
        return
    if found.group() in "\r\n":
        raise ComposeError(f"the {name} header would hold a line break")
    raise ComposeError(
        f"the {name} header would hold control character U+{ord(found.group()):04X} "
        f"(character {found.start() + 1} of the value); it comes from the lead's row or the "
        "template: remove it there"
    )


def _fold_lines(name: str, value: str) -> list[str]:
    """``Name: value`` folded at spaces so lines stay under 78 characters where they can."""
    line = f"{name}: {value}"
    if len(line) <= _FOLD_AT:
        return [line]
    lines: list[str] = []
    for word in value.split(" "):
        if not lines:
            lines.append(f"{name}: {word}")
        elif len(lines[-1]) + 1 + len(word) <= _FOLD_AT or not lines[-1].strip():
            lines[-1] += f" {word}"
        else:
            lines.append(f" {word}")
    return lines


def fold(name: str, value: str) -> str:
    """``Name: value`` and CRLF, folded at spaces so lines stay under 78 characters.

    Raises:
        ComposeError: The value holds a control character, or a run of it with no space
            to fold at would make a line longer than 998 characters (RFC 5322 2.1.1).
    """
    _check_header_value(name, value)
    lines = _fold_lines(name, value)
    longest = max(len(line) for line in lines)
    if longest > _MAX_LINE:
        raise ComposeError(
            f"the {name} header would be a line of {longest} characters, over the "
            f"{_MAX_LINE} a mail line may hold, with no space to fold it at: shorten the "
            "value (the lead's address or field, or the config)"
        )
    return "\r\n".join(lines) + "\r\n"


def ascii_address(address: str, what: str) -> str:
    """``address`` as SMTP without SMTPUTF8 takes it: an IDN domain in its ASCII form.

    Raises:
        ComposeError: The local part is not ASCII (only SMTPUTF8 could carry it).
    """
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    try:
        if not local.isascii():
            raise UnicodeError("a non-ASCII local part needs SMTPUTF8")
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as err:
        raise ComposeError(f"{what} {address!r} cannot be sent: {err}") from err


def text_header(name: str, text: str) -> str:
    """A header of free text: as is when ASCII, else RFC 2047 encoded words.

    ASCII text with a run too long to fold at a space (a line over 998 characters) is
    sent as encoded words too: they can be split anywhere and read back as the same text.

    Raises:
        ComposeError: The text holds a control character.
    """
    _check_header_value(name, text)
    if text.isascii():
        lines = _fold_lines(name, text)
        if max(len(line) for line in lines) <= _MAX_LINE:
            return "\r\n".join(lines) + "\r\n"
    encoded = Header(text, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


@functools.lru_cache(maxsize=1024)
def from_header(name: str, address: str) -> str:
    """The ``From`` header of a display name and an address."""
    return fold("From", formataddr((name, address), charset="utf-8"))


@functools.lru_cache(maxsize=64)
def date_header(now: datetime) -> str:
    """The ``Date`` header of ``now``."""
    return fold("Date", format_datetime(now))


def _qp(text: str) -> bytes:
    """``text`` in UTF-8 quoted-printable, CRLF line ends, ending with a line end."""
    flat = text.replace("\r\n", "\n").replace("\r", "\n")
    if not flat.endswith("\n"):
        flat += "\n"
    return binascii.b2a_qp(flat.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


_PLAIN = b'Content-Type: text/plain; charset="utf-8"\r\n'
_HTML = b'Content-Type: text/html; charset="utf-8"\r\n'
_QP = b"Content-Transfer-Encoding: quoted-printable\r\n"


def text_body(text: str, html_text: str | None, boundary: str) -> bytes:
    """The MIME headers and body: one text part, or text and HTML as alternatives."""
    if html_text is None:
        return _PLAIN + _QP + b"\r\n" + _qp(text)
    mark = boundary.encode("ascii")
    return b"".join(
        (
            b'Content-Type: multipart/alternative; boundary="' + mark + b'"\r\n\r\n',
            # The line end before a delimiter belongs to the delimiter, not the part.
            b"--" + mark + b"\r\n" + _PLAIN + _QP + b"\r\n" + _qp(text),
            b"\r\n--" + mark + b"\r\n" + _HTML + _QP + b"\r\n" + _qp(html_text),
            b"\r\n--" + mark + b"--\r\n",
        )
    )


def forwarded_report(
    *, sender: str, to: str, raw: bytes, message_id: str, now: datetime
) -> Outgoing:
    """A message from ``sender`` to ``to`` that carries the report ``raw`` as an attachment.

    The report goes as it came, never parsed and written again: a hostile one may nest
    messages thousands deep (the email package then recurses past Python's limit) or hold
    bytes its generator cannot write back. In clean 7-bit lines it is a ``message/rfc822``
    part; otherwise a base64 ``report.eml`` file.
    """
    boundary = "mailopsd-" + hashlib.sha256(raw).hexdigest()[:32]  # a report cannot hold it
    head = "".join(
        (
            fold("From", sender),
            fold("To", to),
            text_header("Subject", _FORWARD_SUBJECT),
            date_header(now),
            fold("Message-ID", message_id),
            "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n",
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n',
            f'--{boundary}\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\n',
            f"A delivery report mailopsd processed is attached.\r\n--{boundary}\r\n",
        )
    )
    return Outgoing(
        data=head.encode() + _attachment(raw) + f"\r\n--{boundary}--\r\n".encode(),
        message_id=message_id,
        subject=_FORWARD_SUBJECT,
        envelope_from=sender,
        recipients=(to,),
    )


_FORWARD_SUBJECT = "Fwd: delivery report"
_CLEAN_LINES = re.compile(rb"(?:[\t\x20-\x7e]{0,998}\r\n)*[\t\x20-\x7e]{0,998}")


def _attachment(raw: bytes) -> bytes:
    """The MIME part for a forwarded report: as it came if it is clean 7-bit, else base64."""
    lines = re.sub(rb"\r?\n", b"\r\n", raw)
    if _CLEAN_LINES.fullmatch(lines):
        return b"Content-Type: message/rfc822\r\n\r\n" + lines
    encoded = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return (
        b'Content-Type: application/octet-stream; name="report.eml"\r\n'
        b'Content-Disposition: attachment; filename="report.eml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    )

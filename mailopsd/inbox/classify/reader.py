"""A tolerant MIME reader: what a report needs, from any bytes, without ever failing.

It takes header fields, text parts, report parts and the returned message's headers,
reads only the head of a big body, and treats what it cannot make sense of as text. It
is several times faster than a full parse (``email``'s parser reads every part whole),
and bounded by ``limits`` whatever the input.
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import encodings
import encodings.aliases
import functools
import html
import re
from dataclasses import dataclass, field

from mailopsd.diagnosis.rules import ADDRESS
from mailopsd.inbox.classify import limits

__all__ = [
    "ADDRESS",
    "Entity",
    "Parts",
    "address_of",
    "clean",
    "copy_headers",
    "entity",
    "field_groups",
    "first_address",
    "gather",
]

# The local part starts where no local-part character precedes: the scan stays linear in
# long runs of word characters (base64, hex dumps).

_TAG = re.compile(r"<[^<>]{0,2000}>")
_RETURNED_TYPES = frozenset({"message/rfc822", "message/global"})
_HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_BLANK = re.compile(rb"[\x00-\x20\x7f]")
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_PARAM = re.compile(r';\s*([\w.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


@dataclass
class Entity:
    """A message or a MIME part: its header fields (by lowercased name) and its raw body."""

    fields: dict[str, list[str]]
    body: bytes

    def get(self, name: str) -> str | None:
        """The first value of a field, as written."""
        values = self.fields.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        """A field's text, encoded words decoded, on one line; ``""`` when absent."""
        value = self.get(name)
        if value is None:
            return ""
        if "=?" in value:  # decoding costs the square of the words: the head says enough
            value = _decode_words(value[: limits.MAX_DECODED]) + value[limits.MAX_DECODED :]
        return " ".join(value.split())

    @functools.cached_property
    def content_type(self) -> tuple[str, dict[str, str]]:
        """The MIME type (``text/plain`` when missing or invalid) and its parameters."""
        kind, _, rest = (self.get("content-type") or "").partition(";")
        kind = kind.strip().lower()
        if not _MIME_TYPE.fullmatch(kind):
            kind = "text/plain"
        params = {
            name.lower().rstrip("*"): value.strip('"')
            for name, value in _PARAM.findall(";" + rest[:4096])
        }
        return kind, params

    def payload(self, limit: int) -> bytes:
        """The body decoded from its transfer encoding, about ``limit`` bytes of it."""
        data = self.body[:limit]
        encoding = (self.get("content-transfer-encoding") or "").strip().lower()
        if encoding == "base64":
            data = _NOT_BASE64.sub(b"", data)
            try:
                return binascii.a2b_base64(data[: len(data) - len(data) % 4])
            except binascii.Error:
                return b""
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        return data

    def text(self) -> str:
        """The body as text, in its charset, HTML tags dropped, at most ``limits.MAX_TEXT``."""
        kind, params = self.content_type
        text = _decode(self.payload(limits.MAX_ENCODED), params.get("charset") or "utf-8")
        if kind == "text/html" and "<" in text:
            text = html.unescape(_TAG.sub(" ", text))
        return clean(text[: limits.MAX_TEXT])


def entity(data: bytes) -> Entity:
    """Split header fields from the body, as tolerantly as mail readers do."""
    if data.startswith(b"From "):  # an mbox separator line
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    ends = (data.find(b"\n\n", 0, limits.MAX_HEAD), data.find(b"\n\r\n", 0, limits.MAX_HEAD))
    end = min((i for i in ends if i >= 0), default=-1)
    if end < 0:
        head, body = data[: limits.MAX_HEAD], b""
    else:
        head, body = data[: end + 1], data[end + (2 if data[end + 1] == 0x0A else 3) :]
    # A field's lines are joined once at the end: joining as they come costs the square
    # of the number of lines of a field folded over thousands of them.
    found: dict[bytes, list[list[bytes]]] = {}
    pieces: list[bytes] | None = None
    offset = 0
    for line in head.split(b"\n"):
        start, offset = offset, offset + len(line) + 1
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and pieces is not None:
            pieces.append(line.strip())
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip()
        if colon and 0 < len(name) <= 80 and name.isascii() and not _BLANK.search(name):
            pieces = [value.strip()]
            found.setdefault(name.lower(), []).append(pieces)
        elif line:
            body = data[start:]  # not a field: the body began without a blank line
            break
    fields = {
        name.decode("ascii"): [b" ".join(value).decode("utf-8", "replace") for value in values]
        for name, values in found.items()
    }
    return Entity(fields, body)


def _children(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts of a multipart body, ``None`` when its boundary is nowhere."""
    marker = b"--" + boundary.encode("utf-8", "replace")
    pieces: list[bytes] = []
    start = None
    found = body.find(marker)
    while found >= 0 and len(pieces) < limits.MAX_PARTS:
        end = body.find(b"\n", found)
        end = len(body) if end < 0 else end + 1
        tail = body[found + len(marker) : end]
        if (found == 0 or body[found - 1] == 0x0A) and not tail.lstrip(b"-").strip():
            if start is not None:
                pieces.append(body[start:found].removesuffix(b"\n").removesuffix(b"\r"))
            if tail.startswith(b"--"):
                return pieces
            start = end
        found = body.find(marker, end)
    if start is not None:
        pieces.append(body[start:])  # never closed: the rest is the last part
    return pieces if start is not None or pieces else None


def clean(value: str) -> str:
    """``value`` without the lone surrogates that some decoders leave in it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, whatever their charset claims."""
    try:
        chunks = email.header.decode_header(text)
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return text
    decoded = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            decoded.append(chunk)
            continue
        decoded.append(_decode(chunk, charset or "ascii"))
    return clean("".join(decoded))


# The codecs a charset may name: Python's text codecs with an alias, and those without one
# that are mail charsets too. Never a name looked up as given: Python's codec search keeps
# every unknown name it was asked for, for the life of the process. Not the codecs that
# read escapes as text (and warn about bad ones), cost the square of their input, always
# fail, turn bytes into bytes, or exist on Windows only.
_CHARSETS = (
    frozenset(encodings.aliases.aliases.values())
    | {"koi8_u", "koi8_t", "cp874", "cp737", "cp720", "cp856", "cp875", "cp1006", "utf_8_sig"}
    | {"mac_arabic", "mac_croatian", "mac_farsi", "mac_romanian", "palmos"}
) - {
    "unicode_escape",
    "raw_unicode_escape",
    "punycode",
    "idna",
    "undefined",
    "base64_codec",
    "bz2_codec",
    "hex_codec",
    "quopri_codec",
    "rot_13",
    "uu_codec",
    "zlib_codec",
    "mbcs",
    "oem",
}


def _codec(charset: str) -> str | None:
    """The codec a charset names, ``None`` for an unknown one (as Python resolves it)."""
    key = encodings.normalize_encoding(charset.strip().lower()[:64])
    for candidate in (key, key.replace(".", "_")):
        name = encodings.aliases.aliases.get(candidate, candidate)
        if name in _CHARSETS:
            return name
    return None


def _decode(data: bytes, charset: str) -> str:
    """``data`` in ``charset`` when it is a text encoding fit for mail, else in UTF-8."""
    name = _codec(charset)
    try:
        return data.decode(name or "utf-8", "replace")
    except (LookupError, UnicodeError, ValueError):
        return data.decode("utf-8", "replace")


_FIELD = re.compile(r"^([A-Za-z][\w-]{1,40}):[ \t]*(.*)$")


def field_groups(text: str) -> list[dict[str, str]]:
    """RFC 822-style field groups, one per paragraph (DSN and ARF fields)."""
    groups: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
            current, name = {}, ""
        elif line[0] in " \t" and name:
            current[name].append(line.strip())  # joined once below: linear in the lines
        elif match := _FIELD.match(line):
            name = match.group(1).lower()
            current.setdefault(name, [match.group(2).strip()])
        else:
            name = ""
    if current:
        groups.append(current)
    return [{name: " ".join(lines) for name, lines in group.items()} for group in groups]


def first_address(value: str | None) -> str | None:
    """The first address in a header or a DSN field (``rfc822; a@b``), lowercased."""
    if not value:
        return None
    found = ADDRESS.search(value.split(";", 1)[-1])
    return address_of(found.group(0)) if found else None


# An X.400 attribute holding an Internet address (RFC 2156): "dda:SMTP=a@b", "RFC-822=a@b".
_X400 = re.compile(r"^(?:smtp|rfc-?822)=", re.IGNORECASE)


def address_of(found: str) -> str:
    """An address as matched in a text: lowercased, no quotes, no X.400 attribute before it."""
    return _X400.sub("", found.strip(".'`")).lower()


_KEPT = ("to", "from", "sender", "return-path", "reply-to", "message-id")


def copy_headers(data: bytes) -> dict[str, str]:
    """The headers of a returned message that name its sender, recipient and identity."""
    found = entity(data)
    return {name: found.header(name) for name in _KEPT if name in found.fields}


@dataclass
class Parts:
    """What a message holds, gathered in one walk over its MIME parts."""

    texts: list[str] = field(default_factory=list)
    html: list[Entity] = field(default_factory=list)
    attachments: list[Entity] = field(default_factory=list)
    dsn: list[dict[str, str]] = field(default_factory=list)
    has_dsn: bool = False
    feedback: list[str] = field(default_factory=list)
    has_mdn: bool = False
    returned: list[dict[str, str]] = field(default_factory=list)

    @functools.cached_property
    def text(self) -> str:
        """The human-readable text: the plain parts, else the HTML ones."""
        return "\n".join(self.texts or [part.text() for part in self.html])

    def add(self, part: Entity, kind: str) -> None:
        """File one leaf part of MIME type ``kind``."""
        if kind in _RETURNED_TYPES or kind in _HEADER_TYPES:
            self.returned.append(copy_headers(part.payload(limits.MAX_TEXT)))
        elif kind in _DSN_TYPES:
            self.has_dsn = True
            self.dsn.extend(field_groups(part.text()))
        elif kind == "message/feedback-report":
            self.feedback.append(part.text())
        elif kind == "message/disposition-notification":
            self.has_mdn = True
        elif kind.startswith(("text/", "multipart/")):
            disposition = (part.get("content-disposition") or "").lower()
            if disposition.startswith("attachment") or "name" in part.content_type[1]:
                self.attachments.append(part)
            elif kind == "text/html":
                self.html.append(part)
            else:
                self.texts.append(part.text())


def gather(message: Entity) -> Parts:
    """Walk the MIME tree depth-first, not into attached messages."""
    parts = Parts()
    stack = [(message, 0)]
    seen = 0
    while stack and seen < limits.MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        kind, params = part.content_type
        boundary = params.get("boundary")
        children = None
        if kind.startswith("multipart/") and boundary and depth < limits.MAX_DEPTH:
            children = _children(part.body, boundary)
        if children is None:
            parts.add(part, kind)  # a multipart whose boundary is nowhere reads as text
        else:
            stack.extend((entity(child), depth + 1) for child in reversed(children))
    return parts

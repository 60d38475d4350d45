"""Composing one message of a sequence for one lead.

Pure: the time and the Message-ID token are given. Follow-ups are threaded under step 1
(``Re:`` its subject unless the step has its own, ``In-Reply-To`` and ``References`` to
the earlier Message-IDs). ``List-Unsubscribe`` always offers a ``mailto:`` to the sending
mailbox and, with an unsubscribe URL, the URL and one-click ``List-Unsubscribe-Post``.
BCC is never a header: it is only an envelope recipient.

The message is written straight to its wire form (CRLF line ends, header lines folded
under 78 characters, text parts in UTF-8 quoted-printable) rather than through
``email.message``: the same MIME at a fraction of the cost, since composing is done for
every send. A header value never holds a line break (one would be header injection).
"""

from __future__ import annotations

import binascii
import functools
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from urllib.parse import quote

import jinja2
from jinja2 import nodes

from mailopsd.config.models import Campaign, Credential
from mailopsd.config.templates import make_environment

__all__ = ["ComposeError", "Outgoing", "compose"]

_ENVIRONMENT = make_environment()
_FOLD_AT = 78


class ComposeError(ValueError):
    """A template could not be rendered for a lead (the text says which and why)."""


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


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> jinja2.Template:
    return _ENVIRONMENT.from_string(source)


@functools.lru_cache(maxsize=1024)
def _plain(source: str) -> tuple[tuple[bool, str], ...] | None:
    """A template that is only text and ``{{ name }}``: its parts, ``(is_name, text)``.

    ``None`` for anything else (filters, attributes, tags...), which Jinja renders.
    """
    try:
        tree = _ENVIRONMENT.parse(source)
    except jinja2.TemplateError:
        return None
    parts: list[tuple[bool, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append((True, child.name))
            else:
                return None
    return tuple(parts)


def _render(source: str, fields: Mapping[str, str], what: str) -> str:
    parts = _plain(source)
    if parts is not None and all(field in fields for is_name, field in parts if is_name):
        # What Jinja would print, without building a render context for every message.
        return "".join(str(fields[text]) if is_name else text for is_name, text in parts)
    try:
        return _compiled(source).render(**fields)
    except jinja2.TemplateError as err:
        raise ComposeError(f"{what}: {err}") from err


def _unsubscribe_url(campaign: Campaign, email: str) -> str | None:
    if campaign.unsubscribe is None or campaign.unsubscribe.url is None:
        return None
    return campaign.unsubscribe.url.replace("%%EMAIL%%", quote(email, safe="@"))


def _footer(template: str | None, url: str | None, email: str) -> str:
    if not template:
        return ""
    return template.replace("%%UNSUBSCRIBE%%", url or "").replace("%%EMAIL%%", email)


def _subject(
    campaign: Campaign, step_index: int, fields: Mapping[str, str], first: str | None
) -> str:
    step = campaign.sequence[step_index]
    if step.subject is not None:
        return _render(step.subject, fields, f"step {step_index + 1} subject")
    base = first or ""
    return base if base.lower().startswith("re:") else f"Re: {base}"


def _fold(name: str, value: str) -> str:
    """``Name: value`` and CRLF, folded at spaces so lines stay under 78 characters."""
    if "\r" in value or "\n" in value:
        raise ComposeError(f"the {name} header would hold a line break")
    line = f"{name}: {value}"
    if len(line) <= _FOLD_AT:
        return line + "\r\n"
    lines: list[str] = []
    for word in value.split(" "):
        if not lines:
            lines.append(f"{name}: {word}")
        elif len(lines[-1]) + 1 + len(word) <= _FOLD_AT or not lines[-1].strip():
            lines[-1] += f" {word}"
        else:
            lines.append(f" {word}")
    return "\r\n".join(lines) + "\r\n"


def _ascii_address(address: str, what: str) -> str:
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


def _text_header(name: str, text: str) -> str:
    """A header of free text: as is when ASCII, else RFC 2047 encoded words."""
    if text.isascii():
        return _fold(name, text)
    if "\r" in text or "\n" in text:
        raise ComposeError(f"the {name} header would hold a line break")
    encoded = Header(text, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


@functools.lru_cache(maxsize=1024)
def _from_header(name: str, address: str) -> str:
    return _fold("From", formataddr((name, address), charset="utf-8"))


@functools.lru_cache(maxsize=64)
def _date_header(now: datetime) -> str:
    return _fold("Date", format_datetime(now))


def _qp(text: str) -> bytes:
    """``text`` in UTF-8 quoted-printable, CRLF line ends, ending with a line end."""
    flat = text.replace("\r\n", "\n").replace("\r", "\n")
    if not flat.endswith("\n"):
        flat += "\n"
    return binascii.b2a_qp(flat.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


_PLAIN = b'Content-Type: text/plain; charset="utf-8"\r\n'
_HTML = b'Content-Type: text/html; charset="utf-8"\r\n'
_QP = b"Content-Transfer-Encoding: quoted-printable\r\n"


def _body(text: str, html_text: str | None, boundary: str) -> bytes:
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


def compose(
    campaign: Campaign,
    credential: Credential,
    *,
    step_index: int,
    body_template: str,
    email: str,
    fields: Mapping[str, str],
    first_subject: str | None,
    earlier_ids: Sequence[str],
    now: datetime,
    token: str,
) -> Outgoing:
    """Compose step ``step_index`` (0-based) of ``campaign`` for one lead.

    Raises:
        ComposeError: A template fails for this lead.
    """
    to = _ascii_address(email, "address")
    sender = _ascii_address(credential.from_email, "from_email")
    subject = _subject(campaign, step_index, fields, first_subject)
    body = _render(body_template, fields, f"step {step_index + 1} body")
    domain = sender.rsplit("@", 1)[1]
    message_id = f"<{token}@{domain}>"
    url = _unsubscribe_url(campaign, email)
    unsubscribe = campaign.unsubscribe
    footer_text = _footer(unsubscribe.footer_text if unsubscribe else None, url, email)
    text = body + (f"\n\n{footer_text}\n" if footer_text else "")
    footer_html = _footer(unsubscribe.footer_html if unsubscribe else None, url, email)
    html_text = None
    if footer_html:
        paragraphs = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n\n") if part)
        html_text = f"<html><body>{paragraphs}{footer_html}</body></html>"
    mailto = f"<mailto:{sender}?subject=unsubscribe>"
    headers = [
        _from_header(credential.from_name, sender),
        _fold("To", to),
        _text_header("Subject", subject),
        _date_header(now),
        _fold("Message-ID", message_id),
    ]
    if earlier_ids:
        headers.append(_fold("In-Reply-To", earlier_ids[-1]))
        headers.append(_fold("References", " ".join(earlier_ids)))
    headers.append(_fold("List-Unsubscribe", f"{mailto}, <{url}>" if url else mailto))
    if url:
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    headers.append("MIME-Version: 1.0\r\n")
    head = "".join(headers)
    if not head.isascii():  # e.g. a non-ASCII URL: refuse rather than send 8-bit headers
        raise ComposeError("a header would hold non-ASCII text outside an encoded word")
    data = head.encode("ascii") + _body(text, html_text, f"=_alt_{token}")
    recipients = (to, _ascii_address(credential.bcc, "bcc")) if credential.bcc else (to,)
    return Outgoing(data, message_id, subject, sender, recipients)

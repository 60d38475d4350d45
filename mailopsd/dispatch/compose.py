"""Composing one message of a sequence for one lead.

Pure: the time and the Message-ID token are given. Follow-ups are threaded under step 1
(``Re:`` its subject unless the step has its own, ``In-Reply-To`` and ``References`` to
the earlier Message-IDs). ``List-Unsubscribe`` always offers a ``mailto:`` to the sending
mailbox and, with an unsubscribe URL, the URL and one-click ``List-Unsubscribe-Post``.
BCC is never a header: it is only an envelope recipient.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import charset as email_charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr
from urllib.parse import quote

import jinja2

from mailopsd.config.models import Campaign, Credential
from mailopsd.config.templates import make_environment

__all__ = ["ComposeError", "Outgoing", "compose", "message_bytes"]

_ENVIRONMENT = make_environment()
_UTF8_QP = email_charset.Charset("utf-8")
_UTF8_QP.body_encoding = email_charset.QP
_WIRE = compat32.clone(linesep="\r\n")


class ComposeError(ValueError):
    """A template could not be rendered for a lead (the text says which and why)."""


@dataclass(frozen=True)
class Outgoing:
    """A composed message and its envelope."""

    message: Message
    message_id: str
    subject: str
    envelope_from: str
    recipients: tuple[str, ...]


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> jinja2.Template:
    return _ENVIRONMENT.from_string(source)


def _render(source: str, fields: Mapping[str, str], what: str) -> str:
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


def _part(text: str, subtype: str) -> Message:
    part = Message()
    part.set_type(f"text/{subtype}")
    part.set_payload(text, charset=_UTF8_QP)
    return part


def _header_text(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()


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
    subject = _subject(campaign, step_index, fields, first_subject)
    body = _render(body_template, fields, f"step {step_index + 1} body")
    domain = credential.from_email.rsplit("@", 1)[1]
    message_id = f"<{token}@{domain}>"
    url = _unsubscribe_url(campaign, email)
    unsubscribe = campaign.unsubscribe
    footer_text = _footer(unsubscribe.footer_text if unsubscribe else None, url, email)
    text = _part(body + (f"\n\n{footer_text}\n" if footer_text else ""), "plain")
    footer_html = _footer(unsubscribe.footer_html if unsubscribe else None, url, email)
    message = text
    if footer_html:
        paragraphs = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n\n") if part)
        message = MIMEMultipart("alternative")
        message.attach(text)
        message.attach(_part(f"<html><body>{paragraphs}{footer_html}</body></html>", "html"))
    headers = {
        "From": formataddr((credential.from_name, credential.from_email), charset="utf-8"),
        "To": email,
        "Subject": _header_text(subject),
        "Date": format_datetime(now),
        "Message-ID": message_id,
    }
    if earlier_ids:
        headers["In-Reply-To"] = earlier_ids[-1]
        headers["References"] = " ".join(earlier_ids)
    mailto = f"<mailto:{credential.from_email}?subject=unsubscribe>"
    headers["List-Unsubscribe"] = f"{mailto}, <{url}>" if url else mailto
    if url:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    headers["MIME-Version"] = "1.0"
    for name, value in headers.items():
        message[name] = value
    recipients = (email, credential.bcc) if credential.bcc else (email,)
    return Outgoing(message, message_id, subject, credential.from_email, recipients)


def message_bytes(message: Message) -> bytes:
    """The message as sent: CRLF line ends."""
    return message.as_bytes(policy=_WIRE)

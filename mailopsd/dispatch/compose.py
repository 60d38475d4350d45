"""Composing one message of a sequence for one lead.

Pure: the time and the Message-ID token are given. Follow-ups are threaded under step 1
(``Re:`` its subject unless the step has its own, ``In-Reply-To`` and ``References`` to
the earlier Message-IDs). ``List-Unsubscribe`` always offers a ``mailto:`` to the sending
mailbox and, with an unsubscribe URL, the URL and one-click ``List-Unsubscribe-Post``.
BCC is never a header: it is only an envelope recipient.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

import jinja2

from mailopsd.config.models import Campaign, Credential
from mailopsd.config.templates import make_environment

__all__ = ["ComposeError", "Outgoing", "compose"]

_ENVIRONMENT = make_environment()


class ComposeError(ValueError):
    """A template could not be rendered for a lead (the text says which and why)."""


@dataclass(frozen=True)
class Outgoing:
    """A composed message and its envelope."""

    message: EmailMessage
    message_id: str
    subject: str
    envelope_from: str
    recipients: tuple[str, ...]


def _render(source: str, fields: Mapping[str, str], what: str) -> str:
    try:
        return _ENVIRONMENT.from_string(source).render(**fields)
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
    message = EmailMessage()
    message["From"] = Address(display_name=credential.from_name, addr_spec=credential.from_email)
    message["To"] = email
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if earlier_ids:
        message["In-Reply-To"] = earlier_ids[-1]
        message["References"] = " ".join(earlier_ids)
    mailto = f"<mailto:{credential.from_email}?subject=unsubscribe>"
    message["List-Unsubscribe"] = f"{mailto}, <{url}>" if url else mailto
    if url:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    footer_text = _footer(unsubscribe.footer_text if unsubscribe else None, url, email)
    text = body + (f"\n\n{footer_text}\n" if footer_text else "")
    message.set_content(text)
    footer_html = _footer(unsubscribe.footer_html if unsubscribe else None, url, email)
    if footer_html:
        paragraphs = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n\n") if part)
        message.add_alternative(
            f"<html><body>{paragraphs}{footer_html}</body></html>", subtype="html"
        )
    recipients = (email, credential.bcc) if credential.bcc else (email,)
    return Outgoing(message, message_id, subject, credential.from_email, recipients)

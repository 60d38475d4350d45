"""Composing one message of a sequence for one lead.

Pure: the time, the Message-ID token and the HTTP link settings are given. Follow-ups
are threaded under step 1 (``Re:`` its subject unless the step has its own,
``In-Reply-To`` and ``References`` to the earlier Message-IDs). ``List-Unsubscribe``
always offers a ``mailto:`` to the sending mailbox and, with an unsubscribe URL, the URL
and one-click ``List-Unsubscribe-Post``. BCC is never a header: it is only an envelope
recipient.

With ``http`` configured the unsubscribe URL is the daemon's own signed one-click link
(``<public_base_url>/u/<token>``), replacing ``unsubscribe.url``. Tracking works on the
HTML part, which a message has only when its campaign has an ``unsubscribe.footer_html``:
opens add a 1x1 image at the end of it, clicks send the ``http(s)`` links of the footer
template through ``<public_base_url>/c/<token>``, the token signing the original URL. Text
parts, and ``mailto:``, ``tel:``, fragment and the daemon's own links, are left as written.

Every lead value that lands in the HTML part is escaped: the body is plain text escaped
into paragraphs, and the footer's placeholders are filled in one pass over the template
as configured (HTML-escaped text, percent-encoded inside a link), so only the template's
own links are ever tracked; whatever a lead's address holds is never signed as a link.

The wire form is written by :mod:`mailopsd.smtp.message`: a header value holding a line
break or another control character fails the lead, and so does a header line over 998
characters that cannot be folded (a subject with a longer unbroken run goes as encoded
words instead).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlsplit

import jinja2
from jinja2 import nodes

from mailopsd import tokens
from mailopsd.config import templates
from mailopsd.config.models import Campaign, Credential, Http
from mailopsd.smtp.message import (
    ComposeError,
    Outgoing,
    ascii_address,
    date_header,
    fold,
    from_header,
    text_body,
    text_header,
)

__all__ = ["LinkSettings", "compose", "link_settings"]

_ENVIRONMENT = templates.make_environment()
# A quoted href attribute (not data-href or xlink:href); the value is HTML-escaped text.
# A regular expression rather than an HTML parser: only the configured footer template is
# scanned, and its markup must come out byte for byte as written.
_HREF = r"""(?<![\w:-])(href\s*=\s*)(["'])(.*?)\2"""
# In an HTML footer template: one of its links, or a placeholder outside them.
_FOOTER_HTML = re.compile(_HREF + "|(?-i:%%(EMAIL|UNSUBSCRIBE)%%)", re.IGNORECASE | re.DOTALL)
_HTML_END = "</body></html>"


@dataclass(frozen=True)
class LinkSettings:
    """The daemon's own links in one campaign's messages from one mailbox.

    Attributes:
        base_url: ``http.public_base_url`` (no trailing slash).
        key: ``http.signing_key`` as UTF-8 bytes; it signs every token.
        campaign_id: The campaign the tokens are signed for.
        track_opens: Add the open-tracking image to the HTML part.
        track_clicks: Send the HTML part's web links through the click redirect.
    """

    base_url: str
    key: bytes = field(repr=False)
    campaign_id: str
    track_opens: bool = False
    track_clicks: bool = False

    def url(self, purpose: str, email: str, target: str | None = None) -> str:
        """The signed link of ``purpose`` (see ``tokens``) for the lead ``email``."""
        return tokens.link_url(
            self.base_url,
            self.key,
            purpose=purpose,
            campaign_id=self.campaign_id,
            email=email,
            url=target,
        )


def link_settings(
    http: Http | None, *, campaign_id: str, campaign: Campaign, credential: Credential
) -> LinkSettings | None:
    """The link settings of a campaign's messages from ``credential`` (``None`` without http).

    Args:
        http: The config's ``http`` section.
        campaign_id: The campaign's id.
        campaign: The campaign.
        credential: The mailbox sending: its tracking, when set, wins over the campaign's.

    Returns:
        What ``compose`` takes as ``links``.
    """
    if http is None:
        return None
    tracking = credential.tracking_for(campaign)
    return LinkSettings(
        base_url=http.public_base_url,
        key=http.signing_key.get_secret_value().encode("utf-8"),
        campaign_id=campaign_id,
        track_opens=tracking.open,
        track_clicks=tracking.click,
    )


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
        texts = [str(fields[text]) if is_name else text for is_name, text in parts]
        if sum(map(len, texts)) > templates.MAX_TEXT_CHARS:
            raise ComposeError(f"{what}: {templates.limit_message(sum(map(len, texts)))}")
        return "".join(texts)
    try:
        return _compiled(source).render(**fields)
    except jinja2.TemplateError as err:
        raise ComposeError(f"{what}: {err}") from err


def _unsubscribe_url(campaign: Campaign, email: str, links: LinkSettings | None) -> str | None:
    if links is not None:
        return links.url(tokens.UNSUBSCRIBE, email)
    if campaign.unsubscribe is None or campaign.unsubscribe.url is None:
        return None
    return campaign.unsubscribe.url.replace("%%EMAIL%%", quote(email, safe="@"))


def _is_trackable(target: str, links: LinkSettings, unsubscribe_url: str | None) -> bool:
    """Whether a link target goes through the click redirect.

    Only plain ASCII web links: anything else (``mailto:``, ``tel:``, a fragment, a
    URL with spaces or controls a redirect could not repeat) and the daemon's own links
    stay as written.
    """
    if not target.isascii() or any(char.isspace() or not char.isprintable() for char in target):
        return False
    if target == unsubscribe_url or target.startswith(links.base_url + "/"):
        return False
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _footer_link(
    match: re.Match[str], *, email: str, url: str | None, links: LinkSettings | None
) -> str:
    """One ``href`` of the HTML footer template: its placeholders filled, then tracked.

    The lead's address goes into the URL percent-encoded, as in ``unsubscribe.url``, so it
    cannot end the URL or the attribute; the link stays the template's.
    """
    written = html.unescape(match.group(3)).strip()
    target = written.replace("%%UNSUBSCRIBE%%", url or "").replace(
        "%%EMAIL%%", quote(email, safe="@")
    )
    if links is not None and links.track_clicks and _is_trackable(target, links, url):
        target = links.url(tokens.CLICK, email, target)
    elif target == written:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{html.escape(target)}{match.group(2)}"


def _html_footer(template: str, *, email: str, url: str | None, links: LinkSettings | None) -> str:
    """The HTML footer for one lead: the template's own links filled and tracked, values escaped.

    One pass over the template as configured: each quoted ``href`` in it is filled and
    tracked by ``_footer_link``; a placeholder anywhere else becomes HTML-escaped text. What
    a placeholder puts in is never scanned again, so a lead's value is only ever text: it
    cannot open a tag or an attribute, nor be taken for a link and signed.
    """
    values = {"EMAIL": email, "UNSUBSCRIBE": url or ""}

    def fill(match: re.Match[str]) -> str:
        name = match.group(4)
        if name is not None:
            return html.escape(values[name])
        return _footer_link(match, email=email, url=url, links=links)

    return _FOOTER_HTML.sub(fill, template)


def _html_part(
    body: str,
    footer_html: str | None,
    *,
    links: LinkSettings | None,
    email: str,
    unsubscribe_url: str | None,
) -> str | None:
    """The HTML alternative (only with an HTML footer), tracked as ``links`` say.

    The body is plain text, escaped into paragraphs: only the footer template has links.
    """
    if not footer_html:
        return None
    paragraphs = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n\n") if part)
    footer = _html_footer(footer_html, email=email, url=unsubscribe_url, links=links)
    html_text = f"<html><body>{paragraphs}{footer}{_HTML_END}"
    if links is not None and links.track_opens:
        pixel = html.escape(links.url(tokens.OPEN, email))
        image = f'<img src="{pixel}" width="1" height="1" alt="">'
        html_text = html_text.removesuffix(_HTML_END) + image + _HTML_END
    return html_text


def _footer(template: str | None, url: str | None, email: str) -> str:
    if not template:
        return ""
    return template.replace("%%UNSUBSCRIBE%%", url or "").replace("%%EMAIL%%", email)


def _subject(
    campaign: Campaign,
    step_index: int,
    fields: Mapping[str, str],
    first: str | None,
    variant: str | None,
) -> str:
    template = campaign.sequence[step_index].subject_of(variant)
    if template is not None:
        return _render(template, fields, f"step {step_index + 1} subject")
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
    links: LinkSettings | None = None,
    variant: str | None = None,
) -> Outgoing:
    """Compose step ``step_index`` (0-based) of ``campaign`` for one lead.

    ``variant`` is the version of the step the lead was given: its subject, if it has
    one, replaces the step's (``body_template`` is already the version's).

    ``links`` (from ``link_settings``, with ``http`` configured) makes the unsubscribe
    URL the daemon's one-click link and turns tracking on as the settings say.

    Raises:
        ComposeError: A template fails for this lead.
    """
    to = ascii_address(email, "address")
    sender = ascii_address(credential.from_email, "from_email")
    subject = _subject(campaign, step_index, fields, first_subject, variant)
    body = _render(body_template, fields, f"step {step_index + 1} body")
    domain = sender.rsplit("@", 1)[1]
    message_id = f"<{token}@{domain}>"
    url = _unsubscribe_url(campaign, email, links)
    unsubscribe = campaign.unsubscribe
    footer_text = _footer(unsubscribe.footer_text if unsubscribe else None, url, email)
    text = body + (f"\n\n{footer_text}\n" if footer_text else "")
    footer_html = unsubscribe.footer_html if unsubscribe else None
    html_text = _html_part(body, footer_html, links=links, email=email, unsubscribe_url=url)
    mailto = f"<mailto:{sender}?subject=unsubscribe>"
    headers = [
        from_header(credential.from_name, sender),
        fold("To", to),
        text_header("Subject", subject),
        date_header(now),
        fold("Message-ID", message_id),
    ]
    if earlier_ids:
        headers.append(fold("In-Reply-To", earlier_ids[-1]))
        headers.append(fold("References", " ".join(earlier_ids)))
    headers.append(fold("List-Unsubscribe", f"{mailto}, <{url}>" if url else mailto))
    if url:
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    headers.append("MIME-Version: 1.0\r\n")
    head = "".join(headers)
    if not head.isascii():  # e.g. a non-ASCII URL: refuse rather than send 8-bit headers
        raise ComposeError("a header would hold non-ASCII text outside an encoded word")
    data = head.encode("ascii") + text_body(text, html_text, f"=_alt_{token}")
    recipients = (to, ascii_address(credential.bcc, "bcc")) if credential.bcc else (to,)
    return Outgoing(data, message_id, subject, sender, recipients)

"""Unsubscribe in a campaign's messages, against what the large mailbox providers ask.

Gmail and Yahoo (February 2024) ask bulk senders for one-click unsubscribe (RFC 8058):
``List-Unsubscribe`` with an HTTPS URL and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``, and a visible unsubscribe link in the message. What a
message carries follows from the config as :mod:`mailopsd.dispatch.compose` writes it:
``List-Unsubscribe`` always has a ``mailto:`` to the mailbox; with ``http`` it adds
the daemon's own signed link ``<public_base_url>/u/<token>`` (which answers the
one-click POST), else ``unsubscribe.url``; with either URL it adds
``List-Unsubscribe-Post``. The footers carry ``%%UNSUBSCRIBE%%`` into the body. Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mailopsd.config.models import Campaign, Config
from mailopsd.doctor.findings import Finding, Severity

__all__ = ["check_unsubscribe"]

_HTTP_SNIPPET = (
    "http:\n"
    "  listen: 127.0.0.1:8025\n"
    "  public_base_url: https://mail.example.com   # your reverse proxy, HTTPS\n"
    "  signing_key: <32+ random characters, SOPS-encrypted>"
)
_FOOTER_SNIPPET = 'unsubscribe:\n  footer_text: "Not interested? %%UNSUBSCRIBE%%"'


def _url_source(config: Config, campaign: Campaign) -> tuple[str, str] | None:
    """The unsubscribe URL messages carry (as configured) and where it comes from."""
    if config.http is not None:
        return f"{config.http.public_base_url}/u/<token>", "http.public_base_url"
    if campaign.unsubscribe is not None and campaign.unsubscribe.url is not None:
        return campaign.unsubscribe.url, "unsubscribe.url"
    return None


_NO_URL = Finding(
    "one-click",
    Severity.FAIL,
    "List-Unsubscribe has only a mailto: and there is no List-Unsubscribe-Post, because the "
    "campaign has no unsubscribe URL: Gmail and Yahoo require one-click unsubscribe "
    "(RFC 8058) of bulk senders. Configure http, whose server answers the one-click POST "
    "itself",
    change=_HTTP_SNIPPET,
)


def _one_click(config: Config, campaign: Campaign) -> Finding:
    source = _url_source(config, campaign)
    if source is None:
        return _NO_URL
    url, where = source
    if urlsplit(url).scheme != "https":
        return Finding(
            "one-click",
            Severity.FAIL,
            f"List-Unsubscribe carries {url} (from {where}): RFC 8058 one-click needs an "
            "https URL, so Gmail and Yahoo do not offer it; serve it over HTTPS and give "
            f"that URL in {where}",
        )
    headers = (
        f"List-Unsubscribe: <mailto:...>, <{url}> and "
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    )
    if where == "http.public_base_url":
        return Finding(
            "one-click",
            Severity.OK,
            f"{headers}; the daemon's server answers the one-click POST (RFC 8058)",
        )
    if "%%EMAIL%%" not in url:
        return Finding(
            "one-click",
            Severity.WARN,
            f"{headers}; unsubscribe.url has no %%EMAIL%%, so every lead gets the same link "
            "and your endpoint cannot tell who unsubscribes; add %%EMAIL%%, or configure "
            "http for signed per-lead links",
        )
    return Finding(
        "one-click",
        Severity.OK,
        f"{headers}; your endpoint must unsubscribe on a POST of "
        "List-Unsubscribe=One-Click, with no login or confirmation page (doctor does not "
        "call it)",
    )


def _footer(campaign: Campaign) -> Finding:
    unsubscribe = campaign.unsubscribe
    footers = [
        name
        for name in ("footer_text", "footer_html")
        if unsubscribe is not None and "%%UNSUBSCRIBE%%" in (getattr(unsubscribe, name) or "")
    ]
    if not footers:
        return Finding(
            "footer",
            Severity.WARN,
            "no unsubscribe link in the message body (no footer with %%UNSUBSCRIBE%%): Gmail "
            "and Yahoo also ask for a clearly visible one, and people who cannot find it "
            "press 'report spam' instead",
            change=_FOOTER_SNIPPET,
        )
    return Finding("footer", Severity.OK, f"the unsubscribe link is in {' and '.join(footers)}")


def check_unsubscribe(config: Config, campaign: Campaign) -> list[Finding]:
    """The findings of a campaign's unsubscribe headers and footers.

    Args:
        config: The whole config (its ``http`` section gives the one-click link).
        campaign: The campaign.

    Returns:
        The one-click finding, then the footer finding.
    """
    return [_one_click(config, campaign), _footer(campaign)]

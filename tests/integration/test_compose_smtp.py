"""Composed messages as a real SMTP server (aiosmtpd) receives them: links and headers.

Each message is composed for a lead and handed straight to the transport, so lead values
the leads file would refuse still reach ``compose``: it must be safe on its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailopsd import tokens
from mailopsd.config.models import Campaign
from mailopsd.dispatch.compose import LinkSettings, compose
from mailopsd.lifecycle import SendOutcome
from mailopsd.smtp.message import Outgoing
from mailopsd.smtp.transport import SmtpTransport
from mailopsd.state.ledger import Ledger
from tests.dispatch_setup import credential, parsed, run_once, write_campaign
from tests.servers.smtp import SmtpServer

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
BASE_URL = "https://mail.example.com"
SIGNING_KEY = b"s" * 32
EVIL = "href='https://evil.example/x'@example.com"
TEMPLATE_LINKS = ("https://example.com/offer", "https://example.com/prefs")
FOOTER_HTML = (
    f'<a href="{TEMPLATE_LINKS[0]}">Offer</a> <a href="{TEMPLATE_LINKS[1]}">Preferences</a> '
    'Sent to %%EMAIL%%. <a href="%%UNSUBSCRIBE%%">Unsubscribe</a>'
)
_HREF = re.compile(r"""href\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)


@pytest.fixture
def transport() -> Iterator[SmtpTransport]:
    sender = SmtpTransport(timeout_s=10)
    try:
        yield sender
    finally:
        sender.close_all()


def _campaign(server: SmtpServer, subject: str) -> Campaign:
    return Campaign.model_validate(
        {
            "name": "c",
            "leads": "l.csv",
            "sequence": [{"subject": subject, "body": "Hi {{ first_name }}."}],
            "smtp_credentials": {"a": credential(server, "ada")},
            "unsubscribe": {"footer_html": FOOTER_HTML},
        }
    )


def _send(
    server: SmtpServer, transport: SmtpTransport, *, address: str, subject: str, first_name: str
) -> EmailMessage:
    """Compose step 1 for one lead, with click tracking on, and return what the server got."""
    campaign = _campaign(server, subject)
    account = campaign.smtp_credentials["a"]
    outgoing: Outgoing = compose(
        campaign,
        account,
        step_index=0,
        body_template="Hi {{ first_name }}.",
        email=address,
        fields={"first_name": first_name, "email": address},
        first_subject=None,
        earlier_ids=(),
        now=NOW,
        token="0123abcd",  # noqa: S106 - a Message-ID token, not a secret
        links=LinkSettings(BASE_URL, SIGNING_KEY, "camp", track_clicks=True),
    )
    # aiosmtpd refuses some such addresses at RCPT (servers in the wild take them): the
    # message as composed goes to a plain envelope address, the headers are unchanged.
    outgoing = dataclasses.replace(outgoing, recipients=("sink@example.net",))
    outcome = transport.deliver(("camp", "a"), account, server.ca.ca_file, outgoing)
    assert outcome.kind is SendOutcome.SENT, outcome
    (received,) = server.handler.messages
    return parsed(received)


def test_a_lead_address_never_becomes_a_tracked_link(
    smtp_server: SmtpServer, transport: SmtpTransport
) -> None:
    """Each click link in the delivered HTML signs a link of the template, never a lead's."""
    mail = _send(
        smtp_server, transport, address=EVIL, subject="Hello {{ first_name }}", first_name="Jo"
    )
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html_text = str(html_part.get_content())
    clicked = [
        tokens.verify(SIGNING_KEY, tokens.CLICK, href.removeprefix(f"{BASE_URL}/c/"))
        for _, href in _HREF.findall(html_text)
        if href.startswith(f"{BASE_URL}/c/")
    ]
    assert sorted(claims.url for claims in clicked if claims is not None) == list(TEMPLATE_LINKS)
    assert len(clicked) == len(TEMPLATE_LINKS)
    assert "Sent to href=&#x27;https://evil.example/x&#x27;@example.com." in html_text


def test_a_2000_character_subject_arrives_whole_in_short_lines(
    smtp_server: SmtpServer, transport: SmtpTransport
) -> None:
    """A 2,000-character subject is folded so no line passes 998 octets, and arrives intact."""
    name = "x" * 1994
    mail = _send(
        smtp_server,
        transport,
        address="jo@example.net",
        subject="Hello {{ first_name }}",
        first_name=name,
    )
    (received,) = smtp_server.handler.messages
    assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
    assert mail["Subject"] == f"Hello {name}"


def test_a_control_character_in_a_subject_fails_only_that_lead(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A lead whose subject would hold a control character fails with a clear reason; others go."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=["jo@example.net,Jo\x0bAnn", "al@example.net,Al"],
        steps=1,
    )
    state = tmp_path / "state"
    assert run_once(path, state, "2026-11-23T10:00:00Z") == 0
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["al@example.net"]]
    ledger = Ledger.open(state)
    try:
        lead = ledger.leads.get("camp", "jo@example.net")
    finally:
        ledger.close()
    assert lead is not None
    assert lead.state == "failed"
    assert lead.last_error is not None
    assert "Subject" in lead.last_error
    assert "control character U+000B" in lead.last_error
    assert "\x0b" not in lead.last_error

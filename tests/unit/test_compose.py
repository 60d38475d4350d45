"""Composing: the wire form of a message, read back by the standard library's parser."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd.config.models import Campaign
from mailopsd.config.templates import make_environment
from mailopsd.dispatch.compose import ComposeError, Outgoing, _render, compose

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _campaign(**extra: Any) -> Campaign:
    credential = {
        "smtp_host": "127.0.0.1",
        "smtp_port": 587,
        "smtp_username": "u",
        "smtp_password": "p",
        "from_name": "Ada",
        "from_email": "ada@sender.example.com",
        "daily_limit": 10,
        **extra.pop("credential", {}),
    }
    return Campaign.model_validate(
        {
            "name": "c",
            "leads": "l.csv",
            "sequence": [
                {"subject": "Hello {{ first_name }}", "body": "b"},
                {"delay": "1 day", "body": "again"},
            ],
            "smtp_credentials": {"a": credential},
            **extra,
        }
    )


def _compose(
    campaign: Campaign | None = None,
    *,
    body: str = "Hi {{ first_name }}.\n",
    fields: dict[str, str] | None = None,
    step: int = 0,
    earlier: tuple[str, ...] = (),
    address: str = "jo@example.net",
) -> Outgoing:
    campaign = campaign or _campaign()
    return compose(
        campaign,
        campaign.smtp_credentials["a"],
        step_index=step,
        body_template=body,
        email=address,
        fields=fields if fields is not None else {"first_name": "Jo", "email": address},
        first_subject="Hello Jo" if step else None,
        earlier_ids=earlier,
        now=NOW,
        token="0123abcd",  # noqa: S106 - a Message-ID token, not a secret
    )


def _parsed(outgoing: Outgoing) -> EmailMessage:
    return email.message_from_bytes(outgoing.data, policy=email.policy.default)  # type: ignore[return-value]


def _text(part: EmailMessage | None) -> str:
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _lines(outgoing: Outgoing) -> list[bytes]:
    head = outgoing.data.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def test_plain_message() -> None:
    outgoing = _compose()
    mail = _parsed(outgoing)
    assert mail["From"] == "Ada <ada@sender.example.com>"
    assert mail["To"] == "jo@example.net"
    assert mail["Subject"] == "Hello Jo"
    assert mail["Date"] == "Mon, 23 Nov 2026 10:00:00 +0000"
    assert mail["Message-ID"] == "<0123abcd@sender.example.com>"
    assert mail["List-Unsubscribe"] == "<mailto:ada@sender.example.com?subject=unsubscribe>"
    assert mail.get_content_type() == "text/plain"
    assert _text(mail) == "Hi Jo.\n"
    assert outgoing.data.count(b"MIME-Version:") == 1
    assert b"\n" not in outgoing.data.replace(b"\r\n", b"")  # CRLF line ends only
    assert (outgoing.envelope_from, outgoing.recipients) == (
        "ada@sender.example.com",
        ("jo@example.net",),
    )


def test_follow_up_threads_and_folds_long_headers() -> None:
    earlier = tuple(f"<{'x' * 30}{n}@sender.example.com>" for n in range(4))
    outgoing = _compose(step=1, body="again", earlier=earlier)
    mail = _parsed(outgoing)
    assert mail["Subject"] == "Re: Hello Jo"
    assert mail["In-Reply-To"] == earlier[-1]
    assert mail["References"] == " ".join(earlier)
    assert all(len(line) <= 78 for line in _lines(outgoing))


def test_non_ascii_subject_name_and_body() -> None:
    campaign = _campaign(credential={"from_name": "Zoë Ådahl"})
    outgoing = _compose(
        campaign, body="Grüße, {{ first_name }} — ça va?\n", fields={"first_name": "Jörg"}
    )
    mail = _parsed(outgoing)
    assert mail["Subject"] == "Hello Jörg"
    assert str(mail["From"]) == "Zoë Ådahl <ada@sender.example.com>"
    assert _text(mail) == "Grüße, Jörg — ça va?\n"
    assert outgoing.data.isascii()
    assert all(len(line) <= 78 for line in _lines(outgoing))


def test_long_lines_and_dots_survive() -> None:
    body = "x" * 300 + "\n.\n.starts with a dot\ntrailing space \n=3D\n"
    mail = _parsed(_compose(body=body))
    assert _text(mail) == body
    assert all(len(line) <= 78 for line in _compose(body=body).data.split(b"\r\n"))


def test_footers_make_alternatives() -> None:
    campaign = _campaign(
        unsubscribe={
            "url": "https://unsub.example/u/%%EMAIL%%",
            "footer_text": "Stop: %%UNSUBSCRIBE%%",
            "footer_html": '<a href="%%UNSUBSCRIBE%%">Unsubscribe</a>',
        }
    )
    outgoing = _compose(campaign, body="One <b>\n\nTwo\n")
    mail = _parsed(outgoing)
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = _text(mail.get_body(("plain",)))  # type: ignore[arg-type]
    assert plain == "One <b>\n\nTwo\n\n\nStop: https://unsub.example/u/jo@example.net\n"
    assert _text(mail.get_body(("html",))) == (  # type: ignore[arg-type]
        "<html><body><p>One &lt;b&gt;</p><p>Two\n</p>"
        '<a href="https://unsub.example/u/jo@example.net">Unsubscribe</a></body></html>\n'
    )
    assert outgoing.data.count(b"MIME-Version:") == 1


def test_bcc_is_an_envelope_recipient_only() -> None:
    outgoing = _compose(_campaign(credential={"bcc": "copy@sender.example.com"}))
    assert outgoing.recipients == ("jo@example.net", "copy@sender.example.com")
    assert b"copy@" not in outgoing.data


def test_idn_domain_is_sent_in_ascii() -> None:
    outgoing = _compose(address="jo@bücher.example")
    assert outgoing.recipients == ("jo@xn--bcher-kva.example",)
    assert _parsed(outgoing)["To"] == "jo@xn--bcher-kva.example"


def test_non_ascii_local_part_fails_the_lead() -> None:
    with pytest.raises(ComposeError, match="SMTPUTF8"):
        _compose(address="jörg@example.net")


def test_line_break_in_a_header_fails_the_lead() -> None:
    with pytest.raises(ComposeError, match="line break"):
        _compose(fields={"first_name": "Jo\r\nBcc: victim@example.org"})


def test_missing_field_is_named() -> None:
    with pytest.raises(ComposeError, match="'first_name' is undefined"):
        _compose(fields={})


_ENVIRONMENT = make_environment()
_pieces = st.one_of(
    st.text(alphabet="ab \n\r{}%#é-", max_size=6),
    st.sampled_from(["{{ name }}", "{{name}}", "{{- name -}}", "{{ name|upper }}", "{{ other }}"]),
    st.sampled_from(["{% if name %}y{% endif %}", "{# note #}", "{% raw %}{{ x }}{% endraw %}"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_pieces, max_size=6), st.text(max_size=5), st.booleans())
def test_rendering_matches_jinja(pieces: list[str], value: str, has_other: bool) -> None:
    """The shortcut for plain templates prints what Jinja prints, errors included."""
    source = "".join(pieces)
    fields = {"name": value, **({"other": "O"} if has_other else {})}
    try:
        expected: str | type[Exception] = _ENVIRONMENT.from_string(source).render(**fields)
    except jinja2.TemplateError:
        expected = ComposeError
    if expected is ComposeError:
        with pytest.raises(ComposeError):
            _render(source, fields, "body")
    else:
        assert _render(source, fields, "body") == expected

"""Composing: the wire form of a message, read back by the standard library's parser."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd import tokens
from mailopsd.config.models import Campaign, Http
from mailopsd.config.templates import make_environment
from mailopsd.dispatch.compose import (
    LinkSettings,
    _render,
    compose,
    link_settings,
)
from mailopsd.smtp.message import ComposeError, Outgoing

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
    links: LinkSettings | None = None,
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
        links=links,
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


BASE_URL = "https://mail.example.com"
SIGNING_KEY = b"s" * 32


def _links(*, opens: bool = False, clicks: bool = False) -> LinkSettings:
    return LinkSettings(BASE_URL, SIGNING_KEY, "acme", track_opens=opens, track_clicks=clicks)


def _token(url: str, purpose: str) -> str:
    prefix = f"{BASE_URL}/{purpose}/"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix).removesuffix(".gif")


def _html(outgoing: Outgoing) -> str:
    return _text(_parsed(outgoing).get_body(("html",)))  # type: ignore[arg-type]


_HREFS = re.compile(r'href="([^"]*)"')


FOOTERS = {
    "url": "https://unsub.example/u/%%EMAIL%%",
    "footer_text": "Stop: %%UNSUBSCRIBE%% or see https://example.com/plain",
    "footer_html": (
        '<a href="https://example.com/a?x=1&amp;y=%C3%A9">A</a> '
        "<a HREF='HTTP://Example.com/B'>B</a> "
        '<a href="mailto:ada@example.com">mail</a> <a href="tel:+331">tel</a> '
        '<a href="#top">top</a> <a href="/relative">rel</a> <a href="ftp://x.example/">f</a> '
        '<a data-href="https://example.com/data">d</a> '
        '<a href="%%UNSUBSCRIBE%%">Unsubscribe</a>'
    ),
}


class TestLinks:
    """With http: the one-click unsubscribe link, the open image and the click redirect."""

    def test_one_click_unsubscribe_without_unsubscribe_section(self) -> None:
        """With http, every message offers the signed one-click link, even without footers."""
        mail = _parsed(_compose(links=_links()))
        mailto, url = mail["List-Unsubscribe"].split(", ")
        assert mailto == "<mailto:ada@sender.example.com?subject=unsubscribe>"
        token = _token(url.strip("<>"), "u")
        assert tokens.verify(SIGNING_KEY, "u", token) == tokens.Claims("acme", "jo@example.net")
        assert tokens.verify(SIGNING_KEY, "o", token) is None
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail.get_content_type() == "text/plain"

    def test_footers_use_the_signed_link(self) -> None:
        """%%UNSUBSCRIBE%% in both footers is the signed link, not unsubscribe.url."""
        outgoing = _compose(_campaign(unsubscribe=FOOTERS), links=_links())
        mail = _parsed(outgoing)
        url = mail["List-Unsubscribe"].split(", ")[1].strip("<>")
        plain = _text(mail.get_body(("plain",)))  # type: ignore[arg-type]
        assert plain.endswith(f"Stop: {url} or see https://example.com/plain\n")
        assert f'<a href="{url}">Unsubscribe</a>' in _html(outgoing)
        assert b"unsub.example" not in outgoing.data

    def test_open_image_ends_the_html_part(self) -> None:
        """Open tracking adds a signed 1x1 image at the end of the HTML body."""
        html = _html(_compose(_campaign(unsubscribe=FOOTERS), links=_links(opens=True)))
        match = re.search(r'<img src="([^"]+)" width="1" height="1" alt=""></body></html>\n$', html)
        assert match is not None
        assert match.group(1).endswith(".gif")
        token = _token(match.group(1), "o")
        assert tokens.verify(SIGNING_KEY, "o", token) == tokens.Claims("acme", "jo@example.net")
        assert "/c/" not in html

    def test_click_tracking_rewrites_web_links_only(self) -> None:
        """Web links go through /c/ with the decoded URL signed; others stay as written."""
        outgoing = _compose(_campaign(unsubscribe=FOOTERS), links=_links(clicks=True))
        html = _html(outgoing)
        hrefs = _HREFS.findall(html)
        clicked = [h for h in hrefs if h.startswith(f"{BASE_URL}/c/")]
        targets = [tokens.verify(SIGNING_KEY, "c", _token(h, "c")) for h in clicked]
        assert [t.url if t else None for t in targets] == ["https://example.com/a?x=1&y=%C3%A9"]
        assert all(t is not None and t.email == "jo@example.net" for t in targets)
        assert "<a HREF='" + BASE_URL + "/c/" in html  # quote and case kept
        for kept in ("mailto:ada@example.com", "tel:+331", "#top", "/relative", "ftp://x.example/"):
            assert f'href="{kept}"' in html
        assert 'data-href="https://example.com/data"' in html
        unsubscribe = _parsed(outgoing)["List-Unsubscribe"].split(", ")[1].strip("<>")
        assert f'<a href="{unsubscribe}">Unsubscribe</a>' in html
        plain = _text(_parsed(outgoing).get_body(("plain",)))  # type: ignore[arg-type]
        assert "https://example.com/plain" in plain
        assert "/c/" not in plain

    def test_upper_case_link_is_signed_as_written(self) -> None:
        """A link in single quotes with an upper-case scheme is rewritten and signed as is."""
        html = _html(_compose(_campaign(unsubscribe=FOOTERS), links=_links(clicks=True)))
        quoted = re.search(r"HREF='([^']*)'", html)
        assert quoted is not None
        claims = tokens.verify(SIGNING_KEY, "c", _token(quoted.group(1), "c"))
        assert claims is not None
        assert claims.url == "HTTP://Example.com/B"

    def test_escaped_body_links_are_not_rewritten(self) -> None:
        """A body's text is escaped into the HTML part, so markup in it is never a link."""
        footers = {"footer_html": "<p>bye</p>"}
        body = 'See <a href="https://example.com/x">x</a>\n'
        html = _html(_compose(_campaign(unsubscribe=footers), body=body, links=_links(clicks=True)))
        assert "&lt;a href=&quot;https://example.com/x&quot;&gt;" in html
        assert "/c/" not in html

    def test_no_html_part_no_tracking(self) -> None:
        """Without footer_html there is no HTML part, so nothing is tracked."""
        footers = {"footer_text": "Stop: %%UNSUBSCRIBE%%"}
        outgoing = _compose(_campaign(unsubscribe=footers), links=_links(opens=True, clicks=True))
        assert _parsed(outgoing).get_content_type() == "text/plain"
        assert b"/o/" not in outgoing.data
        assert b"/c/" not in outgoing.data

    def test_tokens_differ_per_lead(self) -> None:
        """Two leads get different tokens, each verifying for its own address only."""
        urls = [
            _parsed(_compose(address=address, links=_links()))["List-Unsubscribe"]
            .split(", ")[1]
            .strip("<>")
            for address in ("jo@example.net", "al@example.net")
        ]
        assert urls[0] != urls[1]
        claims = [tokens.verify(SIGNING_KEY, "u", _token(url, "u")) for url in urls]
        assert [c.email if c else None for c in claims] == ["jo@example.net", "al@example.net"]
        other_key = tokens.verify(b"x" * 32, "u", _token(urls[0], "u"))
        assert other_key is None

    def test_link_settings(self) -> None:
        """No http, no links; with http, the credential's tracking wins over the campaign's."""
        http = Http.model_validate(
            {
                "listen": "127.0.0.1:8025",
                "public_base_url": "https://mail.example.com/",
                "signing_key": "k" * 32,
            }
        )
        campaign = _campaign(
            tracking={"open": True, "click": True}, credential={"tracking": {"click": True}}
        )
        credential = campaign.smtp_credentials["a"]
        assert (
            link_settings(None, campaign_id="acme", campaign=campaign, credential=credential)
            is None
        )
        assert link_settings(
            http, campaign_id="acme", campaign=campaign, credential=credential
        ) == LinkSettings(
            "https://mail.example.com", b"k" * 32, "acme", track_opens=False, track_clicks=True
        )
        assert "k" * 32 not in repr(
            link_settings(http, campaign_id="acme", campaign=campaign, credential=credential)
        )


EVIL = "href='https://evil.example/x'@example.com"


class TestLeadValuesInHtml:
    """A lead's values are text in the HTML part: escaped, and never a link to track."""

    def test_lead_address_is_escaped_and_never_tracked(self) -> None:
        """The issue's address shows as text in the footer and yields no click token of its own."""
        footers = {**FOOTERS, "footer_html": FOOTERS["footer_html"] + " Sent to %%EMAIL%%."}
        outgoing = _compose(_campaign(unsubscribe=footers), address=EVIL, links=_links(clicks=True))
        html = _html(outgoing)
        assert "Sent to href=&#x27;https://evil.example/x&#x27;@example.com." in html
        clicked = [h for h in _HREFS.findall(html) if h.startswith(f"{BASE_URL}/c/")]
        targets = [tokens.verify(SIGNING_KEY, "c", _token(h, "c")) for h in clicked]
        assert [t.url if t else None for t in targets] == ["https://example.com/a?x=1&y=%C3%A9"]

    def test_markup_in_the_address_stays_text(self) -> None:
        """An address holding markup cannot open a tag or an attribute in the footer."""
        address = 'x"><script>alert(1)</script>@example.net'
        footers = {"footer_html": '<p title="%%EMAIL%%">Sent to %%EMAIL%%</p>'}
        html = _html(_compose(_campaign(unsubscribe=footers), address=address))
        assert "<script" not in html
        quoted = "x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.net"
        assert f'<p title="{quoted}">Sent to {quoted}</p>' in html

    def test_address_inside_a_template_link_stays_inside_it(self) -> None:
        """%%EMAIL%% in a template's link is percent-encoded in it; the signed URL is that link."""
        address = 'x"><a href="https://evil.example/">@example.net'
        footers = {"footer_html": '<a href="https://example.com/prefs?e=%%EMAIL%%">prefs</a>'}
        for links in (None, _links(clicks=True)):
            html = _html(_compose(_campaign(unsubscribe=footers), address=address, links=links))
            (href,) = _HREFS.findall(html)
            target = tokens.verify(SIGNING_KEY, "c", _token(href, "c")) if links else None
            url = target.url if target else href
            assert url == (
                "https://example.com/prefs?e=x%22%3E%3Ca%20href%3D%22https%3A%2F%2Fevil.example"
                "%2F%22%3E@example.net"
            )
            assert "evil.example/" not in html

    @pytest.mark.parametrize("body", ["Hi {{ first_name }}.\n", "Hi {{ first_name|trim }}.\n"])
    def test_markup_in_a_field_is_escaped(self, body: str) -> None:
        """A first_name holding <script> shows as text in the HTML part, never as markup."""
        fields = {"first_name": "<script>alert(1)</script>", "email": "jo@example.net"}
        html = _html(_compose(_campaign(unsubscribe=FOOTERS), body=body, fields=fields))
        assert "<script" not in html
        assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;.\n</p>" in html


class TestHeaderText:
    """Header values: control characters are refused, long lines are folded or refused."""

    @pytest.mark.parametrize("char", ["\x00", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u2028"])
    def test_control_character_in_the_subject_fails_the_lead(self, char: str) -> None:
        """A subject that would hold NUL, VT, FF, FS and the like fails the lead, naming it."""
        with pytest.raises(ComposeError) as caught:
            _compose(fields={"first_name": f"Jo{char}Ann"})
        message = str(caught.value)
        assert f"control character U+{ord(char):04X}" in message
        assert "Subject" in message
        assert char not in message

    @pytest.mark.parametrize("char", ["\x00", "\x0b", "\x0c", "\x1c"])
    def test_control_character_in_the_address_fails_the_lead(self, char: str) -> None:
        """An address holding NUL, VT, FF or FS fails the lead instead of reaching To and RCPT."""
        with pytest.raises(ComposeError) as caught:
            _compose(address=f"jo{char}@example.net")
        assert f"control character U+{ord(char):04X}" in str(caught.value)
        assert "To" in str(caught.value)

    def test_tab_in_the_subject_is_kept(self) -> None:
        """A tab is white space a header may hold: the subject keeps it."""
        assert _parsed(_compose(fields={"first_name": "Jo\tAnn"}))["Subject"] == "Hello Jo\tAnn"

    @pytest.mark.parametrize("name", ["x" * 1994, "é" * 1994, "word " * 399])
    def test_long_subject_is_folded_under_998_octets(self, name: str) -> None:
        """A 2,000-character subject is sent in lines of at most 998 octets and reads back whole."""
        outgoing = _compose(fields={"first_name": name})
        assert all(len(line) <= 998 for line in outgoing.data.split(b"\r\n"))
        assert _parsed(outgoing)["Subject"] == f"Hello {name}"

    def test_over_long_header_line_fails_the_lead(self) -> None:
        """An address too long for one header line fails the lead rather than breaking SMTP."""
        with pytest.raises(ComposeError, match=r"To header.*998"):
            _compose(address="x" * 1200 + "@example.net")


def test_a_text_over_the_limit_fails_only_that_lead() -> None:
    """A template that makes a huge text for one lead's values fails that lead, not others."""
    body = "{{ 'x' * (30000000 if first_name == 'Bomb' else 2) }}"
    assert b"xx" in _compose(body=body).data
    with pytest.raises(ComposeError) as caught:
        _compose(body=body, fields={"first_name": "Bomb", "email": "jo@example.net"})
    assert str(caught.value) == (
        "step 1 body: the template would make a text of 30,000,000 characters, over the "
        "limit of 2,097,152 characters: make the template or what it repeats shorter"
    )


def test_plain_template_with_long_values_is_capped() -> None:
    """A template of only names is capped too, when the leads' values make it too long."""
    body = "{{ first_name }}" * 20
    with pytest.raises(ComposeError, match=r"^step 1 body: the template would make a text of"):
        _compose(body=body, fields={"first_name": "y" * 200_000, "email": "jo@example.net"})

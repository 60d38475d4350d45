"""doctor's unsubscribe findings agree with the headers mailopsd really composes."""

from __future__ import annotations

import email
from datetime import UTC, datetime

import pytest

from mailopsd.dispatch.compose import compose, link_settings
from mailopsd.doctor import Severity
from mailopsd.doctor.unsubscribe import check_unsubscribe
from tests.configs import BASE, Writer, loads

HTTP = """http:
  listen: 127.0.0.1:8025
  public_base_url: {base}
  signing_key: 0123456789abcdef0123456789abcdef
"""
INSERT_AFTER = "    leads: leads.csv\n"


def _unsubscribe(lines: str) -> str:
    return BASE.replace(INSERT_AFTER, INSERT_AFTER + "    unsubscribe:\n" + lines)


class TestOneClick:
    """The one-click verdict, checked against a composed message's headers."""

    @pytest.mark.parametrize(
        ("text", "severity", "has_post", "url_start"),
        [
            (BASE, Severity.FAIL, False, None),
            (
                _unsubscribe('      url: "http://example.com/u/%%EMAIL%%"\n'),
                Severity.FAIL,
                True,
                "http://example.com/u/",
            ),
            (
                _unsubscribe('      url: "https://example.com/u"\n'),
                Severity.WARN,
                True,
                "https://example.com/u",
            ),
            (
                _unsubscribe('      url: "https://example.com/u/%%EMAIL%%"\n'),
                Severity.OK,
                True,
                "https://example.com/u/grace@example.com",
            ),
            (
                BASE + HTTP.format(base="https://mail.example.com"),
                Severity.OK,
                True,
                "https://mail.example.com/u/",
            ),
            (
                BASE + HTTP.format(base="http://mail.example.com"),
                Severity.FAIL,
                True,
                "http://mail.example.com/u/",
            ),
        ],
    )
    def test_matches_composed_headers(
        self,
        write_config: Writer,
        text: str,
        severity: Severity,
        has_post: bool,
        url_start: str | None,
    ) -> None:
        """What doctor says a message carries is what compose writes into it."""
        config = loads(write_config(text)).config
        campaign = config.campaigns["acme-q4"]
        credential = campaign.smtp_credentials["primary"]
        outgoing = compose(
            campaign,
            credential,
            step_index=0,
            body_template="Hi",
            email="grace@example.com",
            fields={"first_name": "Grace", "email": "grace@example.com"},
            first_subject=None,
            earlier_ids=(),
            now=datetime(2026, 12, 1, tzinfo=UTC),
            token="0123abcd",  # noqa: S106 - a Message-ID token, not a secret
            links=link_settings(
                config.http, campaign_id="acme-q4", campaign=campaign, credential=credential
            ),
        )
        headers = email.message_from_bytes(outgoing.data)
        links = [part.strip().strip("<>") for part in headers["List-Unsubscribe"].split(",")]
        web = [link for link in links if not link.startswith("mailto:")]
        assert (headers["List-Unsubscribe-Post"] is not None) is has_post
        if url_start is None:
            assert web == []
        else:
            assert web[0].startswith(url_start)
        one_click = check_unsubscribe(config, campaign)[0]
        assert (one_click.check, one_click.severity) == ("one-click", severity)

    def test_footer(self, write_config: Writer) -> None:
        """A footer with %%UNSUBSCRIBE%% is ok; none is a warning with the config to add."""
        bare = loads(write_config()).config
        assert check_unsubscribe(bare, bare.campaigns["acme-q4"])[1].severity is Severity.WARN
        text = _unsubscribe(
            '      url: "https://example.com/u/%%EMAIL%%"\n'
            "      footer_html: '<a href=\"%%UNSUBSCRIBE%%\">Unsubscribe</a>'\n"
        )
        config = loads(write_config(text)).config
        footer = check_unsubscribe(config, config.campaigns["acme-q4"])[1]
        assert (footer.severity, footer.message) == (
            Severity.OK,
            "the unsubscribe link is in footer_html",
        )

"""Every schema rule, with the exact message and position a person sees."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailopsd.config.periods import SYNTAX
from tests.configs import BASE, CANARY, Writer, errors_of, loads

CRED = "c.yaml:{line}:{col}: campaigns.acme-q4.smtp_credentials.primary.{field}: {message}"
CAMPAIGN = "c.yaml:{line}:{col}: campaigns.acme-q4.{field}: {message}"


def _cred(line: int, col: int, field: str, message: str) -> str:
    return CRED.format(line=line, col=col, field=field, message=message)


def _campaign(line: int, col: int, field: str, message: str) -> str:
    return CAMPAIGN.format(line=line, col=col, field=field, message=message)


class TestCredentialScalars:
    """Credential fields: types are strict and ranges are checked."""

    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (
                "daily_limit: 100",
                "daily_limit: 0",
                _cred(18, 22, "daily_limit", "must be an integer ≥ 1 (got 0)"),
            ),
            (
                "daily_limit: 100",
                'daily_limit: "100"',
                _cred(18, 22, "daily_limit", 'must be an integer ≥ 1 (got "100")'),
            ),
            (
                "daily_limit: 100",
                "daily_limit: true",
                _cred(18, 22, "daily_limit", "must be an integer ≥ 1 (got true)"),
            ),
            (
                "daily_limit: 100",
                "daily_limit: 2.5",
                _cred(18, 22, "daily_limit", "must be an integer ≥ 1 (got 2.5)"),
            ),
            (
                "smtp_port: 587",
                "smtp_port: 0",
                _cred(13, 20, "smtp_port", "must be a port number from 1 to 65535 (got 0)"),
            ),
            (
                "smtp_port: 587",
                "smtp_port: 65536",
                _cred(13, 20, "smtp_port", "must be a port number from 1 to 65535 (got 65536)"),
            ),
            (
                "smtp_port: 587",
                'smtp_port: "587"',
                _cred(13, 20, "smtp_port", 'must be a port number from 1 to 65535 (got "587")'),
            ),
            (
                "smtp_host: smtp.example.com",
                "smtp_host: smtp://smtp.example.com",
                _cred(
                    12,
                    20,
                    "smtp_host",
                    'must be a host name, not a URL (got "smtp://smtp.example.com")',
                ),
            ),
            (
                "smtp_host: smtp.example.com",
                "smtp_host: smtp_example com",
                _cred(
                    12,
                    20,
                    "smtp_host",
                    'must be a host name or IP address (got "smtp_example com")',
                ),
            ),
            (
                "from_email: ada@example.com",
                "from_email: ada.example.com",
                _cred(
                    17,
                    21,
                    "from_email",
                    'must be an email address (got "ada.example.com"): '
                    "an email address must have an @-sign",
                ),
            ),
            (
                "from_name: Ada",
                'from_name: "Ada\\nBcc: victim@example.com"',
                _cred(
                    16,
                    20,
                    "from_name",
                    'must be a single line (got "Ada\\nBcc: victim@example.com")',
                ),
            ),
            (
                "from_name: Ada",
                'from_name: "Ada\\vLovelace"',
                _cred(
                    16,
                    20,
                    "from_name",
                    'must not hold control character U+000B (got "Ada\\u000bLovelace")',
                ),
            ),
            (
                "from_name: Ada",
                'from_name: ""',
                _cred(16, 20, "from_name", 'must be a non-empty string (got "")'),
            ),
        ],
    )
    def test_bad_value_is_located(
        self, write_config: Writer, old: str, new: str, expected: str
    ) -> None:
        """A wrong value is reported at its own line and column with what was given."""
        assert errors_of(write_config(replace=(old, new))) == [expected]

    @pytest.mark.parametrize(
        ("add", "expected"),
        [
            (
                "        enabled: yes\n",
                _cred(19, 18, "enabled", 'must be true or false (got "yes")'),
            ),
            (
                "        enabled: 1\n",
                _cred(19, 18, "enabled", "must be true or false (got 1)"),
            ),
            (
                "        status: paused\n",
                _cred(19, 17, "status", 'must be one of allowed, blocked, sandbox (got "paused")'),
            ),
            (
                "        tls: ssl\n",
                _cred(19, 14, "tls", 'must be one of auto, starttls, implicit, none (got "ssl")'),
            ),
            (
                "        bcc: archive\n",
                _cred(
                    19,
                    14,
                    "bcc",
                    'must be an email address (got "archive"): '
                    "an email address must have an @-sign",
                ),
            ),
            (
                "        bounce_notifications: keep\n",
                _cred(
                    19,
                    31,
                    "bounce_notifications",
                    'must be "from", "drop" or an email address (got "keep")',
                ),
            ),
            (
                "        source_address: 203.0.113\n",
                _cred(19, 25, "source_address", 'must be an IP address (got "203.0.113")'),
            ),
            (
                '        reenabled_at: "2026-11-23T12:00:00"\n',
                _cred(
                    19,
                    23,
                    "reenabled_at",
                    "must be a timestamp with a time zone, such as 2026-11-23T12:00:00Z "
                    '(got "2026-11-23T12:00:00")',
                ),
            ),
            (
                "        rate_limit: {value: 0, period: 1 hour}\n",
                _cred(19, 29, "rate_limit.value", "must be an integer ≥ 1 (got 0)"),
            ),
            (
                "        rate_limit: {value: 5, period: 1 fortnight}\n",
                _cred(
                    19,
                    40,
                    "rate_limit.period",
                    f'unknown unit "fortnight" (got "1 fortnight"); {SYNTAX}',
                ),
            ),
            (
                "        min_interval: 90\n",
                _cred(
                    19,
                    23,
                    "min_interval",
                    f'a number needs a unit, e.g. "90 minutes" (got 90); {SYNTAX}',
                ),
            ),
            (
                "        label: [a]\n",
                _cred(19, 16, "label", "must be a non-empty string (got a list)"),
            ),
        ],
    )
    def test_bad_optional_field(self, write_config: Writer, add: str, expected: str) -> None:
        """Optional credential fields are checked as strictly as required ones."""
        assert errors_of(write_config(add=add)) == [expected]

    @pytest.mark.parametrize(
        "field",
        [
            "smtp_host",
            "smtp_port",
            "smtp_username",
            "smtp_password",
            "from_name",
            "from_email",
            "daily_limit",
        ],
    )
    def test_required_field_missing(self, write_config: Writer, field: str) -> None:
        """Each required credential field, when absent, is named at the credential's key."""
        text = "".join(
            line + "\n" for line in BASE.splitlines() if not line.strip().startswith(f"{field}:")
        )
        expected = _cred(11, 7, field, "required field is missing")
        assert errors_of(write_config(text)) == [expected]

    def test_optional_fields_accepted(self, write_config: Writer) -> None:
        """Every optional credential field loads with its value and defaults apply."""
        config = loads(
            write_config(
                add=(
                    "        label: Primary\n"
                    "        status: sandbox\n"
                    "        enabled: false\n"
                    '        rate_limit: {value: 20, period: "4 months 5:00:00"}\n'
                    "        min_interval: 90 seconds\n"
                    "        bcc: archive@example.com\n"
                    "        archive: true\n"
                    "        bounce_notifications: bounces@example.com\n"
                    "        source_address: 2001:db8::7\n"
                    "        tls: implicit\n"
                    "        reenabled_at: 2026-11-23T12:00:00Z\n"
                )
            )
        ).config
        credential = config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.label == "Primary"
        assert (credential.status, credential.enabled, credential.archive) == (
            "sandbox",
            False,
            True,
        )
        assert credential.rate_limit is not None
        assert credential.rate_limit.period.months == 4
        assert credential.rate_limit.period.seconds == 5 * 3600
        assert credential.min_interval is not None
        assert credential.min_interval.is_fixed
        assert credential.min_interval.min.seconds == 90
        assert credential.reenabled_at == datetime(2026, 11, 23, 12, tzinfo=UTC)
        assert credential.smtp_password.get_secret_value() == CANARY
        assert not credential.has_imap


class TestCrossFieldRules:
    """Rules that relate several fields of one object."""

    def test_partial_imap_names_missing_fields(self, write_config: Writer) -> None:
        """A partial IMAP set is an error naming the fields that are missing."""
        errors = errors_of(
            write_config(add="        imap_host: imap.example.com\n        imap_port: 993\n")
        )
        assert errors == [
            _cred(
                19,
                20,
                "imap_host",
                "the imap_* fields go together: all four or none; "
                "missing imap_username, imap_password",
            )
        ]

    def test_full_imap_enables_reply_detection(self, write_config: Writer) -> None:
        """All four IMAP fields make a credential one with reply detection."""
        loaded = loads(
            write_config(
                add=(
                    "        imap_host: imap.example.com\n"
                    "        imap_port: 993\n"
                    "        imap_username: user@example.com\n"
                    "        imap_password: secret\n"
                )
            )
        )
        assert loaded.summary() == "1 campaign, 1 credential (1 with reply detection)"

    def test_tls_none_refused_for_remote_host(self, write_config: Writer) -> None:
        """tls: none is refused unless the SMTP host is loopback."""
        assert errors_of(write_config(add="        tls: none\n")) == [
            _cred(
                19,
                14,
                "tls",
                "tls: none sends the password in clear; allowed only for a loopback "
                'smtp_host, not "smtp.example.com"',
            )
        ]

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
    def test_tls_none_allowed_on_loopback(self, write_config: Writer, host: str) -> None:
        """tls: none is fine for a loopback SMTP host (tests, local relays)."""
        path = write_config(
            replace=("smtp_host: smtp.example.com", f'smtp_host: "{host}"'),
            add="        tls: none\n",
        )
        assert loads(path).config.campaigns["acme-q4"].smtp_credentials["primary"].tls == "none"

    @pytest.mark.parametrize(
        ("ports", "modes", "expected"),
        [
            ((587, 143), "", ("starttls", "starttls")),
            ((465, 993), "", ("implicit", "implicit")),
            (
                (587, 993),
                "        tls: implicit\n        imap_tls: starttls\n",
                ("implicit", "starttls"),
            ),
        ],
    )
    def test_tls_auto_picks_by_port(
        self,
        write_config: Writer,
        ports: tuple[int, int],
        modes: str,
        expected: tuple[str, str],
    ) -> None:
        """auto is implicit TLS on 465 (SMTP) and 993 (IMAP), else STARTTLS; a mode set stays."""
        path = write_config(
            replace=("smtp_port: 587", f"smtp_port: {ports[0]}"),
            add="        imap_host: imap.example.com\n"
            f"        imap_port: {ports[1]}\n"
            "        imap_username: user@example.com\n"
            f"        imap_password: {CANARY}\n" + modes,
        )
        credential = loads(path).config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert (credential.smtp_tls_mode, credential.imap_tls_mode) == expected


class TestCampaignRules:
    """Campaign-level fields, the sequence, the window and the unsubscribe block."""

    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    bounce_threshold: 0\n",
                _campaign(
                    4,
                    23,
                    "bounce_threshold",
                    'must be a rate above 0 and at most 1, such as 0.05 or "5%" (got 0)',
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    bounce_threshold: 150%\n",
                _campaign(
                    4,
                    23,
                    "bounce_threshold",
                    'must be a rate above 0 and at most 1, such as 0.05 or "5%" (got "150%")',
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    bounce_min_sends: -1\n",
                _campaign(4, 23, "bounce_min_sends", "must be an integer ≥ 1 (got -1)"),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    timezone: Mars/Olympus\n",
                _campaign(
                    4,
                    15,
                    "timezone",
                    'must be an IANA time zone such as Europe/Paris or UTC (got "Mars/Olympus")',
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    account: ACME Corp\n",
                _campaign(
                    4,
                    14,
                    "account",
                    'invalid id "ACME Corp": use 1 to 63 lowercase letters, digits and dashes, '
                    "starting with a letter or digit",
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    send_window: {days: [mon, someday]}\n",
                _campaign(
                    4,
                    31,
                    "send_window.days.1",
                    'must be one of mon, tue, wed, thu, fri, sat, sun (got "someday")',
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    send_window: {days: [mon, mon]}\n",
                _campaign(4, 25, "send_window.days", "lists a day twice"),
            ),
            (
                "    name: ACME Q4 outreach\n",
                '    name: ACME Q4 outreach\n    send_window: {start: "17:00", end: "09:00"}\n',
                _campaign(
                    4,
                    40,
                    "send_window.end",
                    "end 09:00 must be after start 17:00 (windows do not wrap past midnight)",
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                '    name: ACME Q4 outreach\n    send_window: {start: "25:00"}\n',
                _campaign(
                    4,
                    26,
                    "send_window.start",
                    'must be a time of day "HH:MM" from "00:00" to "24:00" (got "25:00")',
                ),
            ),
            (
                "    name: ACME Q4 outreach\n",
                "    name: ACME Q4 outreach\n    bounce_window: 7\n",
                _campaign(
                    4,
                    20,
                    "bounce_window",
                    f'a number needs a unit, e.g. "7 minutes" (got 7); {SYNTAX}',
                ),
            ),
        ],
    )
    def test_bad_campaign_field(
        self, write_config: Writer, old: str, new: str, expected: str
    ) -> None:
        """A wrong campaign field is reported at its value."""
        assert errors_of(write_config(replace=(old, new))) == [expected]

    def test_threshold_forms(self, write_config: Writer) -> None:
        """bounce_threshold takes "5%", 0.05 or 1 (100%)."""
        for text, value in (("5%", 0.05), ("0.05", 0.05), ("1", 1.0), ("2.5%", 0.025)):
            path = write_config(
                replace=(
                    "    name: ACME Q4 outreach\n",
                    f"    name: x\n    bounce_threshold: {text}\n",
                )
            )
            assert loads(path).config.campaigns["acme-q4"].bounce_threshold == pytest.approx(value)

    def test_window_and_defaults(self, write_config: Writer) -> None:
        """A window in local time loads; absent fields take their documented defaults."""
        path = write_config(
            replace=(
                "    name: ACME Q4 outreach\n",
                "    name: x\n    timezone: America/New_York\n"
                '    send_window: {days: [mon, fri], start: "9:00", end: "17:30"}\n',
            )
        )
        campaign = loads(path).config.campaigns["acme-q4"]
        assert campaign.send_window is not None
        assert (campaign.send_window.start_minute, campaign.send_window.end_minute) == (540, 1050)
        assert campaign.send_window.days == ("mon", "fri")
        assert (campaign.account, campaign.bounce_min_sends) == ("default", 20)
        assert str(campaign.bounce_window) == "7 days"

    def test_empty_sequence(self, write_config: Writer) -> None:
        """A campaign needs at least one step."""
        text = (
            "campaigns:\n  acme-q4:\n    name: x\n    leads: leads.csv\n    sequence: []\n"
            "    smtp_credentials:\n      primary: {smtp_host: a.example, smtp_port: 25,"
            " smtp_username: u, smtp_password: p, from_name: A, from_email: a@a.example,"
            " daily_limit: 1}\n"
        )
        assert errors_of(write_config(text)) == [_campaign(5, 15, "sequence", "must not be empty")]

    def test_no_credentials(self, write_config: Writer) -> None:
        """A campaign needs at least one credential."""
        text = BASE.split("    smtp_credentials:")[0]
        errors = errors_of(write_config(text + "    smtp_credentials: {}\n"))
        assert errors == [_campaign(10, 23, "smtp_credentials", "must not be empty")]

    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (
                '      - subject: "Quick question, {{ first_name }}"\n',
                "      - delay: 1 day\n",
                _campaign(6, 9, "sequence.0", "step 1 needs a subject"),
            ),
            (
                '      - subject: "Quick question, {{ first_name }}"\n',
                '      - subject: "Hi"\n        delay: 1 day\n',
                _campaign(
                    7,
                    16,
                    "sequence.0.delay",
                    "step 1 is sent to new leads at once; remove its delay",
                ),
            ),
            (
                "      - delay: 3 days\n",
                "      - subject: Again\n",
                _campaign(8, 9, "sequence.1", 'step 2 needs a delay (e.g. "3 days") after step 1'),
            ),
            (
                '        body: "Following up"\n',
                '        body: "Following up"\n        body_file: step2.txt\n',
                _campaign(9, 15, "sequence.1.body", "give exactly one of body or body_file"),
            ),
            (
                '        body: "Following up"\n',
                "",
                _campaign(8, 9, "sequence.1.body", "give exactly one of body or body_file"),
            ),
            (
                "      - delay: 3 days\n",
                "      - delay: 3 fortnights\n",
                _campaign(
                    8,
                    16,
                    "sequence.1.delay",
                    f'unknown unit "fortnights" (got "3 fortnights"); {SYNTAX}',
                ),
            ),
            (
                '      - subject: "Quick question, {{ first_name }}"\n',
                '      - subject: "Hi\\r\\nBcc: x@example.com"\n',
                _campaign(
                    6,
                    18,
                    "sequence.0.subject",
                    'must be a single line (got "Hi\\r\\nBcc: x@example.com")',
                ),
            ),
        ],
    )
    def test_sequence_rules(self, write_config: Writer, old: str, new: str, expected: str) -> None:
        """Step 1 has a subject and no delay, later steps a delay, each step one body."""
        assert errors_of(write_config(replace=(old, new))) == [expected]

    def test_follow_up_inherits_thread(self, write_config: Writer) -> None:
        """A follow-up without a subject loads (it is sent as Re: step 1)."""
        sequence = loads(write_config()).config.campaigns["acme-q4"].sequence
        assert sequence[1].subject is None
        assert sequence[1].delay is not None
        assert str(sequence[1].delay) == "3 days"

    @pytest.mark.parametrize(
        ("block", "expected"),
        [
            (
                '    unsubscribe: {footer_text: "Bye %%UNSUBSCRIBE%%"}\n',
                _campaign(
                    4,
                    32,
                    "unsubscribe.footer_text",
                    "uses %%UNSUBSCRIBE%% but there is no unsubscribe URL: set "
                    "unsubscribe.url, or configure http for the one-click link",
                ),
            ),
            (
                '    unsubscribe: {url: "https://x.example/u", footer_html: "<a>%%UNSUB%%</a>"}\n',
                _campaign(
                    4,
                    60,
                    "unsubscribe.footer_html",
                    "unknown placeholder %%UNSUB%%; use %%UNSUBSCRIBE%% or %%EMAIL%%",
                ),
            ),
            (
                '    unsubscribe: {url: "mailto:x@example.com"}\n',
                _campaign(
                    4,
                    24,
                    "unsubscribe.url",
                    'must be an http or https URL (got "mailto:x@example.com")',
                ),
            ),
        ],
    )
    def test_unsubscribe_rules(self, write_config: Writer, block: str, expected: str) -> None:
        """Footers use only known placeholders, and %%UNSUBSCRIBE%% needs a URL."""
        path = write_config(replace=("    name: ACME Q4 outreach\n", "    name: x\n" + block))
        assert errors_of(path) == [expected]


class TestIds:
    """Campaign and credential ids: [a-z0-9][a-z0-9-]{0,62}."""

    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (
                "  acme-q4:",
                "  ACME_Q4:",
                'c.yaml:2:3: campaigns.ACME_Q4: invalid id "ACME_Q4": use 1 to 63 lowercase '
                "letters, digits and dashes, starting with a letter or digit",
            ),
            (
                "      primary:",
                "      -primary:",
                "c.yaml:11:7: campaigns.acme-q4.smtp_credentials.-primary: invalid id "
                '"-primary": use 1 to 63 lowercase letters, digits and dashes, starting with '
                "a letter or digit",
            ),
            (
                "  acme-q4:",
                "  " + "a" * 64 + ":",
                f'c.yaml:2:3: campaigns.{"a" * 64}: invalid id "{"a" * 57}…": use 1 to 63 '
                "lowercase letters, digits and dashes, starting with a letter or digit",
            ),
        ],
    )
    def test_bad_id(self, write_config: Writer, old: str, new: str, expected: str) -> None:
        """An id outside the pattern is reported at the key."""
        assert errors_of(write_config(replace=(old, new))) == [expected]

    def test_longest_id_accepted(self, write_config: Writer) -> None:
        """A 63-character id is the longest allowed."""
        path = write_config(replace=("  acme-q4:", "  " + "a" * 63 + ":"))
        assert list(loads(path).config.campaigns) == ["a" * 63]


class TestUnknownFields:
    """Unknown keys are errors, with a suggestion when one is close."""

    def test_typo_gets_suggestion(self, write_config: Writer) -> None:
        """A misspelt field names the field meant."""
        assert errors_of(write_config(add="        dailly_limit: 3\n")) == [
            _cred(19, 9, "dailly_limit", "unknown field; did you mean daily_limit?")
        ]

    def test_unknown_without_suggestion(self, write_config: Writer) -> None:
        """A field nothing like a known one is simply unknown."""
        assert errors_of(write_config(add="        colour: blue\n")) == [
            _cred(19, 9, "colour", "unknown field")
        ]

    def test_top_level_typo(self, write_config: Writer) -> None:
        """A misspelt top-level key is found too."""
        path = write_config(replace=("campaigns:", "campaign:"))
        assert errors_of(path) == ["c.yaml:1:1: campaign: unknown field; did you mean campaigns?"]


class TestSecrets:
    """Secret fields are SecretStr and never shown."""

    def test_secret_fields_are_secretstr(self, write_config: Writer) -> None:
        """All four secret fields hold SecretStr values."""
        credential = (
            loads(
                write_config(
                    add=(
                        "        imap_host: imap.example.com\n"
                        "        imap_port: 993\n"
                        f"        imap_username: {CANARY}\n"
                        f"        imap_password: {CANARY}\n"
                    )
                )
            )
            .config.campaigns["acme-q4"]
            .smtp_credentials["primary"]
        )
        for name in ("smtp_username", "smtp_password", "imap_username", "imap_password"):
            assert isinstance(getattr(credential, name), SecretStr), name

    def test_repr_and_dump_redact(self, write_config: Writer) -> None:
        """repr, str and JSON dumps of the loaded config never contain the secret."""
        loaded = loads(write_config(add="        reenabled_at: 2026-11-23T12:00:00Z\n"))
        dumped = loaded.config.model_dump_json()
        shown = repr(loaded) + str(loaded.config) + dumped + repr(loaded.config.model_dump())
        assert CANARY not in shown
        assert '"smtp_password":"**********"' in dumped
        assert '"reenabled_at":"2026-11-23T12:00:00Z"' in dumped
        assert '"delay":"3 days"' in dumped

    def test_bad_secret_value_not_echoed(self, write_config: Writer) -> None:
        """An invalid secret is reported by kind, never by value."""
        path = write_config(replace=(f"smtp_password: {CANARY}", f"smtp_password: [{CANARY}]"))
        assert errors_of(path) == [
            _cred(
                15, 24, "smtp_password", "must be a non-empty string (got a list; value not shown)"
            )
        ]


_IMAP = (
    "        imap_host: imap.example.com\n"
    "        imap_port: 993\n"
    "        imap_username: user@example.com\n"
    "        imap_password: secret\n"
)


class TestInboxFields:
    """The inbox settings: folders, IDLE, TLS, poll intervals, thresholds."""

    def test_defaults_and_overrides(self, write_config: Writer) -> None:
        """INBOX every 5 minutes by default; a credential's interval wins over its campaign's."""
        path = write_config(
            replace=(
                "    name: ACME Q4 outreach\n",
                "    name: x\n    imap_poll_interval: 2 minutes\n",
            ),
            add=_IMAP
            + "        imap_folders: [INBOX, Junk]\n        imap_poll_interval: 30 seconds\n",
        )
        campaign = loads(path).config.campaigns["acme-q4"]
        credential = campaign.smtp_credentials["primary"]
        assert credential.imap_folders == ("INBOX", "Junk")
        assert credential.poll_interval(campaign).approx_seconds == 30
        assert (credential.imap_tls, credential.imap_idle) == ("auto", False)
        assert (campaign.stop_on_auto_reply, campaign.block_threshold) == (False, None)
        default = loads(write_config(add=_IMAP)).config.campaigns["acme-q4"]
        assert default.smtp_credentials["primary"].poll_interval(default).approx_seconds == 300
        assert default.smtp_credentials["primary"].imap_folders == ("INBOX",)

    @pytest.mark.parametrize(
        ("add", "expected"),
        [
            (
                "        imap_folders: [INBOX]\n",
                _cred(
                    19,
                    23,
                    "imap_folders",
                    "imap_folders needs the four imap_* fields (imap_host, imap_port, "
                    "imap_username, imap_password)",
                ),
            ),
            (
                _IMAP + "        imap_poll_interval: 5 seconds\n",
                _cred(
                    23, 29, "imap_poll_interval", 'must be at least 10 seconds (got "5 seconds")'
                ),
            ),
            (
                _IMAP + "        imap_folders: []\n",
                _cred(
                    23,
                    23,
                    "imap_folders",
                    "must be a non-empty list of folder names such as [INBOX, Junk] (got a list)",
                ),
            ),
            (
                _IMAP + "        imap_folders: [INBOX, INBOX]\n",
                _cred(23, 23, "imap_folders", "lists a folder twice"),
            ),
            (
                _IMAP + '        imap_folders: ["a\\"b"]\n',
                _cred(
                    23,
                    23,
                    "imap_folders",
                    'must be folder names without quotes or backslashes (got "a\\"b")',
                ),
            ),
            (
                _IMAP + "        imap_tls: none\n",
                _cred(
                    23,
                    19,
                    "imap_tls",
                    "imap_tls: none sends the password in clear; allowed only for a loopback "
                    'imap_host, not "imap.example.com"',
                ),
            ),
            (
                _IMAP + "        imap_idle: yes\n",
                _cred(23, 20, "imap_idle", 'must be true or false (got "yes")'),
            ),
        ],
    )
    def test_bad_inbox_field(self, write_config: Writer, add: str, expected: str) -> None:
        """A wrong inbox setting is reported at its value."""
        assert errors_of(write_config(add=add)) == [expected]

    def test_block_threshold_and_auto_reply(self, write_config: Writer) -> None:
        """block_threshold takes a rate like bounce_threshold; stop_on_auto_reply a flag."""
        path = write_config(
            replace=(
                "    name: ACME Q4 outreach\n",
                "    name: x\n    block_threshold: 2%\n    stop_on_auto_reply: true\n",
            )
        )
        campaign = loads(path).config.campaigns["acme-q4"]
        assert campaign.block_threshold == pytest.approx(0.02)
        assert campaign.stop_on_auto_reply is True


class TestCountedReasons:
    """bounce_reasons and block_reasons: words of the reason vocabulary, each in one list."""

    def _with(self, write_config: Writer, lines: str) -> Path:
        return write_config(replace=("    name: ACME Q4 outreach\n", f"    name: x\n{lines}"))

    def test_lists_replace_the_defaults(self, write_config: Writer) -> None:
        """A named list is what counts; the other list is its class's reasons less those."""
        path = self._with(write_config, "    bounce_reasons: [userunknown, spamdetected]\n")
        counted = loads(path).config.campaigns["acme-q4"].counted_reasons
        assert counted.bounces == ("userunknown", "spamdetected")
        assert "spamdetected" not in counted.blocks
        assert "blocked" in counted.blocks
        assert not counted.bounces_are_default
        assert not counted.blocks_are_default

    def test_defaults_count_every_hard_bounce_and_every_block(self, write_config: Writer) -> None:
        """Without the lists, the hard-class reasons (and the three that follow the code)
        count toward the bounce rate, the block-class ones toward the block rate."""
        campaign = loads(self._with(write_config, "")).config.campaigns["acme-q4"]
        counted = campaign.counted_reasons
        assert (campaign.bounce_reasons, campaign.block_reasons) == (None, None)
        assert counted.bounces_are_default
        assert counted.blocks_are_default
        assert set(counted.bounces) == {
            "userunknown",
            "hostunknown",
            "hasmoved",
            "suspend",
            "notaccept",
            "onhold",
            "undefined",
        }

    @pytest.mark.parametrize(
        ("lines", "expected"),
        [
            (
                "    bounce_reasons: [userunknown, usrunknown]\n",
                _campaign(
                    4,
                    35,
                    "bounce_reasons.1",
                    'unknown reason "usrunknown"; did you mean userunknown?',
                ),
            ),
            (
                "    block_reasons: [vacation]\n",
                _campaign(
                    4,
                    21,
                    "block_reasons.0",
                    "vacation is not a reason a message fails for (vacation, feedback and "
                    "delivered are never bounces): use a reason such as userunknown or "
                    "spamdetected",
                ),
            ),
            (
                "    bounce_reasons: userunknown\n",
                _campaign(
                    4,
                    21,
                    "bounce_reasons",
                    "must be a list of reasons such as [userunknown, hostunknown] "
                    '(got "userunknown")',
                ),
            ),
            (
                "    bounce_reasons: []\n",
                _campaign(
                    4,
                    21,
                    "bounce_reasons",
                    "must name at least one reason: a list of reasons such as "
                    "[userunknown, hostunknown], or leave it out",
                ),
            ),
            (
                "    bounce_reasons: [suspend, suspend]\n",
                _campaign(4, 31, "bounce_reasons.1", "lists suspend twice"),
            ),
            (
                "    bounce_reasons: [userunknown, spamdetected]\n"
                "    block_reasons: [blocked, spamdetected]\n",
                _campaign(
                    5,
                    30,
                    "block_reasons.1",
                    "lists spamdetected, which bounce_reasons lists too: a reason counts "
                    "toward one rate only; remove it from one of the lists",
                ),
            ),
        ],
    )
    def test_bad_list(self, write_config: Writer, lines: str, expected: str) -> None:
        """A wrong reason list is reported at the word, with the reason meant if one is close."""
        assert errors_of(self._with(write_config, lines)) == [expected]

"""verp_domain: an optional domain on a credential, kept in its normal form."""

from __future__ import annotations

import pytest

from tests.configs import Writer, errors_of, loads

FIELD = "c.yaml:19:22: campaigns.acme-q4.smtp_credentials.primary.verp_domain: "


class TestVerpDomain:
    """The domain of a credential's per-send envelope sender."""

    def test_absent_is_off(self, write_config: Writer) -> None:
        """Without the field, VERP is off (the field is None)."""
        credential = loads(write_config()).config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.verp_domain is None

    @pytest.mark.parametrize(
        ("value", "kept"),
        [("Bounces.Example.COM", "bounces.example.com"), ("bücher.de", "xn--bcher-kva.de")],
    )
    def test_normal_form(self, write_config: Writer, value: str, kept: str) -> None:
        """A domain is kept lower-case, in A-labels, as the envelope sender needs it."""
        path = write_config(add=f"        verp_domain: {value}\n")
        credential = loads(path).config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.verp_domain == kept

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (
                "bounces@example.com",
                'must be a domain such as bounces.example.com (got "bounces@example.com"): '
                "a domain has no @",
            ),
            (
                "bounces..example.com",
                'must be a domain such as bounces.example.com (got "bounces..example.com"): '
                "a domain cannot have two periods in a row",
            ),
            ("42", "must be a non-empty string (got 42)"),
        ],
    )
    def test_errors_point_at_the_value(
        self, write_config: Writer, value: str, message: str
    ) -> None:
        """Anything but a domain is an error at its place, saying why."""
        path = write_config(add=f"        verp_domain: {value}\n")
        assert errors_of(path) == [FIELD + message]

"""dkim_selectors: each selector a DNS name, the list non-empty and without repeats."""

from __future__ import annotations

import pytest

from tests.configs import Writer, errors_of, loads

FIELD = "c.yaml:19:{col}: campaigns.acme-q4.smtp_credentials.primary.dkim_selectors{at}: {message}"
NOT_A_SELECTOR = (
    "must be a DKIM selector: DNS labels of letters, digits and hyphens separated by dots, "
    "such as google, selector1 or s2048.mail (got {got})"
)


class TestDkimSelectors:
    """The optional dkim_selectors list of a credential."""

    def test_absent_is_none(self, write_config: Writer) -> None:
        """Without the field, doctor tries common selectors (the field is None)."""
        credential = loads(write_config()).config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.dkim_selectors is None

    def test_valid_list_kept_in_order(self, write_config: Writer) -> None:
        """Selectors are kept as written, dotted ones included."""
        path = write_config(add="        dkim_selectors: [google, s2048.mail, k-1]\n")
        credential = loads(path).config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.dkim_selectors == ("google", "s2048.mail", "k-1")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                "[s1, bad_one]",
                FIELD.format(col=30, at=".1", message=NOT_A_SELECTOR.format(got='"bad_one"')),
            ),
            ("[-s1]", FIELD.format(col=26, at=".0", message=NOT_A_SELECTOR.format(got='"-s1"'))),
            ("[s1., x]", FIELD.format(col=26, at=".0", message=NOT_A_SELECTOR.format(got='"s1."'))),
            (
                "[1]",
                FIELD.format(
                    col=26,
                    at=".0",
                    message="must be a DKIM selector, a DNS name such as google, selector1 or "
                    "s2048.mail (got 1)",
                ),
            ),
            ("s1", FIELD.format(col=25, at="", message='must be a list (got "s1")')),
            ("[]", FIELD.format(col=25, at="", message="must not be empty")),
            ("[s1, S1]", FIELD.format(col=30, at=".1", message="lists the selector S1 twice")),
        ],
    )
    def test_errors_point_at_the_value(
        self, write_config: Writer, value: str, expected: str
    ) -> None:
        """A bad selector, a scalar, an empty list or a repeat is an error at its place."""
        path = write_config(add=f"        dkim_selectors: {value}\n")
        assert errors_of(path) == [expected]

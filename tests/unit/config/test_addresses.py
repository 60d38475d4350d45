"""The one address check: what it refuses, the one spelling it gives, and from_email."""

from __future__ import annotations

import email_validator
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailopsd.config import addresses
from tests.configs import Writer, errors_of, loads

FULL_WIDTH = "".join(chr(ord(letter) + 0xFEE0) for letter in "example")
_ATOMS = st.lists(st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", fullmatch=True), min_size=1)
_LABELS = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True), min_size=1)
_TLDS = st.from_regex(r"[a-z0-9-]{0,4}[a-z]", fullmatch=True)
# Address-shaped texts: mostly well formed, near the edges of the fast check's rules.
ADDRESSES = st.one_of(
    st.builds(
        lambda atoms, labels, tld: ".".join(atoms) + "@" + ".".join([*labels, tld]),
        _ATOMS,
        _LABELS,
        _TLDS,
    ),
    st.from_regex(addresses._PLAIN, fullmatch=True),
)


class TestLeadKey:
    """lead_key: the check of a lead's address and its key."""

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("john@example..com", "cannot have two periods in a row"),
            ("grp:x@example.com", "invalid characters before the @-sign: ':'"),
            ("a(b)@example.com", "invalid characters before the @-sign: '(', ')'"),
            ("x" * 300 + "@example.com", "too long"),
            ("x" * 65 + "@example.com", "too long before the @-sign (1 character too many)"),
            ("a\x00b@example.com", "U+0000"),
            ("a\\b@example.com", 'invalid characters before the @-sign: "\\"'),
            ('"a b"@example.com', "Quoting the part before the @-sign is not allowed"),
            ("Ada <ada@example.com>", "display name and angle brackets"),
            ("a@[127.0.0.1]", "bracketed IP address"),
            ("jörg@example.com", "Internationalized characters before the @-sign"),
            (f"\uff41@{FULL_WIDTH}.com", "Internationalized characters before the @-sign"),
            ("a@x.test", "special-use or reserved name"),
            ("a@" + "b" * 64 + ".com", "periods cannot be separated by so many characters"),
        ],
    )
    def test_malformed_address_is_refused_with_the_reason(self, text: str, reason: str) -> None:
        """Each malformed address is refused, and the message says what is wrong with it."""
        with pytest.raises(addresses.AddressError) as caught:
            addresses.lead_key(text)
        assert reason in str(caught.value)

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("a@bücher.de", "a@xn--bcher-kva.de"),
            ("a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
            ("A@XN--BCHER-KVA.DE", "a@xn--bcher-kva.de"),
            ("a@bü\u00adcher.de", "a@xn--bcher-kva.de"),
            ("a@BÜCHER.DE", "a@xn--bcher-kva.de"),
            (f"a@{FULL_WIDTH}.com", "a@example.com"),
            ("a@ex\u200bample.com", "a@example.com"),
            ("Ada.Lovelace+x@Example.COM", "ada.lovelace+x@example.com"),
            ("a@faß.de", "a@xn--fa-hia.de"),
        ],
    )
    def test_every_spelling_of_a_mailbox_has_one_key(self, text: str, key: str) -> None:
        """The key is the wire form lower-cased: A-labels after UTS-46 mapping."""
        assert addresses.lead_key(text) == key

    @settings(max_examples=300, deadline=None)
    @given(ADDRESSES, st.booleans())
    @example("a@ab--c.com", False)
    @example("a@x.sub.local", False)
    @example(".a@example.com", False)
    @example("a@b-.com", False)
    @example("a@" + "b" * 64 + ".com", False)
    @example("a.b+c@example.com", True)
    def test_the_fast_check_agrees_with_email_validator(self, text: str, upper: bool) -> None:
        """Where the fast check decides, email-validator gives the same verdict and key."""
        text = text.upper() if upper else text
        fast = addresses._plain_key(text)
        try:
            slow = email_validator.validate_email(
                text, check_deliverability=False, allow_smtputf8=False, strict=True
            ).ascii_email
        except email_validator.EmailNotValidError:
            assert fast is None
        else:
            assert fast in (None, slow.lower())
        if fast is not None:
            assert addresses.wire_form(text) == slow

    def test_an_address_from_outside_finds_its_key_even_when_malformed(self) -> None:
        """key_of gives a valid address its key and only lower-cases any other text."""
        assert addresses.key_of(" A@Bücher.de ") == "a@xn--bcher-kva.de"
        assert addresses.key_of("Not An@Address") == "not an@address"


class TestConfigAddresses:
    """from_email and the other addresses of the configuration use the same check."""

    def test_from_email_is_kept_in_its_wire_form(self, write_config: Writer) -> None:
        """An IDN domain in from_email is kept in A-labels; its local part keeps its case."""
        loaded = loads(
            write_config(replace=("from_email: ada@example.com", "from_email: Ada@Bücher.de"))
        )
        credential = loaded.config.campaigns["acme-q4"].smtp_credentials["primary"]
        assert credential.from_email == "Ada@xn--bcher-kva.de"

    def test_malformed_from_email_is_located(self, write_config: Writer) -> None:
        """A from_email a lead would be refused for is a located config error."""
        path = write_config(replace=("from_email: ada@example.com", 'from_email: "a(b)@x.com"'))
        assert errors_of(path) == [
            "c.yaml:17:21: campaigns.acme-q4.smtp_credentials.primary.from_email: must be an "
            'email address (got "a(b)@x.com"): the email address contains invalid characters '
            "before the @-sign: '(', ')'"
        ]

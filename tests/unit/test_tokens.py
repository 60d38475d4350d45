"""Link tokens: signed, bound to purpose, campaign and lead, and never raising on bad input."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd import tokens
from mailopsd.tokens import Claims

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TestSignAndVerify:
    """A token verifies for its own purpose and key only, and says what was signed."""

    @pytest.mark.parametrize("purpose", ["u", "o"])
    def test_round_trip(self, purpose: str) -> None:
        """Unsubscribe and open tokens carry the campaign and the lower-cased address."""
        token = tokens.sign(KEY, purpose, "acme-q4", "Jo@Example.NET")
        assert tokens.verify(KEY, purpose, token) == Claims("acme-q4", "jo@example.net")

    def test_click_carries_the_url(self) -> None:
        """A click token carries the original URL exactly, query and fragment included."""
        url = "https://example.com/a?b=1&c=%C3%A9#top"
        token = tokens.sign(KEY, "c", "acme-q4", "jo@example.net", url)
        assert tokens.verify(KEY, "c", token) == Claims("acme-q4", "jo@example.net", url)

    def test_token_is_url_safe_and_short(self) -> None:
        """Tokens use only URL-safe characters, without padding, and stay short."""
        token = tokens.sign(KEY, "u", "acme-q4", "jo@example.net")
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(token) < 70

    @pytest.mark.parametrize(("made_for", "used_for"), [("u", "o"), ("o", "u"), ("u", "c")])
    def test_other_purpose_refused(self, made_for: str, used_for: str) -> None:
        """A token made for one kind of link is refused on another."""
        token = tokens.sign(KEY, made_for, "acme-q4", "jo@example.net")
        assert tokens.verify(KEY, used_for, token) is None

    def test_other_key_refused(self) -> None:
        """A token made with another signing key is refused."""
        token = tokens.sign(OTHER_KEY, "u", "acme-q4", "jo@example.net")
        assert tokens.verify(KEY, "u", token) is None

    def test_differs_per_lead_and_campaign(self) -> None:
        """Each lead and each campaign gets its own token; the same input, the same one."""
        made = {
            tokens.sign(KEY, "u", campaign, email)
            for campaign in ("a", "b")
            for email in ("jo@example.net", "al@example.net")
        }
        assert len(made) == 4
        assert tokens.sign(KEY, "u", "a", "jo@example.net") in made

    def test_cannot_be_turned_into_another_leads(self) -> None:
        """Changing the address inside a token (same length) breaks its MAC."""
        token = tokens.sign(KEY, "u", "acme-q4", "jo@example.net")
        raw = _raw(token)
        forged = raw.replace(b"jo@example.net", b"al@example.net")
        assert forged != raw
        assert tokens.verify(KEY, "u", _encode(forged)) is None

    def test_click_url_cannot_be_changed(self) -> None:
        """The redirect target is signed: another URL in the same token is refused."""
        token = tokens.sign(KEY, "c", "acme-q4", "jo@example.net", "https://good.example/")
        forged = _raw(token).replace(b"good", b"evil")
        assert tokens.verify(KEY, "c", _encode(forged)) is None

    def test_mac_key_is_derived_from_the_signing_key(self) -> None:
        """The MAC is made with a key derived from the signing key, never the key itself."""
        token = tokens.sign(KEY, "u", "a", "jo@example.net")
        raw = _raw(token)
        payload, mac = raw[:-16], raw[-16:]
        message = b"\x01u" + payload
        derived = hmac.new(KEY, b"mailopsd link tokens v1", hashlib.sha256).digest()
        assert hmac.new(derived, message, hashlib.sha256).digest()[:16] == mac
        assert hmac.new(KEY, message, hashlib.sha256).digest()[:16] != mac

    def test_sign_refuses_inconsistent_arguments(self) -> None:
        """A click needs its URL, other links take none, and purposes are u, o and c."""
        with pytest.raises(ValueError, match="click token needs the url"):
            tokens.sign(KEY, "c", "a", "jo@example.net")
        with pytest.raises(ValueError, match="click token needs the url"):
            tokens.sign(KEY, "u", "a", "jo@example.net", "https://x.example/")
        with pytest.raises(ValueError, match="unknown token purpose"):
            tokens.sign(KEY, "x", "a", "jo@example.net")


class TestMalformed:
    """Anything that is not a token made here is None, never an exception."""

    @pytest.mark.parametrize(
        "token",
        [
            "",
            "a",
            "!!!!",
            "AAAA",
            "AQ==",
            "AQ",
            "x" * 9000,
            "abc def",
            "é",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    )
    def test_garbage(self, token: str) -> None:
        """Short, padded, non-alphabet, huge and empty inputs are refused."""
        assert tokens.verify(KEY, "u", token) is None

    def test_non_canonical_base64_refused(self) -> None:
        """The same bytes written with other trailing bits are not a second valid token."""
        token = tokens.sign(KEY, "u", "acme-q4", "jo@example.net")
        assert len(token) % 4 != 0  # the last character has unused bits
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
        assert _raw(twin) == _raw(token)
        assert tokens.verify(KEY, "u", twin) is None

    def test_unknown_purpose_and_non_text(self) -> None:
        """An unknown purpose, or a token that is not text, is refused."""
        token = tokens.sign(KEY, "u", "a", "jo@example.net")
        assert tokens.verify(KEY, "x", token) is None
        assert tokens.verify(KEY, "u", None) is None  # type: ignore[arg-type]
        assert tokens.verify(KEY, "u", b"abc") is None  # type: ignore[arg-type]

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=120), st.sampled_from(["u", "o", "c", "", "uu"]))
    def test_never_raises(self, token: str, purpose: str) -> None:
        """Random text never verifies and never raises."""
        assert tokens.verify(KEY, purpose, token) is None

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=120))
    def test_random_bytes_never_raise(self, raw: bytes) -> None:
        """Random well-formed base64 never verifies and never raises."""
        assert tokens.verify(KEY, "c", _encode(raw)) is None


class TestProperties:
    """Whatever is signed comes back."""

    @settings(max_examples=200, deadline=None)
    @given(st.text(min_size=1, max_size=63), st.text(max_size=300), st.text(min_size=1))
    def test_round_trip_any_text(self, campaign: str, email: str, url: str) -> None:
        """Any campaign, address and URL text survives signing (the address lower-cased)."""
        for purpose, target in (("u", None), ("o", None), ("c", url)):
            token = tokens.sign(KEY, purpose, campaign, email, target)
            assert tokens.verify(KEY, purpose, token) == Claims(campaign, email.lower(), target)


class TestLinks:
    """The paths and URLs of the three kinds of link."""

    def test_paths(self) -> None:
        """Unsubscribe and click paths are /u/ and /c/; the open image ends in .gif."""
        assert tokens.link_path("u", "T") == "/u/T"
        assert tokens.link_path("o", "T") == "/o/T.gif"
        assert tokens.link_path("c", "T") == "/c/T"
        with pytest.raises(ValueError, match="unknown token purpose"):
            tokens.link_path("x", "T")

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/u/abc-_9", ("u", "abc-_9")),
            ("/o/abc.gif", ("o", "abc")),
            ("/c/abc", ("c", "abc")),
            ("/o/abc", None),
            ("/u/abc.gif", None),
            ("/c/", None),
            ("/u/a/b", None),
            ("/x/abc", None),
            ("u/abc", None),
            ("/u/abc?x=1", None),
        ],
    )
    def test_parse_path(self, path: str, expected: tuple[str, str] | None) -> None:
        """Only the paths link_path makes are recognised."""
        assert tokens.parse_link_path(path) == expected

    def test_link_url_verifies(self) -> None:
        """A link URL is the base URL, the path, and a token that verifies."""
        url = tokens.link_url(
            "https://mail.example.com",
            KEY,
            purpose="o",
            campaign_id="acme-q4",
            email="jo@example.net",
        )
        assert url.startswith("https://mail.example.com/o/")
        parsed = tokens.parse_link_path(url.removeprefix("https://mail.example.com"))
        assert parsed is not None
        assert tokens.verify(KEY, parsed[0], parsed[1]) == Claims("acme-q4", "jo@example.net")

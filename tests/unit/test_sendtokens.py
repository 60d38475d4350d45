"""Send tokens (VERP): bound to one send, read in any case, found in reports, never raising."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd import sendtokens

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
MID = "<0123abcd@sender.example.com>"


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


class TestMakeAndVerify:
    """A token names its send and verifies for that send's Message-ID and key only."""

    @pytest.mark.parametrize("send_id", [1, 31, 32, 12345, 2**40 + 7, 2**64 - 1])
    def test_round_trip(self, send_id: int) -> None:
        """The token gives back its send id."""
        token = sendtokens.make(KEY, send_id, MID)
        assert sendtokens.parse(token) == send_id
        assert sendtokens.verify(KEY, token, MID) == send_id

    def test_shape(self) -> None:
        """Lowercase base32, short enough for bounces+<token> to be a valid local part."""
        for send_id in (1, 2**31, 2**64 - 1):
            token = sendtokens.make(KEY, send_id, MID)
            assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
            assert 17 <= len(token) <= 29
            address = sendtokens.envelope_sender(token, "bounces.example.com")
            assert len(address.split("@")[0]) <= 64

    def test_case_folded_token_verifies(self) -> None:
        """A server that changes the local part's case does not break the token."""
        token = sendtokens.make(KEY, 4242, MID)
        assert sendtokens.verify(KEY, token.upper(), MID) == 4242
        assert sendtokens.verify(KEY, token.title(), MID) == 4242

    def test_tampered_mac_refused(self) -> None:
        """Changing any character of the MAC makes the token fail."""
        token = sendtokens.make(KEY, 4242, MID)
        for place in range(len(token) - 16, len(token)):
            changed = "b" if token[place] != "b" else "c"
            forged = token[:place] + changed + token[place + 1 :]
            assert sendtokens.verify(KEY, forged, MID) is None

    def test_other_send_id_refused(self) -> None:
        """A token's MAC cannot be moved onto another send id."""
        token = sendtokens.make(KEY, 4242, MID)
        other = sendtokens.make(KEY, 4243, MID)
        assert sendtokens.verify(KEY, other[:-16] + token[-16:], MID) is None

    def test_other_key_or_message_refused(self) -> None:
        """Another key, or another Message-ID under the same id (a new ledger), fails."""
        token = sendtokens.make(KEY, 7, MID)
        assert sendtokens.verify(OTHER_KEY, token, MID) is None
        assert sendtokens.verify(KEY, token, "<other@sender.example.com>") is None

    @pytest.mark.parametrize(
        "text",
        ["", "abc", "a" * 17, "b" * 30, "bbbbbbbbbbbbbbbbb!", "bbbbbbbbbbbbbbbb1", "é" * 20],
    )
    def test_malformed_is_none(self, text: str) -> None:
        """Too short, too long, a leading zero digit, or foreign characters: no send id."""
        assert sendtokens.parse(text) is None
        assert sendtokens.verify(KEY, text, MID) is None

    def test_send_id_must_be_positive(self) -> None:
        """Send ids start at 1 and fit 64 bits."""
        for send_id in (0, -1, 2**64):
            with pytest.raises(ValueError, match="positive 64-bit"):
                sendtokens.make(KEY, send_id, MID)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=60))
    def test_any_text_is_handled(self, text: str) -> None:
        """Whatever arrives, parse and verify answer without raising (and forge nothing)."""
        sendtokens.parse(text)
        assert sendtokens.verify(KEY, text, MID) is None


class TestCandidates:
    """Where a report carries the token: its envelope fields and the returned headers."""

    token = sendtokens.make(KEY, 99, MID)

    @pytest.mark.parametrize("field", ["To", "Delivered-To", "X-Original-To", "Envelope-To"])
    def test_envelope_fields(self, field: str) -> None:
        """A report to bounces+<token>@... names the token, in whatever case it came."""
        raw = _crlf(
            f"From: MAILER-DAEMON@mx.example.net\n{field}: <BOUNCES+{self.token.upper()}"
            "@Bounces.Example.COM>\nSubject: Undelivered\n\nbody\n"
        )
        assert sendtokens.candidates(raw) == (self.token,)

    def test_folded_to(self) -> None:
        """A folded To field is read whole."""
        raw = _crlf(f"To: Someone\n <bounces+{self.token}@b.example.com>\n\n")
        assert sendtokens.candidates(raw) == (self.token,)

    def test_returned_headers(self) -> None:
        """Return-Path and X-Mailopsd-Send of the returned message count; once each."""
        other = sendtokens.make(KEY, 100, MID)
        raw = _crlf(
            "To: ada@sender.example.com\nContent-Type: multipart/report; boundary=b\n\n--b\n"
            "Content-Type: text/rfc822-headers\n\n"
            f"Return-Path: <bounces+{self.token}@b.example.com>\n"
            f"X-Mailopsd-Send: {self.token}\nX-Mailopsd-Send:\n {other}\n--b--\n"
        )
        assert sendtokens.candidates(raw) == (self.token, other)

    def test_envelope_first(self) -> None:
        """The envelope's token comes before the returned headers'."""
        other = sendtokens.make(KEY, 100, MID)
        raw = _crlf(
            f"Delivered-To: bounces+{other}@b.example.com\n\nX-Mailopsd-Send: {self.token}\n"
        )
        assert sendtokens.candidates(raw) == (other, self.token)

    def test_elsewhere_ignored(self) -> None:
        """A token in the Subject, the From, the text, or another local part is no candidate."""
        raw = _crlf(
            f"From: bounces+{self.token}@b.example.com\nSubject: bounces+{self.token}@x\n"
            f"To: notbounces+{self.token}@b.example.com\n\n"
            f"Your message from bounces+{self.token}@b.example.com failed.\n"
            f"> X-Mailopsd-Send: {self.token}\n"
        )
        assert sendtokens.candidates(raw) == ()

    def test_header_only_message(self) -> None:
        """A header block alone (the body not fetched) is read."""
        raw = _crlf(f"X-Original-To: bounces+{self.token}@b.example.com\n")
        assert sendtokens.candidates(raw) == (self.token,)

    def test_bounded_count(self) -> None:
        """At most MAX_CANDIDATES distinct tokens are kept."""
        many = "".join(f"X-Mailopsd-Send: {sendtokens.make(KEY, n, MID)}\n" for n in range(1, 50))
        assert len(sendtokens.candidates(_crlf("To: a@b\n\n" + many))) == sendtokens.MAX_CANDIDATES

    @pytest.mark.parametrize(
        "raw",
        [
            b"To: " + b"bounces+" * 200_000,
            b"To: " + b"b" * 3_000_000,
            b"\r\n\r\n" + b"X-Mailopsd-Send: " * 200_000,
            b"\n\n" + b"return-path: <bounces+" * 200_000,
            b"To: x\r\n" + b" bounces+abc\r\n" * 300_000,
            b"\n" * 1_000_000,
            bytes(range(256)) * 20_000,
        ],
    )
    def test_hostile_input_is_bounded(self, raw: bytes) -> None:
        """Huge, repetitive or binary input costs little and finds nothing."""
        started = time.monotonic()
        assert sendtokens.candidates(raw) == ()
        assert time.monotonic() - started < 2.0

    def test_past_the_scan_limit(self) -> None:
        """A token beyond the first MAX_SCAN bytes is not looked for."""
        filler = b"x" * sendtokens.MAX_SCAN
        raw = b"To: a@b\r\n\r\n" + filler + f"\r\nX-Mailopsd-Send: {self.token}\r\n".encode()
        assert sendtokens.candidates(raw) == ()

"""The password rule: zxcvbn's estimate, with random parts counted by their alphabet."""

from __future__ import annotations

import math
import random
import re
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailopsd.secrets.strength import MIN_PASSWORD_BITS, password_bits, weak_password

_RANDOM = random.Random(20240611)  # fixed: the same "random" passwords on every run
_ALNUM = string.ascii_letters + string.digits
_BASE64 = _ALNUM + "+/"
RANDOM_ALNUM_20 = "".join(_RANDOM.choice(_ALNUM) for _ in range(20))
RANDOM_BASE64_24 = "".join(_RANDOM.choice(_BASE64) for _ in range(24))
WEAK = ["password123", "Summer2024!", "qwertyuiop12", "aaaaaaaaaaaaaaaaaaaaaaaa", "", "p"]
_REASON = re.compile(
    r"about \d+ bits of estimated entropy, under 64: use a longer random password "
    r"\(e\.g\. 20 random letters and digits\)"
)
STRONG = ["xkqvbmtrwplzhfjd", RANDOM_ALNUM_20, RANDOM_BASE64_24]


class TestWeakPassword:
    @pytest.mark.parametrize("password", WEAK)
    def test_weak(self, password: str) -> None:
        """Common words, keyboard runs, dates and repeats are under the rule."""
        reason = weak_password(password)
        assert reason is not None
        assert password_bits(password) < MIN_PASSWORD_BITS

    @pytest.mark.parametrize("password", STRONG)
    def test_strong(self, password: str) -> None:
        """Random app passwords, letters and digits, and base64 tokens pass the rule."""
        assert weak_password(password) is None
        assert password_bits(password) >= MIN_PASSWORD_BITS

    def test_reason_says_the_estimate_and_what_to_do(self) -> None:
        """The reason gives the estimate (rounded down), the rule and the advice."""
        assert weak_password("Summer2024!") == (
            "about 39 bits of estimated entropy, under 64: use a longer random password "
            "(e.g. 20 random letters and digits)"
        )

    @pytest.mark.parametrize("password", [*WEAK, "zebra1", "Kx9!", "hunter2"])
    def test_reason_never_quotes_the_password(self, password: str) -> None:
        """The reason is made of the estimate alone: no character of the password in it."""
        reason = weak_password(password)
        assert reason is not None
        assert _REASON.fullmatch(reason), reason
        assert f"about {math.floor(password_bits(password))} bits" in reason


class TestPasswordBits:
    def test_random_letters_count_by_their_alphabet(self) -> None:
        """A random 16-letter app password has 16 * log2(26) bits, not zxcvbn's 53."""
        assert password_bits("xkqvbmtrwplzhfjd") == pytest.approx(75.2, abs=0.1)

    def test_alphabet_is_of_the_whole_password(self) -> None:
        """An upper case letter elsewhere widens the alphabet of the random parts."""
        assert password_bits("xkqvbmtrwplzhfjdQ") > password_bits("xkqvbmtrwplzhfjd") + 16

    def test_words_count_by_their_guesses(self) -> None:
        """A dictionary word counts by zxcvbn's guesses, not by its letters."""
        assert password_bits("password") < 5

    def test_long_repetition_stays_weak(self) -> None:
        """Past what zxcvbn reads, repeating the same thing adds little."""
        assert weak_password("a" * 5000) is not None
        assert weak_password("abcd" * 1000) is not None

    def test_long_random_password_counts_its_tail(self) -> None:
        """A long random password counts past what zxcvbn reads, at most 6 bits a char."""
        head = "".join(_RANDOM.choice(string.printable[:94]) for _ in range(64))
        assert password_bits(head + "x" * 10) == pytest.approx(password_bits(head) + 60)

    def test_beyond_ascii_counts_generously(self) -> None:
        """Characters beyond ASCII add 100 to the alphabet."""
        assert password_bits("é") == pytest.approx(math.log2(100))

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(exclude_categories=()), max_size=200))
    @example("")
    @example("\ud800abc")
    @example("²³¹")
    @example("\x00\ud7ff\U0010ffff")
    @example("4@8({[<3!|17+5$0%2" * 6)
    def test_never_raises(self, password: str) -> None:
        """Any text gives a finite, non-negative estimate and a reason or None."""
        bits = password_bits(password)
        assert 0 <= bits < float("inf")
        reason = weak_password(password)
        assert (reason is None) == (bits >= MIN_PASSWORD_BITS)

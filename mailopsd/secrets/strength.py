"""How strong a password is: its estimated entropy in bits, and the rule for new ones.

A password chosen for a new credential should carry at least ``MIN_PASSWORD_BITS`` bits
of estimated entropy (``validate`` and ``secrets encrypt`` warn of a weaker one stored in
clear text).

The estimate is written on top of zxcvbn, which finds the guessable parts of a password
(dictionary words, keyboard runs, repeats, sequences, dates) and the guesses each needs.
What zxcvbn cannot match it counts as "bruteforce" with 10 guesses a character, which
undervalues random passwords: a random 16-letter app password would come out at 53 bits
where it has 75. So a bruteforce part counts here ``log2(C)`` bits a character, C being
the size of the character classes present in the password (26 lower case letters, 26
upper case, 10 digits, 33 for ASCII punctuation and space, 100 for any other
character); every other part counts ``log2(guesses)`` as zxcvbn has it; the parts add up.

zxcvbn's time grows with the square of the length (a password of 64 l33t symbols such as
``@`` and ``$`` takes about a second), so only the first 64 characters are given to
it. Each further character counts as much as an average one of those (at most 6
bits), and all of them together at most as much as those: a password that goes on past
them repeating itself (``"a" * 500``) stays weak. Pure: no I/O, and any text gives an
estimate, never an exception. The password never appears in a reason.
"""

from __future__ import annotations

import math
import string

__all__ = ["MIN_PASSWORD_BITS", "password_bits", "weak_password"]

MIN_PASSWORD_BITS = 64
"""The least estimated entropy of a new password, in bits."""

_HEAD_CHARS = 64
_TAIL_BITS_PER_CHAR_MAX = 6.0
_OTHER_CHARS = 100  # characters beyond ASCII letters, digits and punctuation
_CLASSES = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
    (frozenset(string.punctuation + " "), 33),
)


def _alphabet_size(password: str) -> int:
    """The size of the character classes ``password`` draws from (at least 1)."""
    chars = set(password)
    size = 0
    for members, count in _CLASSES:
        if chars & members:
            size += count
            chars -= members
    if chars:
        size += _OTHER_CHARS
    return max(size, 1)


def _head_bits(head: str, bits_per_random_char: float) -> float:
    """The estimate of a password of at most ``_HEAD_CHARS`` characters (see the module)."""
    if not head:
        return 0.0  # zxcvbn fails on the empty string
    # zxcvbn stores its user inputs in a module dict on each call; none are given, so
    # concurrent calls (the API's threads) all write the same empty entry.
    # Imported here: loading its dictionaries takes 20 ms, which every command would pay
    # at start, while only a new password (validate, secrets encrypt, an API write)
    # needs it.
    from zxcvbn import zxcvbn

    result = zxcvbn(head, max_length=_HEAD_CHARS)
    bits = 0.0
    for match in result["sequence"]:
        pattern: str = match["pattern"]  # the stubs leave "bruteforce" out of its values
        if pattern == "bruteforce":
            bits += len(match["token"]) * bits_per_random_char
        else:
            bits += math.log2(max(float(match.get("guesses", 1)), 1.0))
    return bits


def password_bits(password: str) -> float:
    """Estimate the entropy of a password.

    Args:
        password: The password, any text.

    Returns:
        Its estimated entropy in bits (0 for the empty string).
    """
    bits_per_random_char = math.log2(_alphabet_size(password))
    head = password[:_HEAD_CHARS]
    bits = _head_bits(head, bits_per_random_char)
    rest = len(password) - len(head)
    if rest:
        bits += min(rest * min(bits / len(head), _TAIL_BITS_PER_CHAR_MAX), bits)
    return bits


def weak_password(password: str) -> str | None:
    """Tell why a new password is too weak, if it is.

    Args:
        password: The password, any text.

    Returns:
        ``None`` when its estimated entropy is at least ``MIN_PASSWORD_BITS``; else a
        short reason with the estimate and what to do, which never quotes the password.
    """
    bits = password_bits(password)
    if bits >= MIN_PASSWORD_BITS:
        return None
    return (
        f"about {math.floor(bits)} bits of estimated entropy, under {MIN_PASSWORD_BITS}: "
        "use a longer random password (e.g. 20 random letters and digits)"
    )

"""Did-you-mean: the known names closest to one that is not known.

Used where a person types a name that must match one defined elsewhere: a template
variable (the leads columns), a time zone (the IANA names), a campaign or credential id
given to a command. difflib's ratio finds the usual typos (a letter missing, added,
swapped or of the other case) without suggesting names that only share a few letters.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from collections.abc import Iterable

__all__ = ["closest", "closest_zone", "did_you_mean", "listed"]

_CUTOFF = 0.6  # difflib's default: close enough to be a typo
_LISTED_MAX = 10


def closest(word: str, known: Iterable[str], *, limit: int = 1) -> list[str]:
    """The known names most like ``word``, best first, case ignored.

    Args:
        word: The name as written.
        known: The names it could have meant.
        limit: How many to return at most.

    Returns:
        Up to ``limit`` names, none if nothing is close.
    """
    by_folded: dict[str, str] = {}
    for name in known:
        by_folded.setdefault(name.casefold(), name)
    found = difflib.get_close_matches(word.casefold(), by_folded, n=limit, cutoff=_CUTOFF)
    return [by_folded[name] for name in found]


def did_you_mean(word: str, known: Iterable[str], *, quote: str = "") -> str | None:
    """``did you mean NAME?`` for the known name closest to ``word``, if one is close.

    Args:
        word: The name as written.
        known: The names it could have meant.
        quote: Put around the name (``'"'`` where the message quotes names).
    """
    found = closest(word, known)
    return f"did you mean {quote}{found[0]}{quote}?" if found else None


def listed(names: Iterable[str]) -> str:
    """Names for a message, comma-separated, the first ten and a count of the rest."""
    ordered = list(names)
    shown = ", ".join(ordered[:_LISTED_MAX])
    rest = len(ordered) - _LISTED_MAX
    return f"{shown} and {rest} more" if rest > 0 else shown


@functools.cache
def _zones() -> dict[str, str]:
    """Every IANA zone by its folded name, and by its folded last part (``paris``)."""
    names = sorted(zoneinfo.available_timezones())
    by_name = {name.casefold(): name for name in names}
    for name in names:
        by_name.setdefault(name.rpartition("/")[2].casefold(), name)
    return by_name


def closest_zone(text: str) -> str | None:
    """The IANA time zone most like ``text`` (``"Paris"``, ``"europe/pari"``), if one is close.

    Spaces count as the underscores IANA names use (``America/New York``).
    """
    folded = text.strip().replace(" ", "_").casefold()
    zones = _zones()
    if folded in zones:
        return zones[folded]
    found = difflib.get_close_matches(folded, zones, n=1, cutoff=_CUTOFF)
    return zones[found[0]] if found else None

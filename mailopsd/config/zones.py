"""Recipient time zones: which zone a lead's send window is in.

A campaign whose ``send_window.timezone`` is ``lead`` (the leads file's ``timezone``
column) or ``{column: NAME}`` sends to each lead in the window of the zone its row
names. A row whose value is empty or not an IANA zone name (``zoneinfo``) uses the
campaign's ``timezone``: :func:`lead_zone` tells which, and :func:`fallback_note` words
what ``validate`` and ``status`` report of those rows.

Pure: the zone of a row is decided once, when the leads file is imported, and kept
with the lead, so that a tick never reads a lead's columns to find its window.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable, Mapping

__all__ = ["EXAMPLE_LINES", "fallback_note", "lead_zone", "zone_of_row"]

EXAMPLE_LINES = 5
"""How many lines of leads without a valid zone a report names."""


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def lead_zone(value: str | None) -> str | None:
    """The IANA zone a leads file's value names (spaces around it ignored), else ``None``."""
    text = (value or "").strip()
    return text if text in _known_zones() else None


def zone_of_row(fields: Mapping[str, str], column: str | None) -> str | None:
    """The zone of one lead: its ``column``'s value if a valid zone (``None``: the campaign's)."""
    return None if column is None else lead_zone(fields.get(column))


def fallback_note(
    name: str, column: str, timezone: str, *, count: int, total: int, lines: Iterable[int]
) -> str:
    """What a report says of the leads without a valid zone, naming a few of their lines.

    Args:
        name: The leads file, as the config names it.
        column: The column holding the zones.
        timezone: The campaign's zone, which those leads use.
        count: How many leads have none.
        total: How many leads the file has.
        lines: The lines of the first few of them.
    """
    shown = [f"{name}:{line}" for line in list(lines)[:EXAMPLE_LINES]]
    more = ", ..." if count > len(shown) else ""
    return (
        f"{name}: {count} of {total} leads have no valid time zone in column {column} "
        f"(empty, or not an IANA name such as America/New_York) and send in the campaign's "
        f"{timezone} window: {', '.join(shown)}{more}"
    )

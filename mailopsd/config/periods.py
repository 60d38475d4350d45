"""The one period syntax used for every delay, window and rate-limit period.

It is the syntax of the SMTP user API this project follows,
``<n> [hour[s]|day[s]|week[s]|month[s]] [hh:mm:ss]``, plus ``minute[s]`` and
``second[s]``: ``"0:30:00"``, ``"1 hour"``, ``"2 days"``, ``"3 months"`` and
``"4 months 5:00:00"`` all parse. Months are calendar months: one month after
January 31 is the last day of February.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailopsd.config import suggest

__all__ = ["SYNTAX", "Period", "PeriodSyntaxError", "parse_period"]

_SECONDS_PER_UNIT = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
}
_UNIT_WORDS = [f"{unit}{plural}" for unit in (*_SECONDS_PER_UNIT, "month") for plural in ("", "s")]
SYNTAX = (
    'a period is "<count> <unit> [hh:mm:ss]" or "hh:mm:ss", unit one of second(s), '
    'minute(s), hour(s), day(s), week(s), month(s): "1 hour", "2 days", "0:30:00", '
    '"4 months 5:00:00"'
)
"""How periods are written, for messages about one that is not."""
_EXAMPLES = '"1 hour", "2 days", "0:30:00" or "4 months 5:00:00"'
_CLOCK = r"(\d+):(\d\d):(\d\d)"
_CLOCK_ONLY = re.compile(rf"{_CLOCK}\Z")
_COUNTED = re.compile(r"(\S+)(?:\s+([A-Za-z]+))?(?:\s+(\S+))?\Z")
_COUNT = re.compile(r"\d+\Z")


class PeriodSyntaxError(ValueError):
    """A period string does not follow the period syntax; the text says why.

    ``about_syntax`` is false for a well-formed period that is refused (zero long).
    """

    def __init__(self, message: str, *, about_syntax: bool = True) -> None:
        super().__init__(message)
        self.about_syntax = about_syntax


@dataclass(frozen=True)
class Period:
    """A length of time: whole calendar months plus a fixed number of seconds."""

    months: int
    seconds: int
    text: str

    def __str__(self) -> str:
        """Return the text the period was written as."""
        return self.text

    def add_to(self, moment: datetime) -> datetime:
        """Return ``moment`` plus this period, adding calendar months first.

        Args:
            moment: The instant to start from (aware or naive).

        Returns:
            The instant one period later; a day past the end of the target month
            is clamped to its last day.
        """
        return _add_months(moment, self.months) + timedelta(seconds=self.seconds)

    def subtract_from(self, moment: datetime) -> datetime:
        """Return ``moment`` minus this period (seconds, then calendar months)."""
        return _add_months(moment - timedelta(seconds=self.seconds), -self.months)

    @property
    def approx_seconds(self) -> int:
        """The length in seconds, counting a month as 30 days (for ordering only)."""
        return self.months * 30 * 86400 + self.seconds


def _add_months(moment: datetime, months: int) -> datetime:
    """Move ``moment`` by whole calendar months, clamping the day to the month's end."""
    if not months:
        return moment
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _clock_seconds(text: str) -> int:
    match = _CLOCK_ONLY.match(text)
    if match is None:
        raise PeriodSyntaxError(f'"{text}" is not a time of the form hh:mm:ss')
    hours, minutes, seconds = (int(part) for part in match.groups())
    if minutes > 59 or seconds > 59:
        raise PeriodSyntaxError(f'minutes and seconds in "{text}" must be 00 to 59')
    return hours * 3600 + minutes * 60 + seconds


def _unit_of(word: str) -> str:
    unit = word[:-1] if word.endswith("s") else word
    if unit != "month" and unit not in _SECONDS_PER_UNIT:
        hint = suggest.did_you_mean(word, _UNIT_WORDS, quote='"')
        raise PeriodSyntaxError(f'unknown unit "{word}"' + (f", {hint}" if hint else ""))
    return unit


def _parse_counted(text: str) -> tuple[int, int]:
    match = _COUNTED.match(text)
    if match is None:
        raise PeriodSyntaxError(f"must be a period such as {_EXAMPLES}")
    count_text, word, clock = match.groups()
    if not _COUNT.match(count_text):
        raise PeriodSyntaxError(f'the count "{count_text}" must be a whole number ≥ 0')
    if word is None:
        raise PeriodSyntaxError(f'a number needs a unit, e.g. "{count_text} minutes"')
    unit = _unit_of(word)
    extra = _clock_seconds(clock) if clock is not None else 0
    count = int(count_text)
    if unit == "month":
        return count, extra
    return 0, count * _SECONDS_PER_UNIT[unit] + extra


@functools.lru_cache(maxsize=4096)
def parse_period(text: str) -> Period:
    """Parse a period string.

    A period is a value: the same text gives the same object, parsed once (ten
    thousand credentials write a handful of periods).

    Args:
        text: The period as written, e.g. ``"4 months 5:00:00"``.

    Returns:
        The parsed period.

    Raises:
        PeriodSyntaxError: The text does not follow the syntax, or is zero.
    """
    stripped = " ".join(text.split())
    if not stripped:
        raise PeriodSyntaxError(f"must be a period such as {_EXAMPLES}")
    if _CLOCK_ONLY.match(stripped):
        months, seconds = 0, _clock_seconds(stripped)
    else:
        months, seconds = _parse_counted(stripped)
    if months == 0 and seconds == 0:
        raise PeriodSyntaxError("must be longer than zero", about_syntax=False)
    return Period(months=months, seconds=seconds, text=stripped)

"""Day boundaries every layer counts by: daily limits and "today" run from UTC midnight.

Pure: callers pass the moment (their injected clock), never read the time here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["next_utc_day_start", "utc_day_start"]


def utc_day_start(moment: datetime) -> datetime:
    """The UTC midnight that starts ``moment``'s day (an aware ``datetime``)."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_utc_day_start(moment: datetime) -> datetime:
    """The UTC midnight that ends ``moment``'s day."""
    return utc_day_start(moment) + timedelta(days=1)

"""The UTC day daily limits count in, whatever zone a moment is given in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from mailopsd.clock import next_utc_day_start, utc_day_start


class TestUtcDayStart:
    """Day boundaries at UTC midnight."""

    def test_a_moment_in_utc(self) -> None:
        """A UTC moment's day starts at its own midnight."""
        moment = datetime(2026, 11, 23, 17, 45, 12, 345678, tzinfo=UTC)
        assert utc_day_start(moment) == datetime(2026, 11, 23, tzinfo=UTC)
        assert next_utc_day_start(moment) == datetime(2026, 11, 24, tzinfo=UTC)

    def test_a_moment_in_another_zone_counts_by_utc(self) -> None:
        """01:30 on the 24th at UTC+3 is still the 23rd in UTC."""
        moment = datetime(2026, 11, 24, 1, 30, tzinfo=timezone(timedelta(hours=3)))
        start = utc_day_start(moment)
        assert (start, start.tzinfo) == (datetime(2026, 11, 23, tzinfo=UTC), UTC)

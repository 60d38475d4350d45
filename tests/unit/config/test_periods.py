"""The period syntax shared by every delay, window and rate-limit period."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailopsd.config.periods import PeriodSyntaxError, parse_period


class TestParsePeriod:
    """parse_period: the five documented examples, the extra units, and rejected forms."""

    @pytest.mark.parametrize(
        ("text", "months", "seconds"),
        [
            ("0:30:00", 0, 1800),
            ("1 hour", 0, 3600),
            ("2 days", 0, 2 * 86400),
            ("3 months", 3, 0),
            ("4 months 5:00:00", 4, 5 * 3600),
            ("90 seconds", 0, 90),
            ("1 second", 0, 1),
            ("15 minutes", 0, 900),
            ("1 minute", 0, 60),
            ("2 weeks", 0, 14 * 86400),
            ("1 day 12:00:00", 0, 36 * 3600),
            ("  3   hours ", 0, 3 * 3600),
            ("100:00:00", 0, 100 * 3600),
        ],
    )
    def test_accepted(self, text: str, months: int, seconds: int) -> None:
        """Each documented form parses to calendar months plus seconds."""
        period = parse_period(text)
        assert (period.months, period.seconds) == (months, seconds)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", 'must be a period such as "1 hour", "2 days", "0:30:00" or "4 months 5:00:00"'),
            ("5", 'a number needs a unit, e.g. "5 minutes"'),
            ("1.5 hours", 'the count "1.5" must be a whole number ≥ 0'),
            ("-1 hour", 'the count "-1" must be a whole number ≥ 0'),
            ("1 fortnight", 'unknown unit "fortnight"'),
            ("1 Hour", 'unknown unit "Hour", did you mean "hour"?'),
            ("3 dyas", 'unknown unit "dyas", did you mean "days"?'),
            ("0:60:00", 'minutes and seconds in "0:60:00" must be 00 to 59'),
            ("1 hour 30", '"30" is not a time of the form hh:mm:ss'),
            (
                "1 hour 30 minutes",
                'must be a period such as "1 hour", "2 days", "0:30:00" or "4 months 5:00:00"',
            ),
            ("0 hours", "must be longer than zero"),
            ("0:00:00", "must be longer than zero"),
            ("hour", 'the count "hour" must be a whole number ≥ 0'),
        ],
    )
    def test_rejected(self, text: str, message: str) -> None:
        """Forms outside the syntax fail with a message saying what is wrong."""
        with pytest.raises(PeriodSyntaxError) as caught:
            parse_period(text)
        assert str(caught.value) == message

    def test_months_are_calendar_months(self) -> None:
        """One month after January 31 is the last day of February; leap years count."""
        one_month = parse_period("1 month")
        assert one_month.add_to(datetime(2026, 1, 31, 9, tzinfo=UTC)) == datetime(
            2026, 2, 28, 9, tzinfo=UTC
        )
        assert one_month.add_to(datetime(2028, 1, 31, tzinfo=UTC)) == datetime(
            2028, 2, 29, tzinfo=UTC
        )
        assert parse_period("13 months").add_to(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(
            2028, 1, 15, tzinfo=UTC
        )

    def test_months_then_clock(self) -> None:
        """The hh:mm:ss part is added after the months."""
        later = parse_period("4 months 5:00:00").add_to(datetime(2026, 10, 31, 20, tzinfo=UTC))
        assert later == datetime(2027, 3, 1, 1, tzinfo=UTC)

    def test_subtract_is_inverse_for_whole_days(self) -> None:
        """Going back a period from a mid-month instant returns the instant one period ago."""
        period = parse_period("2 months 1:00:00")
        start = datetime(2026, 11, 15, 12, tzinfo=UTC)
        assert period.add_to(period.subtract_from(start)) == start

    def test_text_is_kept(self) -> None:
        """A period prints as written (spaces normalised), for status and errors."""
        assert str(parse_period("4  months 5:00:00")) == "4 months 5:00:00"

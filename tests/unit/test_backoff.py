"""The retry delays of each kind of failure, pinned to the values mailopsd has always used."""

from __future__ import annotations

import pytest

from mailopsd import backoff


def _delays(policy: backoff.Backoff, tries: int) -> list[float]:
    return [policy.delay_s(failures) for failures in range(1, tries + 1)]


class TestBackoff:
    """Named policies and the doubling they share."""

    def test_deferred_lead(self) -> None:
        """A deferred lead waits 2, 4, 8 … minutes, at most 6 hours."""
        minutes = [2, 4, 8, 16, 32, 64, 128, 256, 360, 360]
        assert _delays(backoff.DEFERRED_LEAD, 10) == [60.0 * m for m in minutes]

    def test_smtp_auth(self) -> None:
        """A refused login waits 60, 120 … seconds, at most an hour."""
        expected = [60, 120, 240, 480, 960, 1920, 3600, 3600]
        assert _delays(backoff.SMTP_AUTH, 8) == expected

    def test_smtp_trouble(self) -> None:
        """An unreachable or failing SMTP server waits 30, 60 … seconds, at most 30 minutes."""
        expected = [30, 60, 120, 240, 480, 960, 1800, 1800]
        assert _delays(backoff.SMTP_TROUBLE, 8) == expected

    def test_imap_idle(self) -> None:
        """A failing IDLE connection waits from the retry delay up, at most an hour."""
        assert _delays(backoff.imap_idle(60.0), 8) == [60, 120, 240, 480, 960, 1920, 3600, 3600]
        assert _delays(backoff.imap_idle(0.2), 17)[-3:] == [3276.8, 3600.0, 3600.0]

    @pytest.mark.parametrize(
        ("retry_s", "interval_s", "expected"),
        [
            (60.0, 300.0, [60, 120, 240, 300, 300]),
            (60.0, 30.0, [30, 60, 60, 60, 60]),
            (0.2, 60.0, [0.2, 0.4, 0.8, 1.6, 3.2]),
            (60.0, 86400.0, [60, 120, 240, 480, 960, 1920, 3600, 3600]),
        ],
    )
    def test_imap_poll(self, retry_s: float, interval_s: float, expected: list[float]) -> None:
        """A failing poll waits from the lesser of retry delay and interval up to the
        greater of them, at most an hour."""
        assert _delays(backoff.imap_poll(retry_s, interval_s), len(expected)) == expected

    def test_long_failure_runs_stay_at_the_cap(self) -> None:
        """After thousands of failures in a row the wait is the cap, never an error."""
        assert backoff.imap_poll(0.2, 60.0).delay_s(5000) == 60.0
        assert backoff.imap_idle(0.2).delay_s(5000) == backoff.IMAP_MAX_S
        assert backoff.SMTP_TROUBLE.delay_s(5000) == 1800

    def test_no_failure_waits_the_first_delay(self) -> None:
        """Counts below one are read as the first failure."""
        assert backoff.SMTP_AUTH.delay_s(0) == 60

"""The bounce-rate policy: window start and the disable verdict with its numbers."""

from __future__ import annotations

from datetime import UTC, datetime

from mailopsd.config.models import Campaign
from mailopsd.config.periods import parse_period
from mailopsd.health.policy import disable_reason, window_start
from tests.configs import campaign_model

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
SINCE = datetime(2026, 11, 16, tzinfo=UTC)


def _campaign(threshold: str = "5%", min_sends: int = 20) -> Campaign:
    return campaign_model(
        bounce_threshold=threshold, bounce_min_sends=min_sends, credential={"daily_limit": 1}
    )


def test_reason_carries_the_numbers() -> None:
    """Above the threshold: the reason names rate, counts, threshold and window start."""
    assert disable_reason(_campaign(), bounces=10, sends=140, since=SINCE) == (
        "bounce rate 7.1% (10/140) > 5% since 2026-11-16T00:00:00Z"
    )


def test_no_verdict_on_few_sends() -> None:
    """Fewer sends than bounce_min_sends: no verdict, whatever the rate."""
    assert disable_reason(_campaign(), bounces=19, sends=19, since=SINCE) is None


def test_at_threshold_is_not_above() -> None:
    """A rate equal to the threshold does not disable (only above it does)."""
    assert disable_reason(_campaign(), bounces=1, sends=20, since=SINCE) is None
    assert disable_reason(_campaign(), bounces=2, sends=20, since=SINCE) is not None


def test_window_restarts_at_reenable() -> None:
    """The window starts bounce_window ago, or at a later re-enable."""
    week = parse_period("7 days")
    assert window_start(week, None, NOW) == datetime(2026, 11, 16, 12, tzinfo=UTC)
    later = datetime(2026, 11, 22, tzinfo=UTC)
    assert window_start(week, later, NOW) == later
    assert window_start(week, datetime(2026, 1, 1, tzinfo=UTC), NOW) == datetime(
        2026, 11, 16, 12, tzinfo=UTC
    )

"""The bounce check inside a batch: the window read at the first 5xx, the batch's bounces added."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailopsd.config.models import Campaign
from mailopsd.health.batch import BounceCheck
from mailopsd.state.ledger import Ledger
from mailopsd.state.sends import Intent
from mailopsd.state.statefile import StateFile
from tests.configs import campaign_model

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _campaign() -> Campaign:
    return campaign_model(bounce_threshold="10%", bounce_min_sends=10)


def _check(directory: Path) -> BounceCheck:
    return BounceCheck.of(directory, ("c", "a"), _campaign(), StateFile(), NOW)


class TestBounceCheck:
    def test_no_ledger_stops_the_batch(self, tmp_path: Path) -> None:
        """Without a ledger to read, the rate is unknown and the batch stops."""
        assert _check(tmp_path).after_bounce(unsent=0) == "bounce rate unknown (no ledger)"

    def test_batch_bounces_add_up_to_a_verdict(self, tmp_path: Path) -> None:
        """Each 5xx adds one bounce; sends not yet made do not count; over 10% it stops."""
        ledger = Ledger.open(tmp_path)
        try:
            intents = [
                Intent("c", "a", f"l{n}@example.com", 1, f"<{n}@x>", "s", NOW) for n in range(20)
            ]
            ledger.sends.record_intents(intents)
        finally:
            ledger.close()
        check = _check(tmp_path)
        assert check.after_bounce(unsent=9) is None  # 1 of 11
        assert check.after_bounce(unsent=8) == (
            "credential disabled: bounce rate 16.7% (2/12) > 10% since 2026-11-16T12:00:00Z"
        )

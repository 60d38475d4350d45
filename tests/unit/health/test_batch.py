"""The bounce check inside a batch: the window read at the first counted 5xx, the batch's
bounces and blocks added by their reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailopsd.config.models import Campaign
from mailopsd.diagnosis import Diagnosis, Reason
from mailopsd.health.batch import BounceCheck
from mailopsd.lifecycle import MailKind
from mailopsd.state.ledger import Ledger
from mailopsd.state.sends import Intent
from mailopsd.state.statefile import StateFile
from tests.configs import campaign_model

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
GONE = Diagnosis(Reason.USER_UNKNOWN, MailKind.HARD)
SPAM = Diagnosis(Reason.SPAM_DETECTED, MailKind.BLOCK)
FULL = Diagnosis(Reason.MAILBOX_FULL, MailKind.SOFT)


def _campaign(**fields: object) -> Campaign:
    return campaign_model(bounce_threshold="10%", bounce_min_sends=10, **fields)


def _check(directory: Path, **fields: object) -> BounceCheck:
    return BounceCheck.of(directory, ("c", "a"), _campaign(**fields), StateFile(), NOW)


def _twenty_intents(directory: Path) -> None:
    ledger = Ledger.open(directory)
    try:
        intents = [
            Intent("c", "a", f"l{n}@example.com", 1, f"<{n}@x>", "s", NOW) for n in range(20)
        ]
        ledger.sends.record_intents(intents)
    finally:
        ledger.close()


class TestBounceCheck:
    def test_no_ledger_stops_the_batch(self, tmp_path: Path) -> None:
        """Without a ledger to read, the rate is unknown and the batch stops."""
        assert _check(tmp_path).after_refusal(GONE, unsent=0) == "bounce rate unknown (no ledger)"

    def test_batch_bounces_add_up_to_a_verdict(self, tmp_path: Path) -> None:
        """Each 5xx adds one bounce; sends not yet made do not count; over 10% it stops."""
        _twenty_intents(tmp_path)
        check = _check(tmp_path)
        assert check.after_refusal(GONE, unsent=9) is None  # 1 of 11
        assert check.after_refusal(GONE, unsent=8) == (
            "credential disabled: bounce rate 16.7% (2/12) > 10% since 2026-11-16T12:00:00Z"
        )

    def test_blocks_add_up_to_the_block_threshold(self, tmp_path: Path) -> None:
        """A block counts toward the block rate, not the bounce rate; a soft refusal
        toward neither (and reads nothing: without a ledger, nothing stops)."""
        assert _check(tmp_path).after_refusal(FULL, unsent=0) is None  # no ledger read
        _twenty_intents(tmp_path)
        check = _check(tmp_path, block_threshold="10%")
        assert check.after_refusal(SPAM, unsent=9) is None  # 1 of 11
        assert check.after_refusal(FULL, unsent=8) is None
        assert check.after_refusal(SPAM, unsent=7) == (
            "credential disabled: block rate 15.4% (2/13) > 10% since 2026-11-16T12:00:00Z: "
            "servers refuse this mailbox (blocklist, spam filter or policy)"
        )

    def test_named_reasons_count_and_are_named(self, tmp_path: Path) -> None:
        """With bounce_reasons named, a soft reason listed counts toward the bounce rate,
        an unlisted hard one does not, and the verdict names what was counted."""
        _twenty_intents(tmp_path)
        check = _check(tmp_path, bounce_reasons=["mailboxfull"])
        assert check.after_refusal(GONE, unsent=9) is None
        assert check.after_refusal(FULL, unsent=8) is None  # 1 of 12
        assert check.after_refusal(FULL, unsent=7) == (
            "credential disabled: bounce rate 15.4% (2/13) > 10% since 2026-11-16T12:00:00Z; "
            "counted: mailboxfull"
        )

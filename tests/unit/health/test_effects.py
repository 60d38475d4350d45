"""What bad news does to a lead: it stops, once, and its address is suppressed for the account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.health import effects
from mailopsd.lifecycle import LeadState, StopReason
from mailopsd.state.ledger import Ledger
from tests.ledger_setup import import_leads

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path)
    with opened.transaction():
        opened.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
        import_leads(opened, "acme", ["a@example.com"], now=NOW)
    try:
        yield opened
    finally:
        opened.close()


class TestRecordStop:
    def test_stops_logs_and_suppresses(
        self, ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The lead stops with its reason, is logged once, and its address is suppressed."""
        caplog.set_level(logging.INFO)
        for _ in range(2):
            with ledger.transaction():
                effects.record_stop(
                    ledger,
                    ("acme", "a"),
                    "a@example.com",
                    StopReason.COMPLAINED,
                    account="default",
                    suppression=effects.Suppression.COMPLAINT,
                    now=NOW,
                )
        lead = ledger.leads.get("acme", "a@example.com")
        assert lead is not None
        assert (lead.state, lead.stop_reason) == (LeadState.STOPPED, "complained")
        assert ledger.suppressions.reason("default", "a@example.com") == "complaint"
        stops = [r.getMessage() for r in caplog.records if "lead stopped" in r.getMessage()]
        assert stops == ["lead stopped campaign=acme credential=a reason=complained"]

    def test_no_account_suppresses_nothing(self, ledger: Ledger) -> None:
        """A campaign no longer configured has no account: the lead stops, nothing is suppressed."""
        with ledger.transaction():
            effects.record_stop(
                ledger,
                ("acme", "a"),
                "a@example.com",
                StopReason.BOUNCED,
                account=None,
                suppression=effects.Suppression.HARD_BOUNCE,
                now=NOW,
            )
        assert ledger.suppressions.reason("default", "a@example.com") is None


def test_suppression_words_are_stored_words() -> None:
    """The suppression reasons are the words the ledger has always stored."""
    assert [str(reason) for reason in effects.Suppression] == [
        "hard bounce",
        "complaint",
        "unsubscribed",
        "unsubscribed (one-click)",
    ]

"""What bad news does to a lead: it stops, once, and its address is suppressed for the account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.config.domains import free_mail
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


class TestStopColleagues:
    @staticmethod
    def _ledger(tmp_path: Path, emails: list[str]) -> Ledger:
        opened = Ledger.open(tmp_path)
        with opened.transaction():
            opened.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
            import_leads(opened, "acme", emails, now=NOW)
        return opened

    def test_stops_the_other_leads_at_the_domain_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Colleagues stop with domain_replied, each logged once; nothing is suppressed."""
        caplog.set_level(logging.INFO)
        ledger = self._ledger(tmp_path, ["ada@acme.example", "bob@acme.example", "cy@x.example"])
        try:
            for _ in range(2):
                with ledger.transaction():
                    effects.stop_colleagues(
                        ledger, ("acme", "a"), "ada@acme.example", free_mail=free_mail()
                    )
            bob = ledger.leads.get("acme", "bob@acme.example")
            assert bob is not None
            assert (bob.state, bob.stop_reason) == (LeadState.STOPPED, "domain_replied")
            assert ledger.suppressions.reason("default", "bob@acme.example") is None
            assert [lead.email for lead in ledger.leads.new("acme", "default", NOW, 10)] == [
                "ada@acme.example",
                "cy@x.example",
            ]
        finally:
            ledger.close()
        stops = [r.getMessage() for r in caplog.records if "lead stopped" in r.getMessage()]
        assert stops == [
            "lead stopped campaign=acme credential=a reason=domain_replied "
            "lead=bob@acme.example replied=ada@acme.example"
        ]

    def test_free_mail_domains_are_left_alone(self, tmp_path: Path) -> None:
        """A reply from a free-mail address, built in or added by the config, stops no one."""
        ledger = self._ledger(tmp_path, ["ada@gmail.com", "bob@gmail.com", "cy@isp.example"])
        try:
            with ledger.transaction():
                table = free_mail(["isp.example"])
                assert (
                    effects.stop_colleagues(ledger, ("acme", "a"), "ada@gmail.com", free_mail=table)
                    == []
                )
                assert (
                    effects.stop_colleagues(
                        ledger, ("acme", "a"), "dee@isp.example", free_mail=table
                    )
                    == []
                )
            assert len(ledger.leads.new("acme", "default", NOW, 10)) == 3
        finally:
            ledger.close()

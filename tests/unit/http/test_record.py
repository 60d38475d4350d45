"""What a followed link records, for a lead named by another spelling of its address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailopsd.health.effects import Suppression
from mailopsd.http import record
from mailopsd.state.ledger import Ledger
from mailopsd.state.tracking import Tracked
from mailopsd.tokens import Claims
from tests.ledger_setup import import_leads

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_a_link_naming_an_old_spelling_unsubscribes_the_lead(tmp_path: Path) -> None:
    """A link mailed under an IDN's Unicode spelling stops and suppresses its A-label lead."""
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
        import_leads(ledger, "acme", ["a@xn--bcher-kva.de"], now=NOW)
    claims = Claims("acme", "a@bücher.de")
    assert record.unsubscribe(ledger, claims, NOW) == record.Unsubscribed.DONE
    assert record.record_open(ledger, claims, NOW)
    lead = ledger.leads.get("acme", "a@xn--bcher-kva.de")
    assert lead is not None
    assert (lead.state, lead.stop_reason) == ("stopped", "unsubscribed")
    assert (
        ledger.suppressions.reason("default", "a@xn--bcher-kva.de")
        == Suppression.UNSUBSCRIBED_ONE_CLICK
    )
    assert ledger.tracking.opens("acme", "a@xn--bcher-kva.de") is not None
    ledger.close()


def test_a_batch_of_counts_adds_up_per_lead_and_link(tmp_path: Path) -> None:
    """A batch counts every open and click, keeps each one's first and last time, and
    leaves out a campaign the ledger does not know."""
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
        ledger.tracking.record_open("acme", "a@example.net", NOW)
    later, latest = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    url = "https://acme.example/offer"
    counts = [
        record.Count(Claims("acme", "a@example.net"), latest),
        record.Count(Claims("acme", "a@example.net"), later),
        record.Count(Claims("acme", "b@example.net"), later),
        record.Count(Claims("acme", "a@example.net", url), later),
        record.Count(Claims("acme", "a@example.net", url), latest),
        record.Count(Claims("gone", "a@example.net"), later),
    ]
    assert record.record_counts(ledger, counts) == 5
    assert ledger.tracking.opens("acme", "a@example.net") == Tracked(NOW, latest, 3)
    assert ledger.tracking.opens("acme", "b@example.net") == Tracked(later, later, 1)
    assert ledger.tracking.clicks("acme", "a@example.net") == {url: Tracked(later, latest, 2)}
    assert ledger.tracking.opens("gone", "a@example.net") is None
    ledger.close()

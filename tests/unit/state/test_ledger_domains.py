"""The ledger by recipient domain: suppression lists, stopping colleagues, daily counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailopsd.config.leads import iter_leads
from mailopsd.config.suppression import ListEntry
from mailopsd.errors import StateError
from mailopsd.lifecycle import SendOutcome, StopReason
from mailopsd.state import schema
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.sends import Intent
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
LEADS = [
    "ada@acme.example",
    "bob@acme.example",
    "cy@acme.example",
    "dee@other.example",
    "eve@gmail.com",
]


@pytest.fixture
def ledger(ledgers: Ledgers, tmp_path: Path) -> Iterator[Ledger]:
    """A ledger whose campaign ``acme`` (account default) has the five LEADS, all new."""
    opened = ledgers.open()
    path = tmp_path / "leads.csv"
    path.write_text("email\n" + "".join(f"{email}\n" for email in LEADS))
    with opened.transaction():
        opened.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
    stage = opened.imports.stage("acme", iter_leads(path), name="leads.csv")
    with opened.transaction():
        opened.imports.apply_stage("acme", stage.number, account="default", digest="d", now=NOW)
    yield opened
    opened.close()


def _entries(*values: str) -> list[ListEntry]:
    return [
        ListEntry("domain", value[1:], 1)
        if value.startswith("@")
        else ListEntry("address", value, 1)
        for value in values
    ]


def _apply_lists(ledger: Ledger, *values: str, digest: str | None = "d1") -> None:
    diff = ledger.suppression_lists.stage("default", _entries(*values))
    with ledger.transaction():
        files = ("dnc.txt",) if digest else ()
        ledger.suppression_lists.apply_stage(
            "default", diff.stage, digest=digest, files=files, now=NOW
        )


def _new(ledger: Ledger, *, cap: int | None = None, now: datetime = NOW) -> list[str]:
    return [lead.email for lead in ledger.leads.new("acme", "default", now, 10, domain_cap=cap)]


class TestSuppressionLists:
    """An account's listed addresses and domains, applied as a difference."""

    def test_first_stage_and_its_difference(self, ledger: Ledger) -> None:
        """A stage counts what it adds and removes, with a few examples, before applying."""
        diff = ledger.suppression_lists.stage(
            "default", _entries("bob@acme.example", "@acme.example")
        )
        assert (diff.added_addresses, diff.added_domains) == (1, 1)
        assert (diff.removed_addresses, diff.removed_domains) == (0, 0)
        assert diff.examples == ("+bob@acme.example", "+@acme.example")
        assert ledger.suppression_lists.digests() == {}
        assert _new(ledger) == LEADS  # nothing applied yet

    def test_listed_leads_are_held_back_until_unlisted(self, ledger: Ledger) -> None:
        """A listed address or domain holds its leads back; removed from the list, they go."""
        _apply_lists(ledger, "dee@other.example", "@acme.example")
        assert _new(ledger) == ["eve@gmail.com"]
        assert ledger.suppression_lists.digests() == {"default": "d1"}
        [counts] = ledger.suppression_lists.counts()
        assert (counts.files, counts.addresses, counts.domains) == (("dnc.txt",), 1, 1)
        tally = ledger.leads.tally("acme", "default", steps=2)
        assert (tally.listed, tally.suppressed) == ({("new", 0): 4}, {})

        diff = ledger.suppression_lists.stage("default", _entries("dee@other.example"))
        assert (diff.removed_domains, diff.examples) == (1, ("-@acme.example",))
        with ledger.transaction():
            ledger.suppression_lists.apply_stage(
                "default", diff.stage, digest="d2", files=("dnc.txt",), now=NOW
            )
        assert _new(ledger) == [e for e in LEADS if e != "dee@other.example"]

    def test_a_list_change_never_lifts_what_the_daemon_suppressed(self, ledger: Ledger) -> None:
        """A bounce suppressed by the daemon stays, whatever the lists say; each lead once."""
        with ledger.transaction():
            ledger.suppressions.add("default", "bob@acme.example", "hard bounce", NOW)
        _apply_lists(ledger, "bob@acme.example", "@acme.example")
        tally = ledger.leads.tally("acme", "default", steps=2)
        assert (tally.suppressed, tally.listed) == ({("new", 0): 1}, {("new", 0): 2})
        _apply_lists(ledger, digest=None)  # the account's lists are gone from the config
        assert ledger.suppression_lists.digests() == {}
        assert ledger.suppression_lists.counts() == []
        assert "bob@acme.example" not in _new(ledger)
        assert ledger.suppressions.reason("default", "bob@acme.example") == "hard bounce"

    def test_a_stale_stage_is_refused(self, ledger: Ledger) -> None:
        """A stage staged again since cannot be applied."""
        first = ledger.suppression_lists.stage("default", _entries("@acme.example"))
        ledger.suppression_lists.stage("default", _entries("@other.example"))
        with pytest.raises(StateError, match="plan again"), ledger.transaction():
            ledger.suppression_lists.apply_stage(
                "default", first.stage, digest="d", files=(), now=NOW
            )


class TestColleagues:
    """The active leads of a campaign at one domain, stopped together."""

    def test_stop_at_domain(self, ledger: Ledger) -> None:
        """Every other active lead at the domain stops once; other domains go on."""
        ledger.leads.stop("acme", "cy@acme.example", StopReason.UNSUBSCRIBED)
        stopped = ledger.leads.stop_at_domain(
            "acme", "acme.example", StopReason.DOMAIN_REPLIED, keep="ada@acme.example"
        )
        assert stopped == ["bob@acme.example"]
        bob = ledger.leads.get("acme", "bob@acme.example")
        assert bob is not None
        assert (bob.state, bob.stop_reason) == ("stopped", "domain_replied")
        assert _new(ledger) == ["ada@acme.example", "dee@other.example", "eve@gmail.com"]
        again = ledger.leads.stop_at_domain(
            "acme", "acme.example", StopReason.DOMAIN_REPLIED, keep="ada@acme.example"
        )
        assert again == []
        assert ledger.leads.tally("acme", "default", steps=2).by_state["domain_replied"] == 1


def _send(ledger: Ledger, email: str, at: datetime, step: int = 1) -> int:
    intent = Intent("acme", "box", email, step, f"<{email}.{step}@x>", "Hello", at)
    [send_id] = ledger.sends.record_intents([intent])
    return send_id


class TestDomainDays:
    """Counted sends per campaign, UTC day and recipient domain."""

    def test_counts_follow_the_outcomes(self, ledger: Ledger) -> None:
        """Intents count at once; an outcome that is not counted takes its send back."""
        first = _send(ledger, "ada@acme.example", NOW)
        second = _send(ledger, "bob@acme.example", NOW)
        _send(ledger, "dee@other.example", NOW)
        with ledger.transaction():
            ledger.sends.set_outcome(first, outcome=SendOutcome.SENT, code=250, detail="", at=NOW)
            ledger.sends.set_outcome(
                second, outcome=SendOutcome.DEFERRED, code=451, detail="", at=NOW
            )
        counts = ledger.sends.domain_sends("acme", NOW, ["acme.example", "other.example"])
        assert counts == {"acme.example": 1, "other.example": 1}
        assert ledger.sends.domain_sends("acme", NOW + timedelta(days=1), ["acme.example"]) == {}

    def test_new_leads_at_a_domain_at_its_cap_wait_for_the_next_day(self, ledger: Ledger) -> None:
        """With a cap of 2, a domain with 2 sends today is left out, until the next UTC day."""
        _send(ledger, "earlier@acme.example", NOW, step=1)
        assert _new(ledger, cap=2) == LEADS
        _send(ledger, "other@other.example", NOW - timedelta(hours=1), step=2)
        _send(ledger, "again@acme.example", NOW, step=2)  # a follow-up counts too
        assert _new(ledger, cap=2) == ["dee@other.example", "eve@gmail.com"]
        assert _new(ledger) == LEADS
        assert _new(ledger, cap=2, now=NOW + timedelta(days=1)) == LEADS
        assert ledger.sends.domains_at("acme", NOW, 2) == 1


def test_migration_counts_the_sends_already_made(tmp_path: Path) -> None:
    """A ledger of schema 6 gets its per-domain counts from the sends it holds."""
    db = sqlite3.connect(tmp_path / LEDGER_FILE, isolation_level=None)
    for version in range(1, 7):
        for statement in schema._statements(schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    rows = [
        ("ada@acme.example", "sent"),
        ("bob@acme.example", "bounced"),
        ("cy@acme.example", "deferred"),
        ("dee@other.example", "unknown"),
    ]
    db.executemany(
        "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, intent_at, "
        "outcome) VALUES ('acme', 'box', ?, 1, 'm', '2026-11-23T10:00:00.000000Z', ?)",
        rows,
    )
    db.close()
    ledger = Ledger.open(tmp_path)
    try:
        counts = ledger.sends.domain_sends("acme", NOW, ["acme.example", "other.example"])
    finally:
        ledger.close()
    assert counts == {"acme.example": 2, "other.example": 1}

"""Staging a leads file in the ledger and importing only the difference, in SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.config.leads import LeadRow, iter_leads
from mailopsd.errors import StateError
from mailopsd.reconcile import LeadsDiff
from mailopsd.state.imports import LeadsStage
from mailopsd.state.ledger import Ledger
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def ledger(ledgers: Ledgers, tmp_path: Path) -> Iterator[Ledger]:
    opened = ledgers.open()
    with opened.transaction():
        opened.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
    yield opened
    opened.close()


def _stage(ledger: Ledger, tmp_path: Path, text: str) -> LeadsStage:
    path = tmp_path / "leads.csv"
    path.write_text(text)
    return ledger.imports.stage("acme", iter_leads(path, "leads.csv"), name="leads.csv")


def _import(ledger: Ledger, stage: LeadsStage, digest: str = "d1") -> None:
    with ledger.transaction():
        ledger.imports.apply_stage("acme", stage.number, account="default", digest=digest, now=NOW)


def _parts(
    diff: LeadsDiff,
) -> tuple[Sequence[LeadRow], Sequence[LeadRow], Sequence[str], Sequence[str]]:
    return diff.added, diff.updated, diff.removed, diff.problems


FIRST = (
    "email,first_name\n"
    "ada@example.com,Ada\n"
    "bob@example.com,Bob\n"
    "not-an-address,X\n"
    "Ada@Example.com,Again\n"
    "cy@example.com,Cy\n"
    "BOB@example.com,Bobby\n"
)


def test_first_import_adds_the_first_row_of_each_address(ledger: Ledger, tmp_path: Path) -> None:
    """Repeats and bad rows become problems, in line order; the rest is added."""
    stage = _stage(ledger, tmp_path, FIRST)
    assert (stage.added, stage.updated, stage.removed, stage.problems) == (3, 0, 0, 3)
    added, updated, removed, problems = _parts(ledger.imports.changes(stage))
    assert [(row.email, row.line, row.fields["first_name"]) for row in added] == [
        ("ada@example.com", 2, "Ada"),
        ("bob@example.com", 3, "Bob"),
        ("cy@example.com", 6, "Cy"),
    ]
    assert (list(updated), list(removed)) == ([], [])
    skipped = [
        "leads.csv:4: has no valid email ('not-an-address': "
        "an email address must have an @-sign); skipped",
        "leads.csv:5: repeats Ada@Example.com (line 2 kept)",
        "leads.csv:7: repeats BOB@example.com (line 3 kept)",
    ]
    assert list(problems) == skipped
    _import(ledger, stage)
    assert ledger.leads.count("acme") == 3
    assert ledger.campaigns.leads_digests() == {"acme": "d1"}
    assert ledger.imports.problems("acme") == skipped
    with pytest.raises(StateError, match="gone"):
        list(problems)  # the stage is dropped once imported
    lead = ledger.leads.get("acme", "ada@example.com")
    assert lead is not None
    assert (lead.state, dict(lead.fields)) == (
        "new",
        {"email": "ada@example.com", "first_name": "Ada"},
    )
    assert [lead.email for lead in ledger.leads.new("acme", "default", NOW, 10)] == [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
    ]


def test_second_import_writes_only_the_difference(ledger: Ledger, tmp_path: Path) -> None:
    """A changed row is updated (its progress kept), a missing one removed, a new one added."""
    _import(ledger, _stage(ledger, tmp_path, FIRST))
    ledger.leads.stop("acme", "bob@example.com", "replied")
    stage = _stage(
        ledger,
        tmp_path,
        "email,first_name\nbob@example.com,Robert\ndee@example.com,Dee\ncy@example.com,Cy\n",
    )
    added, updated, removed, problems = _parts(ledger.imports.changes(stage))
    assert [row.email for row in added] == ["dee@example.com"]
    assert [(row.email, row.line) for row in updated] == [("bob@example.com", 2)]
    assert list(removed) == ["ada@example.com"]
    assert len(problems) == 0
    _import(ledger, stage, digest="d2")
    assert ledger.leads.count("acme") == 3
    assert ledger.imports.problems("acme") == []
    bob = ledger.leads.get("acme", "bob@example.com")
    assert bob is not None
    assert (bob.state, bob.fields["first_name"]) == ("stopped", "Robert")
    assert ledger.campaigns.leads_digests() == {"acme": "d2"}
    # A removed address that comes back is active again, with its history.
    again = _stage(ledger, tmp_path, "email,first_name\nada@example.com,Ada\n")
    assert (again.added, again.updated, again.removed) == (1, 0, 3)
    _import(ledger, again, digest="d3")
    assert ledger.leads.count("acme") == 1


def test_an_unchanged_file_stages_no_change(ledger: Ledger, tmp_path: Path) -> None:
    """Staging the file that was imported finds nothing to write."""
    _import(ledger, _stage(ledger, tmp_path, FIRST))
    stage = _stage(ledger, tmp_path, FIRST)
    assert (stage.added, stage.updated, stage.removed, stage.problems) == (0, 0, 0, 3)


def test_staged_sequences_behave_as_sequences(ledger: Ledger, tmp_path: Path) -> None:
    """len, indexing (negative too), slices, membership; a repr that reads nothing."""
    stage = _stage(ledger, tmp_path, FIRST)
    added, _, removed, problems = _parts(ledger.imports.changes(stage))
    assert len(added) == 3
    assert added[0].email == "ada@example.com"
    assert added[-1].email == "cy@example.com"
    assert [row.email for row in added[1:]] == ["bob@example.com", "cy@example.com"]
    with pytest.raises(IndexError):
        added[3]
    assert not removed
    assert "leads.csv:5: repeats Ada@Example.com (line 2 kept)" in problems
    assert repr(added) == f"<3 staged as stage {stage.number}>"


def test_a_stage_is_replaced_by_the_next(ledger: Ledger, tmp_path: Path) -> None:
    """Staging a campaign again drops its earlier stage: the older plan cannot apply."""
    older = _stage(ledger, tmp_path, FIRST)
    newer = _stage(ledger, tmp_path, "email\nzed@example.com\n")
    with pytest.raises(StateError, match="gone"):
        _import(ledger, older)
    with pytest.raises(StateError, match="gone"):
        list(ledger.imports.changes(older).added)
    _import(ledger, newer)
    assert ledger.leads.count("acme") == 1
    with pytest.raises(StateError, match="gone"):
        _import(ledger, newer)  # imported stages are dropped


def test_a_failed_read_leaves_no_stage(ledger: Ledger, tmp_path: Path) -> None:
    """An error while reading rolls the stage back; staging again works."""
    path = tmp_path / "leads.csv"
    path.write_bytes(b"email\nok@example.com\n\xff\xfe\n")
    with pytest.raises(UnicodeDecodeError):
        ledger.imports.stage("acme", iter_leads(path), name="leads.csv")
    stage = _stage(ledger, tmp_path, "email\nok@example.com\n")
    assert stage.added == 1


def test_staging_works_on_a_readonly_ledger(tmp_path: Path) -> None:
    """``mailopsd plan`` stages in a read-only ledger (temporary tables only)."""
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.campaigns.put("acme", "default", {"name": "ACME"}, NOW)
    _import(ledger, _stage(ledger, tmp_path, FIRST))
    ledger.close()
    readonly = Ledger.open_readonly(tmp_path)
    assert readonly is not None
    stage = _stage(readonly, tmp_path, "email\nada@example.com\nnew@example.com\n")
    assert (stage.added, stage.updated, stage.removed) == (1, 1, 2)
    readonly.close()


def test_scratch_ledger_is_private_and_empty(tmp_path: Path) -> None:
    """A plan without a ledger stages in a scratch one: everything is added."""
    scratch = Ledger.scratch()
    stage = _stage(scratch, tmp_path, FIRST)
    assert (stage.added, stage.removed) == (3, 0)
    assert scratch.campaigns.active() == {}
    scratch.close()

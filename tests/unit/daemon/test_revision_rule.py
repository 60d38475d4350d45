"""The revision rule of a shared ledger: which daemons hold no work, from their rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailopsd.daemon.cluster import BEHIND, STANDING_BY, STOPPED, WORKING, outvoted
from mailopsd.state.daemons import DaemonRow

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LIVE_S = 15.0


def _row(name: str, role: str, revision: str, *, age_s: float = 1.0) -> DaemonRow:
    beat = NOW - timedelta(seconds=age_s)
    return DaemonRow(name, "host", 1, role, revision, NOW - timedelta(hours=1), beat)


def test_a_daemon_alone_or_agreeing_holds_its_work() -> None:
    assert outvoted("A", [], NOW, LIVE_S) is None
    assert (
        outvoted("A", [_row("w", WORKING, "A"), _row("s", STANDING_BY, "A")], NOW, LIVE_S) is None
    )


def test_on_a_tie_the_working_daemons_revision_wins() -> None:
    """One working on A, this one on B: this one waits; the working one keeps working."""
    assert outvoted("B", [_row("w", WORKING, "A")], NOW, LIVE_S) == ("A", 1)
    assert outvoted("A", [_row("s", STANDING_BY, "B")], NOW, LIVE_S) is None  # the working one
    two_each = [_row("w", WORKING, "A"), _row("a", STANDING_BY, "A"), _row("b", BEHIND, "B")]
    assert outvoted("B", two_each, NOW, LIVE_S) == ("A", 2)


def test_a_revision_more_daemons_run_wins_even_over_the_working_one() -> None:
    """The working daemon on A, two others on B: it lets the work go."""
    others = [_row("b1", BEHIND, "B"), _row("b2", BEHIND, "B")]
    assert outvoted("A", others, NOW, LIVE_S) == ("B", 2)
    # ... and one of those on B, alone with the other, then asks for it.
    assert outvoted("B", [_row("a", BEHIND, "A"), _row("b2", BEHIND, "B")], NOW, LIVE_S) is None


def test_daemons_stopped_or_not_heard_from_do_not_count() -> None:
    """A daemon that stopped says so; one killed counts until its heartbeat ages."""
    stopped = [_row("w", STOPPED, "A")]
    assert outvoted("B", stopped, NOW, LIVE_S) is None
    killed = [_row("w", WORKING, "A", age_s=LIVE_S + 1)]
    assert outvoted("B", killed, NOW, LIVE_S) is None
    just_killed = [_row("w", WORKING, "A", age_s=LIVE_S - 1)]
    assert outvoted("B", just_killed, NOW, LIVE_S) == ("A", 1)

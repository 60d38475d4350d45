"""Campaign leases on a real PostgreSQL: who takes what, sharing, takeover, a lost session.

Two daemons' ledgers (``leases=True``, one session each) and their :class:`Leases`; the
daemons' rows, which a round reads, are written here as each daemon would write its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailopsd.config.models import Config
from mailopsd.daemon.cluster import STOPPED, WORKING
from mailopsd.daemon.leases import Leases, fair_share, groups_of, lease_key
from mailopsd.state import postgres
from mailopsd.state.daemons import DaemonRow
from mailopsd.state.errors import StorageError, StorageLeasesLostError
from mailopsd.state.ledger import Ledger
from tests.configs import loads
from tests.dispatch_setup import campaign_tree, write_config, write_leads

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _box(login: str) -> dict[str, Any]:
    return {
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_username": login,
        "smtp_password": "pw",
        "from_name": "A",
        "from_email": f"{login}@example.com",
        "daily_limit": 100,
    }


def _config(directory: Path, campaigns: dict[str, dict[str, Any]], **sections: Any) -> Config:
    trees = {name: campaign_tree(credentials) for name, credentials in campaigns.items()}
    write_leads(directory / "leads.csv", 1)
    return loads(write_config(directory, trees, **sections)).config


def _row(leases: Leases, *, role: str = WORKING, age_s: float = 1.0) -> DaemonRow:
    beat = NOW - timedelta(seconds=age_s)
    return DaemonRow(leases.id, "host", 1, role, "r", NOW, beat, "", tuple(sorted(leases.held)))


@pytest.fixture
def two(postgres_dsn: str) -> Iterator[tuple[Ledger, Ledger]]:
    first = Ledger.connect(postgres_dsn, leases=True)
    second = Ledger.connect(postgres_dsn, leases=True)
    try:
        yield first, second
    finally:
        first.close()
        second.close()
        postgres.close_pools()


def test_campaigns_that_share_a_mailbox_are_one_group(tmp_path: Path) -> None:
    """north and south name mailbox ada: held together; solo has its own mailboxes."""
    config = _config(
        tmp_path,
        {
            "north": {"shared": {"mailbox": "ada"}},
            "south": {"shared": {"mailbox": "ada"}, "own": _box("bob")},
            "solo": {"x": _box("x")},
        },
        mailboxes={"ada": _box("ada")},
    )
    assert groups_of(config) == [("north", "south"), ("solo",)]
    assert fair_share(3, 2) == 2
    assert fair_share(0, 1) == 0


def test_two_daemons_share_the_work_and_one_takes_over_when_the_other_dies(
    tmp_path: Path, two: tuple[Ledger, Ledger]
) -> None:
    """The first alone takes all four campaigns; the second joins and gets half, one at a
    time; the first dies (its session closes): the second takes its campaigns at the
    next round but one."""
    config = _config(tmp_path, {name: {"b": _box(name)} for name in ("a", "b", "c", "d")})
    first_ledger, second_ledger = two
    first, second = Leases("first", 15.0), Leases("second", 15.0)
    change = first.round(first_ledger, config, [], NOW)
    assert first.held == change.taken == {"a", "b", "c", "d"}
    assert not second.round(second_ledger, config, [_row(first)], NOW)  # none free
    for _ in range(4):  # the first lets one go a round, the second takes it
        first.round(first_ledger, config, [_row(second)], NOW)
        second.round(second_ledger, config, [_row(first)], NOW)
    assert len(first.held) == len(second.held) == 2
    assert first.held | second.held == {"a", "b", "c", "d"}
    assert first_ledger.leases_taken() == {lease_key(name) for name in "abcd"}

    first_ledger.close()  # it dies: the server lets its leases go with its session
    kept = second.held
    # Its row still looks live, and says it holds them: the second, though it holds its
    # fair share, takes them at once.
    change = second.round(second_ledger, config, [_row(first)], NOW)
    assert change.taken == {"a", "b", "c", "d"} - kept
    assert second.held == {"a", "b", "c", "d"}


def test_a_campaign_let_go_is_left_a_round_to_the_daemon_with_room(
    tmp_path: Path, two: tuple[Ledger, Ledger]
) -> None:
    """A daemon holding both campaigns lets one go for a daemon that joined with none;
    free and claimed by no row, it is left to that one for a round, and taken back by
    the first only when nobody took it."""
    config = _config(tmp_path, {name: {"b": _box(name)} for name in ("a", "b")})
    first_ledger, _ = two
    first = Leases("first", 15.0)
    first.round(first_ledger, config, [], NOW)
    joined = _row(Leases("joined", 15.0))  # live, holding nothing: the share is 1 each
    assert first.round(first_ledger, config, [joined], NOW).let_go == {"b"}
    assert not first.round(first_ledger, config, [joined], NOW)  # left to the one joined
    assert first.round(first_ledger, config, [joined], NOW).taken == {"b"}


def test_a_daemon_that_stopped_does_not_count_and_its_work_is_taken_at_once(
    tmp_path: Path, two: tuple[Ledger, Ledger]
) -> None:
    config = _config(tmp_path, {name: {"b": _box(name)} for name in ("a", "b")})
    first_ledger, second_ledger = two
    first, second = Leases("first", 15.0), Leases("second", 15.0)
    first.round(first_ledger, config, [], NOW)
    second.round(second_ledger, config, [_row(first)], NOW)
    first.round(first_ledger, config, [_row(second)], NOW)
    second.round(second_ledger, config, [_row(first)], NOW)
    assert len(first.held) == len(second.held) == 1
    stopped = _row(first, role=STOPPED)
    first_ledger.close()
    assert second.round(second_ledger, config, [stopped], NOW).taken == first.held


def test_a_lost_session_loses_the_leases_and_its_writes_are_fenced(
    tmp_path: Path, two: tuple[Ledger, Ledger], postgres_dsn: str
) -> None:
    """The first daemon's session is dropped by the server: the second takes its
    campaign; the first, at its next round, holds nothing, and what it wrote fenced on
    the old session is refused."""
    config = _config(tmp_path, {"a": {"b": _box("a")}})
    first_ledger, second_ledger = two
    first, second = Leases("first", 15.0), Leases("second", 15.0)
    assert first.round(first_ledger, config, [], NOW).taken == {"a"}
    fence = first.session
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objid = %s::oid",
            (lease_key("a") % (1 << 32),),
        )
    stopped = _row(first, role=STOPPED)
    assert second.round(second_ledger, config, [stopped], NOW).taken == {"a"}
    with pytest.raises(StorageError):  # the lost session (the daemon pauses on it)
        first.round(first_ledger, config, [_row(second)], NOW)
    change = first.round(first_ledger, config, [_row(second)], NOW)
    assert change.let_go == {"a"}
    assert first.held == frozenset()
    assert first.session != fence
    with (
        pytest.raises(StorageLeasesLostError, match="nothing of theirs was written"),
        first_ledger.transaction(fence),
    ):
        first_ledger.campaigns.put("a", "default", {"name": "A"}, NOW)
    assert first_ledger.campaigns.active() == {}


def test_a_daemon_behind_lets_everything_go(tmp_path: Path, two: tuple[Ledger, Ledger]) -> None:
    config = _config(tmp_path, {"a": {"b": _box("a")}})
    first_ledger, second_ledger = two
    first, second = Leases("first", 15.0), Leases("second", 15.0)
    first.round(first_ledger, config, [], NOW)
    assert first.round(first_ledger, config, [], NOW, behind=True).let_go == {"a"}
    assert second.round(second_ledger, config, [_row(first)], NOW).taken == {"a"}


def test_a_once_run_takes_only_what_is_free_and_all_of_it(
    tmp_path: Path, two: tuple[Ledger, Ledger]
) -> None:
    config = _config(tmp_path, {name: {"b": _box(name)} for name in ("a", "b", "c")})
    first_ledger, second_ledger = two
    first = Leases("first", 15.0)
    first_ledger.take_leases([lease_key("a")])
    once = Leases("once", 15.0, member=False)
    assert once.round(second_ledger, config, [], NOW).taken == {"b", "c"}
    assert first.round(first_ledger, config, [], NOW).taken == {"a"}

"""The rows a shared ledger keeps for its daemons: each one's row, each mailbox's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailopsd.state.daemons import DaemonRow
from mailopsd.state.errors import StorageCorruptError
from mailopsd.state.statefile import CredentialState
from tests.ledger_setup import Ledgers

NOW = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)
SECOND = NOW.replace(microsecond=0)  # a state file's times are to the second


def test_a_daemons_row_is_written_over_and_old_ones_forgotten(ledgers: Ledgers) -> None:
    ledger = ledgers.open()
    row = DaemonRow("b-1", "b", 7, "standing by", "git:abc", NOW, NOW)
    ledger.daemons.beat(row)
    holding = DaemonRow("a-1", "a", 9, "working", None, NOW, NOW, "note", ("north", "south"))
    ledger.daemons.beat(holding)
    later = DaemonRow("b-1", "b", 8, "behind", "git:def", NOW, NOW + timedelta(seconds=5), "why")
    ledger.daemons.beat(later)
    assert [r.id for r in ledger.daemons.all()] == ["a-1", "b-1"]
    assert ledgers.open().daemons.all() == [holding, later]  # times kept to the microsecond
    assert ledger.daemons.forget_before(NOW + timedelta(seconds=1)) == 1
    assert [r.id for r in ledger.daemons.all()] == ["b-1"]


def test_mailbox_states_are_written_as_they_change_and_read_back(ledgers: Ledgers) -> None:
    ledger = ledgers.open()
    reason = "bounce rate 50.0% (3/6) > 20%"
    disabled = CredentialState(disabled_at=SECOND, disabled_reason=reason)
    ledger.mailbox_states.write({"camp/a": disabled, "camp/b": CredentialState()}, set(), NOW)
    update = {"reenabled_at": SECOND, "bounce_window_start": SECOND}
    reenabled = disabled.model_copy(update=update)
    ledger.mailbox_states.write({"camp/a": reenabled}, {"camp/b"}, NOW)
    assert ledgers.open().mailbox_states.all() == {"camp/a": reenabled}


def test_a_mailbox_state_that_is_not_one_is_named(ledgers: Ledgers) -> None:
    ledger = ledgers.open()
    with ledger.transaction():
        ledger._database.connection.execute(
            "INSERT INTO mailbox_states (key, state, written_at) VALUES ('camp/a', '{', 'x')"
        )
    with pytest.raises(StorageCorruptError, match="state of mailbox camp/a cannot be read"):
        ledger.mailbox_states.all()

"""Several daemons on one shared ledger: each one's heartbeat, and the revision rule.

The daemons of a shared ledger share its campaigns (their leases: see :mod:`.leases`).
Each writes its row in the ledger (:class:`~mailopsd.state.daemons.Daemons`): who it
is, what it does, its revision and the campaigns it holds, every few seconds and when
what it holds changes; one waiting on a revision that does not win, each time it asks.
``status`` shows them all.

The mailboxes' states (disabled, re-enabled, stopped by AUTH failures) are written into
the ledger (:class:`~mailopsd.state.mailboxstates.MailboxStates`) by the daemon that
holds their campaign, as they change; every other daemon takes them from there into its
own state file at each heartbeat, and a daemon that takes a campaign takes its
mailboxes' states first: what one disabled stays disabled, and a re-enable one applied
holds for the next.

The revision rule: the daemons work on one config revision. A daemon is *live* while
its heartbeat is younger than ``live_s``; a revision that more live daemons run than
this one's wins, and on a tie that of the working daemon whose id sorts first does. A
daemon on a revision that does not win holds nothing: one starting waits without taking
a lease, and one working lets its campaigns go (others on the winning revision take
them). It says so in its log and its row, and works again once it runs that revision. A
daemon that stops says so in its row, so the others need not wait for its heartbeat to
age.

Heartbeats are the writers' clocks (UTC): the machines' clocks are taken to agree within
a few seconds, as NTP keeps them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailopsd.refs import parse_credential_key
from mailopsd.state.daemons import DaemonRow
from mailopsd.state.errors import StorageError, StorageInUseError
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = [
    "BEHIND",
    "LIVE_S",
    "STANDING_BY",
    "STOPPED",
    "WORKING",
    "BehindError",
    "Presence",
    "identity",
    "outvoted",
]

WORKING = "working"
STANDING_BY = "standing by"
BEHIND = "behind"
"""Waiting on a revision that does not win: it takes no lease."""
STOPPED = "stopped"
LIVE_S = 15.0
"""How young a heartbeat is, by default, for its daemon to count as live."""

logger = logging.getLogger("mailopsd.daemon")

# Rows of daemons not heard from in this long are deleted by the working daemon.
_FORGET_AFTER = timedelta(days=7)


class BehindError(StorageInUseError):
    """This daemon's revision does not win: it holds nothing until it runs the one that does."""


def identity(state_dir: Path) -> str:
    """The daemon's id: its host and a digest of its state directory (the same each start)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]
    return f"{socket.gethostname()}-{digest}"


def outvoted(
    revision: str | None,
    others: Iterable[DaemonRow],
    now: datetime,
    live_s: float,
    *,
    working_as: str | None = None,
) -> tuple[str, int] | None:
    """The revision that wins over ``revision``, and how many live daemons run it; or None.

    On a tie, the revision of the working daemon whose id sorts first wins (every
    daemon finds the same one).

    Args:
        revision: This daemon's revision.
        others: The other daemons' rows (this one's is left out).
        now: The time heartbeats are aged against.
        live_s: How young a heartbeat is for its daemon to count.
        working_as: This daemon's id, if it works (it then counts among the working).
    """
    live = [
        row
        for row in others
        if row.role != STOPPED and (now - row.heartbeat_at).total_seconds() <= live_s
    ]
    counts = Counter(row.revision for row in live)
    mine = counts[revision] + 1
    more = sorted(
        ((count, str(other)) for other, count in counts.items() if other != revision),
        reverse=True,
    )
    if more and more[0][0] > mine:
        return more[0][1], more[0][0]
    working = sorted((row.id, row.revision) for row in live if row.role == WORKING)
    if working_as is not None:
        working = sorted([*working, (working_as, revision)])
    first = working[0][1] if working else revision
    if first != revision and counts[first] == mine:
        return str(first), mine
    return None


def _behind_reason(revision: str | None, winner: tuple[str, int]) -> str:
    other, count = winner
    others = "1 other daemon runs" if count == 1 else f"{count} other daemons run"
    return (
        f"on revision {revision}, while {others} {other}: this daemon holds no work until "
        "it runs that revision"
    )


class Presence:
    """This daemon's row in a shared ledger, and the revision rule as it applies to it."""

    def __init__(self, state_dir: Path, *, live_s: float = LIVE_S) -> None:
        """Not written yet.

        Args:
            state_dir: The state directory (the daemon's id comes from it).
            live_s: How young a heartbeat is for its daemon to count (and how long one
                on another revision may wait after a daemon dies without a word).
        """
        self.id = identity(state_dir)
        self._state_dir = state_dir
        self._live_s = live_s
        self._started = datetime.now(UTC)
        self._waiting: Ledger | None = None  # the connection while standing by
        self._behind: str | None = None  # why it did not open the ledger last time
        self._asked = False  # the first answer is logged by the start's wait
        self._revision: str | None = None  # the one last written
        self._written = False  # whether this daemon wrote its row
        self._shared: dict[str, CredentialState] = {}  # the mailbox states last written

    def _verdict(self, ledger: Ledger, revision: str | None, *, working: bool) -> str | None:
        """Why a daemon on ``revision`` holds no work now (see :func:`outvoted`), or None."""
        winner = outvoted(
            revision,
            self.others(ledger),
            datetime.now(UTC),
            self._live_s,
            working_as=self.id if working else None,
        )
        return None if winner is None else _behind_reason(revision, winner)

    def _row(
        self, role: str, revision: str | None, note: str | None, holds: Iterable[str] = ()
    ) -> DaemonRow:
        self._revision, self._written = revision, True
        return DaemonRow(
            self.id,
            socket.gethostname(),
            os.getpid(),
            role,
            revision,
            self._started,
            datetime.now(UTC),
            note or "",
            tuple(sorted(holds)),
        )

    def others(self, ledger: Ledger) -> list[DaemonRow]:
        """The other daemons' rows.

        Raises:
            StorageError: They could not be read.
        """
        return [row for row in ledger.daemons.all() if row.id != self.id]

    def beat(self, ledger: Ledger, revision: str | None, holds: Iterable[str] = ()) -> str | None:
        """Write the working daemon's row; why it must let its work go, or None.

        Args:
            ledger: The daemon's ledger.
            revision: The revision it applied.
            holds: The campaigns whose leases it holds.

        Raises:
            StorageError: The row could not be written or the others read.
        """
        reason = self._verdict(ledger, revision, working=True)
        role = WORKING if reason is None else BEHIND
        ledger.daemons.beat(self._row(role, revision, reason, holds))
        if forgotten := ledger.daemons.forget_before(datetime.now(UTC) - _FORGET_AFTER):
            logger.info("forgot daemons not heard from in 7 days count=%d", forgotten)
        return reason

    def stand_by(self, revision: str | None) -> None:
        """Write this row as standing by; raise :class:`BehindError` if outvoted.

        Its own connection (not the daemon's) is kept open until :meth:`close`.

        Raises:
            BehindError: Another revision wins: no lease is to be taken.
            StorageError: The row could not be written or the others read.
        """
        if self._waiting is None:
            self._waiting = Ledger.open(self._state_dir)
        ledger = self._waiting
        reason = self._verdict(ledger, revision, working=False)
        if reason != self._behind and self._asked and reason is None:
            logger.info("revision %s wins now: this daemon asks for the work again", revision)
        elif reason != self._behind and self._asked:
            logger.warning("standing by: %s", reason)
        self._behind, self._asked = reason, True
        ledger.daemons.beat(self._row(STANDING_BY if reason is None else BEHIND, revision, reason))
        if reason is None:
            return
        raise BehindError(f"ledger {ledger.name}: this daemon is {reason}")

    def take_states(
        self, ledger: Ledger, state: StateFile, keep: frozenset[str] = frozenset()
    ) -> StateFile:
        """``state`` with the ledger's mailbox states, but those of the campaigns ``keep``.

        The daemon writes the states of the campaigns it holds (:meth:`share`), and takes
        the others' from the ledger, where their holders wrote them: those it holds
        (``keep``) stay as its state file has them. A ledger with no states yet (the first
        daemon to work on it) leaves ``state`` as it is; its entries go in at the next
        :meth:`share`.

        Raises:
            StorageError: They could not be read.
        """
        shared = ledger.mailbox_states.all()
        self._shared = dict(shared)  # what the ledger has: share() writes what differs
        if not shared:
            return state
        current = state.credentials
        taken = {
            key: entry
            for key, entry in shared.items()
            if parse_credential_key(key)[0] not in keep and current.get(key) != entry
        }
        if not taken:
            return state
        campaigns = sorted({parse_credential_key(key)[0] for key in taken})
        logger.info(
            "mailbox states taken from the ledger count=%d campaigns=%s",
            len(taken),
            ",".join(campaigns),
        )
        return state.model_copy(update={"credentials": {**current, **taken}})

    def share(
        self,
        ledger: Ledger,
        state: StateFile,
        at: datetime,
        held: frozenset[str] | None = None,
        applied: frozenset[str] = frozenset(),
    ) -> None:
        """Write the mailbox states that changed since last written into the ledger.

        With ``held``, only those campaigns' (the others' are their holders' to write),
        and those of ``applied``: entries a config change just reset or re-enabled.

        Raises:
            StorageError: They could not be written (they are written again next time).
        """

        def mine(key: str) -> bool:
            return held is None or key in applied or parse_credential_key(key)[0] in held

        current = {key: entry for key, entry in state.credentials.items() if mine(key)}
        changed = {key: entry for key, entry in current.items() if self._shared.get(key) != entry}
        removed = {key for key in self._shared if mine(key) and key not in current}
        if changed or removed:
            ledger.mailbox_states.write(changed, removed, at)
            for key in removed:
                self._shared.pop(key, None)
            self._shared.update(changed)

    def stop(self, ledger: Ledger | None) -> None:
        """Say this daemon stopped (through ``ledger``, or the standby connection); close it."""
        with suppress(StorageError):  # the row then ages: the others wait live_s at most
            writer = ledger if ledger is not None else self._waiting
            if writer is not None and self._written:
                writer.daemons.beat(self._row(STOPPED, self._revision, ""))
        self.close()

    def close(self) -> None:
        """Close the standby connection, if open."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            with suppress(StorageError):
                waiting.close()

"""The campaigns the daemon works on, on a shared ledger: its lease rounds.

Each second (and between the ticks of a long backlog) the daemon takes and lets go
campaigns' leases (:mod:`.leases` decides which); what it takes it recovers before any
send: the sends its last holder left without an outcome become ``unknown``, the
mailboxes' states are taken from the ledger, the config is applied again on them, and
the credentials' rates are checked. The dispatcher and the inbox then work on the
campaigns held only.

:class:`LeaseRounds` is a part of the daemon (:class:`~.loop.Daemon`), whose state and
state file it shares.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailopsd.config.loader import LoadedConfig, collector_paused
from mailopsd.daemon.cluster import Presence
from mailopsd.daemon.leases import LeaseChange, Leases
from mailopsd.daemon.storage import StoragePause, unwritable
from mailopsd.dispatch.dispatcher import Dispatcher
from mailopsd.errors import StateError
from mailopsd.inbox.service import Inbox
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import StateFile

__all__ = ["LeaseRounds"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")


class LeaseRounds:
    """The daemon's part that takes, lets go and recovers campaigns' leases."""

    # The daemon's, set in its __init__: declared here so that their use is type-checked.
    state: StateFile
    loaded: LoadedConfig | None
    _ledger: Ledger | None
    _presence: Presence | None
    _leases: Leases | None
    _dispatcher: Dispatcher | None
    _inbox: Inbox | None
    _storage: StoragePause
    _stop: threading.Event
    _wake: threading.Event
    _serving: bool
    _unrecovered: frozenset[str]
    _lease_at: float
    _dispatch_due: bool
    _left: str

    if TYPE_CHECKING:  # the daemon's own, or its other parts'

        def _now(self) -> datetime: ...

        def _set_state(self, state: StateFile) -> None: ...

        def _apply(self, loaded: LoadedConfig) -> None: ...

        def _reconcile_failed(self, err: BaseException) -> None: ...

        def _storage_failed(self, err: BaseException, doing: str) -> None: ...

        def _heartbeat(self) -> None: ...

    def _held(self) -> frozenset[str] | None:
        """The campaigns this daemon may work on now: None, every one (its own ledger)."""
        if self._leases is None:
            return None
        return self._leases.held - self._unrecovered

    def _lease_round(self) -> None:
        """On a shared ledger, take and let go campaigns' leases (see :mod:`.leases`).

        What it takes it first recovers: the sends its last holder left without an
        outcome are marked ``unknown``, the mailboxes' states are taken from the ledger,
        and the credentials' rates checked.
        """
        leases, ledger, loaded, presence = self._leases, self._ledger, self.loaded, self._presence
        if leases is None or ledger is None or loaded is None or presence is None:
            return
        if self._storage.problem is not None or self._stop.is_set():
            return
        self._lease_at = time.monotonic()
        try:
            rows = presence.others(ledger) if leases.member else []
            change = leases.round(ledger, loaded.config, rows, datetime.now(UTC))
            self._unrecovered = (self._unrecovered | change.taken) & leases.held
            if change and leases.member:
                self._heartbeat()  # the others see at once what it holds
            if self._unrecovered:
                self._recover_taken(ledger, loaded, presence, leases)
        except StorageError as err:
            if not unwritable(err):
                raise
            self._storage_failed(err, "taking the campaigns' leases")
            return
        self._after_round(change, loaded, leases)

    def _after_round(self, change: LeaseChange, loaded: LoadedConfig, leases: Leases) -> None:
        """Follow a lease round: the inbox, a dispatch now, the log of a run --once."""
        if self._inbox is not None:
            self._inbox.hold(self._held())
        if change.taken and self._serving:
            self._dispatch_due = True  # its sends go on now, not at the next dispatch
            self._wake.set()
        if not leases.member:
            left = ",".join(sorted(set(loaded.config.campaigns) - leases.held))
            if left and left != self._left:
                logger.warning("left to the daemons that hold them campaigns=%s", left)
            self._left = left

    def _recover_taken(
        self, ledger: Ledger, loaded: LoadedConfig, presence: Presence, leases: Leases
    ) -> None:
        """Recover the campaigns just taken, before any of their sends (see above).

        Raises:
            StorageError: A write was refused.
        """
        assert self._dispatcher is not None  # noqa: S101 - start() made it
        taken, now = self._unrecovered, self._now()
        state = presence.take_states(ledger, self.state, keep=leases.held - taken)
        unknown = self._dispatcher.recover(loaded, now, campaigns=taken)
        if unknown:
            logger.warning(
                "sends without outcome marked unknown count=%d campaigns=%s",
                unknown,
                ",".join(sorted(taken)),
            )
        self._set_state(state)
        # The config applied again on the states taken: a re-enable this daemon applied
        # while another held the campaign, and that one had not, holds.
        try:
            with collector_paused():
                self._apply(loaded)
        except StorageError:
            raise
        except StateError as err:  # as a reload's would be (a leads file gone, ...)
            self._reconcile_failed(err)
        self._set_state(
            self._dispatcher.check_shared(loaded, self.state, self._now(), campaigns=taken)
        )
        self._unrecovered = frozenset()

    def _held_still(self, leases: Leases) -> frozenset[str]:
        """The campaigns whose leases the ledger's session still holds (none if it was lost)."""
        ledger = self._ledger
        return (
            leases.held if ledger is not None and ledger.sessions == leases.session else frozenset()
        )

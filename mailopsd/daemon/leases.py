"""The campaigns a daemon works on, on a shared ledger: their leases.

Each campaign has a lease in the ledger: an advisory lock of the holder's session
(:meth:`~mailopsd.state.ledger.Ledger.take_leases`), which the server lets go with the
session, so a daemon that stops, dies or is cut off from the ledger lets its campaigns
go without a word. A daemon sends for, and reads the mailboxes of, the campaigns it
holds, and no other: every intent is written on the session that holds its campaign's
lease (:attr:`Leases.session`), so no two daemons can send the same step to the same
lead, even while leases move. Advisory locks rather than rows with an expiry: nothing
to renew, and the server says at once who holds what; what bounds a takeover is how
soon the server notices a session gone (at once for a process that died, the TCP
keepalives for a machine cut off: see :mod:`mailopsd.state.postgres`) and one or two
lease rounds. Advisory lock keys are 32-bit digests of the campaigns' ids: two campaigns
whose digests agree are held together, as one.

Campaigns that share a mailbox are held together, as one *group*: the mailbox's daily
cap, rate limit, bounce window, backoff and inbox are one, and only one daemon can keep
them.

Each round (every second, and between ticks of a long backlog) a daemon on the winning
revision (see :mod:`.cluster`):

- lets go the campaigns no longer in the config, and any group it holds in part;
- takes free groups while it holds fewer than its fair share (the groups divided by the
  live daemons that work, rounded up); and beyond it, any free group a live daemon's row
  still says it holds (that daemon is gone, its row not yet aged) or found free two
  rounds running (let go, and the daemon that should have taken it did not);
- lets one group go when it holds more than its share while another live daemon holds
  less, so a daemon that joins gets work.

A daemon that takes a campaign first marks the sends its last holder left without an
outcome ``unknown`` (never sent again), and takes the mailboxes' states from the ledger.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.config.models import Config
from mailopsd.daemon.cluster import WORKING
from mailopsd.refs import sender_ref
from mailopsd.state.daemons import DaemonRow
from mailopsd.state.ledger import Ledger

__all__ = ["LeaseChange", "Leases", "fair_share", "groups_of", "lease_key"]

logger = logging.getLogger("mailopsd.daemon")


def groups_of(config: Config) -> list[tuple[str, ...]]:
    """The config's campaigns in groups that share no mailbox with each other, sorted."""
    parent = {campaign_id: campaign_id for campaign_id in config.campaigns}

    def root(campaign_id: str) -> str:
        while parent[campaign_id] != campaign_id:
            parent[campaign_id] = parent[parent[campaign_id]]
            campaign_id = parent[campaign_id]
        return campaign_id

    users: dict[tuple[str, str], str] = {}  # a mailbox, and the first campaign naming it
    for campaign_id, campaign in config.campaigns.items():
        for credential_id, credential in campaign.smtp_credentials.items():
            sender = sender_ref((campaign_id, credential_id), credential.shared_as)
            first = users.setdefault(sender, campaign_id)
            parent[root(campaign_id)] = root(first)
    groups: dict[str, list[str]] = {}
    for campaign_id in config.campaigns:
        groups.setdefault(root(campaign_id), []).append(campaign_id)
    return sorted(tuple(sorted(group)) for group in groups.values())


def lease_key(campaign_id: str) -> int:
    """The key of ``campaign_id``'s lease: a signed 32-bit digest of its id.

    Two campaigns whose digests agree share one lease, and are held together.
    """
    digest = hashlib.sha256(campaign_id.encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _held_groups(groups: list[tuple[str, ...]], keys: Iterable[int]) -> list[tuple[str, ...]]:
    held = set(keys)
    return [group for group in groups if all(lease_key(c) in held for c in group)]


def _groups_with(groups: list[tuple[str, ...]], campaigns: Iterable[str]) -> list[tuple[str, ...]]:
    named = set(campaigns)
    return [group for group in groups if named & set(group)]


def _free(
    groups: list[tuple[str, ...]], mine: list[tuple[str, ...]], taken: frozenset[int]
) -> list[tuple[str, ...]]:
    """The groups none of whose leases any session holds."""
    return [
        group
        for group in groups
        if group not in mine and not any(lease_key(c) in taken for c in group)
    ]


def fair_share(groups: int, daemons: int) -> int:
    """How many groups each of ``daemons`` live daemons holds when the work is even."""
    return math.ceil(groups / max(daemons, 1))


@dataclass(frozen=True)
class LeaseChange:
    """What a round changed: the campaigns taken, and those let go."""

    taken: frozenset[str] = frozenset()
    let_go: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.taken or self.let_go)


@dataclass
class Leases:
    """The campaigns this daemon holds on a shared ledger, and its rounds.

    Attributes:
        id: This daemon's id (its row is left out of the others').
        live_s: How young a heartbeat is for its daemon to count as live.
        member: A daemon that counts (one that writes its row); a ``run --once`` is
            not: it takes only what no daemon holds, all of it.
    """

    id: str
    live_s: float
    member: bool = True
    held: frozenset[str] = frozenset()
    """The campaigns held now (their leases are this session's)."""
    session: int = 0
    """The ledger session the leases are held in: every write of the held campaigns'
    sends is fenced on it (``Ledger.transaction(fence=...)``)."""
    _free_before: frozenset[tuple[str, ...]] = field(default_factory=frozenset)
    _config: Config | None = None
    _groups: list[tuple[str, ...]] = field(default_factory=list)

    def _groups_of(self, config: Config) -> list[tuple[str, ...]]:
        if config is not self._config:
            self._config, self._groups = config, groups_of(config)
        return self._groups

    def round(
        self,
        ledger: Ledger,
        config: Config,
        rows: Iterable[DaemonRow],
        now: datetime,
        *,
        behind: bool = False,
    ) -> LeaseChange:
        """Take and let go leases as the module says; what changed.

        Args:
            ledger: The daemon's own ledger (whose session holds the leases).
            config: The config applied (its campaigns and their mailboxes).
            rows: The daemons' rows (this one's is left out).
            now: The time heartbeats are aged against.
            behind: This daemon's revision does not win: it lets every lease go.

        Raises:
            StorageError: The ledger could not be asked (the leases held are as the
                session has them: none, if it was lost).
        """
        previous = self.held
        groups = self._groups_of(config)
        if behind:
            self._let_go(ledger, previous)
            self.session = ledger.sessions
            return LeaseChange(let_go=previous)
        held_keys = ledger.take_leases(())  # the session's (a lost one is taken again)
        if held_keys is None:  # SQLite: its one daemon holds every campaign
            wanted = frozenset(campaign for group in groups for campaign in group)
            self.held, self.session = wanted, ledger.sessions
            return LeaseChange(wanted - previous, previous - wanted)
        # Held in a session lost since, they were held by none meanwhile: taken anew.
        before = previous if ledger.sessions == self.session else frozenset()
        mine = _held_groups(groups, held_keys)
        release = {lease_key(c) for c in before} | held_keys
        release -= {lease_key(c) for group in mine for c in group}  # gone, or held in part
        live = self._live_others(rows, now)
        share = fair_share(len(groups), len(live) + 1)
        free = _free(groups, mine, ledger.leases_taken())
        if (
            self.member
            and len(mine) > share
            and any(len(_groups_with(groups, row.holds)) < share for row in live.values())
        ):
            release.update(lease_key(c) for c in mine.pop())  # one, for a daemon with less
        room = max(share - len(mine), 0) if self.member else len(free)
        # Beyond its share, a daemon takes a group that is free though a live daemon's
        # row says it holds it (that daemon is gone: its row has not aged yet), or that
        # stayed free a whole round (let go, and no daemon with room took it).
        claimed = {campaign for row in live.values() for campaign in row.holds}
        take = free[:room] + [
            group
            for group in free[room:]
            if group in self._free_before or claimed.intersection(group)
        ]
        self._free_before = frozenset(free) - set(take)
        if release:
            ledger.let_go(release)
        if take:
            held_keys = ledger.take_leases(lease_key(c) for group in take for c in group) or (
                frozenset()
            )
            mine = _held_groups(groups, held_keys)
            split = held_keys - {lease_key(c) for group in mine for c in group}
            if split:  # taken in part (another daemon took the rest meanwhile)
                ledger.let_go(split)
        self.held = frozenset(campaign for group in mine for campaign in group)
        self.session = ledger.sessions
        change = LeaseChange(self.held - before, previous - self.held)
        if change.taken:
            logger.info("leases taken campaigns=%s", ",".join(sorted(change.taken)))
        if change.let_go:
            logger.info("leases let go campaigns=%s", ",".join(sorted(change.let_go)))
        return change

    def _let_go(self, ledger: Ledger, campaigns: Iterable[str]) -> None:
        ledger.let_go(lease_key(campaign) for campaign in campaigns)
        self.held = self.held - set(campaigns)

    def _live_others(self, rows: Iterable[DaemonRow], now: datetime) -> Mapping[str, DaemonRow]:
        return {
            row.id: row
            for row in rows
            if row.id != self.id
            and row.role == WORKING
            and (now - row.heartbeat_at).total_seconds() <= self.live_s
        }

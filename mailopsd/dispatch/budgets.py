"""Each usable credential's budget for a tick: what its limits leave it at that instant.

A credential is usable when it is enabled, not blocked, not auto-disabled, not stopped
by AUTH failures, and not backing off. Its budget: step-1 sends left under its daily cap
(``daily_limit``, or lower while its ``ramp`` rises), sends left in its ``rate_limit``
window, whether the gap after its last send (``min_interval``, as drawn and recorded with
that send) is over. One ledger read answers every credential of the campaign (and one
more per distinct rate-limit period): a ramp and a spread add no query.

A mailbox shared by campaigns (top-level ``mailboxes``) has one budget across them: its
counters are those of all its uses added up (each campaign's read once a tick, put
together by ``state.mailboxes``, as ``status`` and ``/metrics`` do), it is unusable when
any use is disabled or stopped by AUTH failures, and within a tick the budget a campaign
leaves is where the next campaign that names it starts (``carried``). So that the first
campaign of a tick does not take the whole day, each campaign gets an even share of the
step-1 sends left (rounded up) with the campaigns after it in the tick's order; what a
campaign does not use passes on to the next, and to the next tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from mailopsd.config import pacing
from mailopsd.config.models import Campaign, Config, Credential
from mailopsd.config.periods import Period
from mailopsd.dispatch.rotation import Budget
from mailopsd.refs import CredentialRef, sender_ref
from mailopsd.state.ledger import Ledger
from mailopsd.state.mailboxes import UsageReads, mailbox_entry
from mailopsd.state.schema import unstamp
from mailopsd.state.sends import CredentialUsage
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["TickUsage", "credential_budgets", "daily_cap"]


def daily_cap(
    credential: Credential, *, first_send: str | None, entry: CredentialState, now: datetime
) -> int:
    """A credential's step-1 cap for the UTC day of ``now``: its ramp's, else ``daily_limit``.

    Args:
        credential: The credential.
        first_send: Its first counted send, as the ledger stores times (``None``: never).
        entry: Its entry in the state file (the last re-enable applied).
        now: The instant.
    """
    if credential.ramp is None:
        return credential.daily_limit
    first = unstamp(first_send) if first_send is not None else None
    return credential.daily_cap(first_send=first, reenabled_at=entry.reenabled_at, now=now)


@dataclass
class TickUsage:
    """A tick's reads of the ledger's counters, each campaign's read once.

    Attributes:
        ledger: The ledger (read only).
        config: The running config (which campaigns name each shared mailbox).
        day_start: The UTC midnight of the tick's day.
        carried: Each shared mailbox's budget as the last campaign that named it in this
            tick left it, by mailbox id.
    """

    ledger: Ledger
    config: Config
    day_start: datetime
    carried: dict[str, Budget] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    """Each campaign's place in the tick's order (campaigns take turns at being first)."""
    _held: dict[str, int] = field(default_factory=dict)  # step-1 sends left out of the share
    _windows: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    _reads: UsageReads = field(init=False)

    def __post_init__(self) -> None:
        self._reads = UsageReads(self.ledger, self.day_start)

    def uses(self, key: CredentialRef, credential: Credential) -> tuple[CredentialRef, ...]:
        """The campaigns' credentials that send as this one: a shared mailbox's every use."""
        if credential.shared_as is None:
            return (key,)
        return self.config.mailbox_uses.get(credential.shared_as, (key,))

    def usage(
        self, key: CredentialRef, credential: Credential
    ) -> tuple[CredentialRef, CredentialUsage]:
        """The credential's usage, all the uses of a shared mailbox together.

        Returns:
            The use that sent last (whose recorded gap counts) and the usage: step-1 sends
            today added up, the last send and its gap, the first send.
        """
        return self._reads.usage(self.uses(key, credential))

    def entry(
        self, state: StateFile, key: CredentialRef, credential: Credential
    ) -> CredentialState:
        """The credential's entry in the state file, its shared mailbox's disable included.

        See ``state.mailboxes.mailbox_entry``: any use disabled or stopped by AUTH
        failures stops the mailbox, and its last re-enable counts for the ramp.
        """
        return mailbox_entry(state, key, self.uses(key, credential))

    def share(self, mailbox_id: str, campaign_id: str, budget: Budget) -> Budget:
        """``budget`` with the campaign's share of the mailbox's step-1 sends left today.

        An even share among this campaign and those that name the mailbox after it in
        the tick's order (``order``), rounded up; without an order, all its uses.
        """
        uses = self.config.mailbox_uses.get(mailbox_id, ())
        here = self.order.get(campaign_id)
        if here is None:
            waiting = len(uses)
        else:
            waiting = 1 + sum(1 for use in uses if self.order.get(use[0], -1) > here)
        share = -(-budget.daily_left // max(1, waiting))  # rounded up
        self._held[mailbox_id] = budget.daily_left - share
        budget.daily_left = share
        return budget

    def carry(self, campaign: Campaign, budgets: Mapping[str, Budget]) -> None:
        """Keep what a campaign left of each shared mailbox's budget, for the next one."""
        for credential_id, budget in budgets.items():
            shared = campaign.smtp_credentials[credential_id].shared_as
            if shared is not None:
                budget.daily_left += self._held.pop(shared, 0)
                self.carried[shared] = budget

    def sent_since(
        self, key: CredentialRef, credential: Credential, period: Period, now: datetime
    ) -> int:
        """Sends of any step in the ``period`` before ``now``, all uses together."""
        total = 0
        for campaign_id, credential_id in self.uses(key, credential):
            window = self._windows.get((campaign_id, period.text))
            if window is None:
                window = self.ledger.sends.since(campaign_id, period.subtract_from(now))
                self._windows[campaign_id, period.text] = window
            total += window.get(credential_id, 0)
        return total


def _interval_free(
    key: CredentialRef, credential: Credential, usage: CredentialUsage, now: datetime
) -> bool:
    """Tell whether the gap after the credential's last send (by ``key``) is over."""
    _, _, last, gap_s, _ = usage
    if last is None or (credential.min_interval is None and gap_s is None):
        return True
    until = pacing.next_send_at(
        credential.min_interval,
        campaign_id=key[0],
        credential_id=key[1],
        last=unstamp(last),
        recorded_gap_s=gap_s,
    )
    return until is None or until <= now


def _is_usable(
    credential: Credential,
    entry: CredentialState,
    until: tuple[datetime, int] | None,
    now: datetime,
) -> bool:
    """Tell whether it may send: enabled, and (no use of) it disabled or stopped."""
    if not credential.enabled or credential.status == "blocked":
        return False
    if entry.is_disabled(credential.reenabled_at) or entry.auth_failed_at is not None:
        return False
    return until is None or until[0] <= now


def credential_budgets(
    reads: TickUsage,
    campaign_id: str,
    campaign: Campaign,
    *,
    state: StateFile,
    backoff: Mapping[CredentialRef, tuple[datetime, int]],
    per_tick: int,
    now: datetime,
) -> dict[str, Budget]:
    """The budget of each usable credential of a campaign at ``now``, by credential id.

    Args:
        reads: The tick's reads of the ledger, and the shared mailboxes' budgets so far.
        campaign_id: The campaign.
        campaign: Its config.
        state: The state file (disables, AUTH failures, re-enables).
        backoff: Until when each backing-off sender (``refs.sender_ref``) waits, with its
            failure count.
        per_tick: Sends one credential may make in a tick.
        now: The tick's instant.
    """
    budgets = {}
    for credential_id, credential in campaign.smtp_credentials.items():
        key = (campaign_id, credential_id)
        shared = credential.shared_as
        if shared is not None and shared in reads.carried:
            carried = replace(reads.carried[shared], credential_id=credential_id)
            budgets[credential_id] = reads.share(shared, campaign_id, carried)
            continue
        entry = reads.entry(state, key, credential)
        if not _is_usable(credential, entry, backoff.get(sender_ref(key, shared)), now):
            continue
        last_use, used = reads.usage(key, credential)
        sent, first_send = used[1], used[4]
        rate_left = None
        if credential.rate_limit is not None:
            rate = credential.rate_limit
            rate_left = rate.value - reads.sent_since(key, credential, rate.period, now)
        cap = daily_cap(credential, first_send=first_send, entry=entry, now=now)
        budget = Budget(
            credential_id=credential_id,
            sent_today=sent,
            daily_left=cap - sent,
            rate_left=rate_left,
            interval_free=_interval_free(last_use, credential, used, now),
            one_per_tick=credential.min_interval is not None,
            tick_left=per_tick,
        )
        budgets[credential_id] = (
            budget if shared is None else reads.share(shared, campaign_id, budget)
        )
    return budgets

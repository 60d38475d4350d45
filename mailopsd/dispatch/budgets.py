"""Each usable credential's budget for a tick: what its limits leave it at that instant.

A credential is usable when it is enabled, not blocked, not auto-disabled, not stopped
by AUTH failures, and not backing off. Its budget: step-1 sends left under its daily cap
(``daily_limit``, or lower while its ``ramp`` rises), sends left in its ``rate_limit``
window, whether the gap after its last send (``min_interval``, as drawn and recorded with
that send) is over. One ledger read answers every credential of the campaign (and one
more per distinct rate-limit period): a ramp and a spread add no query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mailopsd.clock import utc_day_start
from mailopsd.config import pacing
from mailopsd.config.models import Campaign, Credential
from mailopsd.dispatch.rotation import Budget
from mailopsd.refs import CredentialRef, credential_key
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from mailopsd.state.sends import UNUSED, CredentialUsage
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["credential_budgets", "daily_cap"]


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


def _interval_free(
    key: CredentialRef, credential: Credential, usage: CredentialUsage, now: datetime
) -> bool:
    """Tell whether the gap after the credential's last send is over."""
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
    if not credential.enabled or credential.status == "blocked":
        return False
    if entry.is_disabled(credential.reenabled_at) or entry.auth_failed_at is not None:
        return False
    return until is None or until[0] <= now


def credential_budgets(
    ledger: Ledger,
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
        ledger: The ledger (read only).
        campaign_id: The campaign.
        campaign: Its config.
        state: The state file (disables, AUTH failures, re-enables).
        backoff: Until when each backing-off credential waits, with its failure count.
        per_tick: Sends one credential may make in a tick.
        now: The tick's instant.
    """
    usage = ledger.sends.usage(campaign_id, utc_day_start(now))
    windows: dict[str, dict[str, int]] = {}
    budgets = {}
    for credential_id, credential in campaign.smtp_credentials.items():
        key = (campaign_id, credential_id)
        entry = state.credential(credential_key(*key))
        if not _is_usable(credential, entry, backoff.get(key), now):
            continue
        used = usage.get(credential_id, UNUSED)
        sent, first_send = used[1], used[4]
        rate_left = None
        if credential.rate_limit is not None:
            period = credential.rate_limit.period
            if period.text not in windows:
                windows[period.text] = ledger.sends.since(campaign_id, period.subtract_from(now))
            rate_left = credential.rate_limit.value - windows[period.text].get(credential_id, 0)
        cap = daily_cap(credential, first_send=first_send, entry=entry, now=now)
        budgets[credential_id] = Budget(
            credential_id=credential_id,
            sent_today=sent,
            daily_left=cap - sent,
            rate_left=rate_left,
            interval_free=_interval_free(key, credential, used, now),
            one_per_tick=credential.min_interval is not None,
            tick_left=per_tick,
        )
    return budgets

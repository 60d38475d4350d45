"""What a followed link does to the ledger: unsubscribe a lead, count an open or a click.

Runs in the HTTP process, each call in one short transaction of its own on a
connection of the caller's (see :mod:`mailopsd.state.ledger`); opens and clicks come
in batches (:mod:`mailopsd.http.counts`). A one-click unsubscribe
does what an unsubscribe request by mail does (:mod:`mailopsd.inbox.record`): the lead
stops, its address is suppressed for every campaign of the campaign's account, and an
``unsubscribe`` reply is recorded; a repeated request changes nothing more. Both go
through :mod:`mailopsd.health.effects`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from mailopsd.config import addresses
from mailopsd.health import effects
from mailopsd.lifecycle import MailKind, StopReason
from mailopsd.state.ledger import Ledger
from mailopsd.tokens import Claims

__all__ = ["Count", "Unsubscribed", "record_click", "record_counts", "record_open", "unsubscribe"]

logger = logging.getLogger(__name__)


class Unsubscribed(StrEnum):
    """What a one-click unsubscribe found."""

    UNKNOWN = "unknown"
    """The ledger knows no such campaign: nothing was done."""
    DONE = "done"
    """The address was suppressed now (and its lead stopped)."""
    ALREADY = "already"
    """The address was suppressed before: nothing changed."""


def _keyed(claims: Claims) -> Claims:
    """The claims with the lead's address as the ledger keys it.

    A link mailed before addresses were keyed in their normal form (an IDN domain in
    A-labels) names its lead by the old spelling.
    """
    return replace(claims, email=addresses.key_of(claims.email))


def unsubscribe(ledger: Ledger, claims: Claims, now: datetime) -> Unsubscribed:
    """Stop the lead of a valid unsubscribe token and suppress its address for the account.

    Args:
        ledger: A ledger connection of the calling thread.
        claims: What the verified token says.
        now: The time to record.

    Returns:
        Whether it was done now, had been done before, or the campaign is unknown.

    Raises:
        StorageError: The ledger did not take the write (nothing was recorded).
    """
    claims = _keyed(claims)
    with ledger.transaction():
        account = ledger.campaigns.account(claims.campaign_id)
        if account is None:
            return Unsubscribed.UNKNOWN
        suppressed = effects.suppress(
            ledger, account, claims.email, effects.Suppression.UNSUBSCRIBED_ONE_CLICK, now
        )
        stopped = effects.stop_lead(
            ledger, claims.campaign_id, claims.email, StopReason.UNSUBSCRIBED
        )
        if suppressed or stopped:
            lead = ledger.leads.get(claims.campaign_id, claims.email)
            credential = lead.credential_id if lead is not None else None
            ledger.inbox.add_reply(
                claims.campaign_id,
                credential,
                claims.email,
                kind=MailKind.UNSUBSCRIBE,
                message_id=None,
                at=now,
            )
    if not (suppressed or stopped):
        return Unsubscribed.ALREADY
    logger.info(
        "lead unsubscribed campaign=%s account=%s source=one-click", claims.campaign_id, account
    )
    return Unsubscribed.DONE


def record_open(ledger: Ledger, claims: Claims, now: datetime) -> bool:
    """Count an open of a campaign the ledger knows.

    Returns:
        Whether it was counted (``False``: unknown campaign).
    """
    with ledger.transaction():
        if ledger.campaigns.account(claims.campaign_id) is None:
            return False
        ledger.tracking.record_open(claims.campaign_id, _keyed(claims).email, now)
    return True


def record_click(ledger: Ledger, claims: Claims, now: datetime) -> bool:
    """Count a click on a link of a campaign the ledger knows.

    Returns:
        Whether it was counted (``False``: unknown campaign, or no URL in the claims).
    """
    if claims.url is None:
        return False
    with ledger.transaction():
        if ledger.campaigns.account(claims.campaign_id) is None:
            return False
        ledger.tracking.record_click(claims.campaign_id, _keyed(claims).email, claims.url, now)
    return True


@dataclass(frozen=True)
class Count:
    """An open (``claims.url`` ``None``) or a click, at the time its request came."""

    claims: Claims
    at: datetime


def record_counts(ledger: Ledger, counts: Iterable[Count]) -> int:
    """Count many opens and clicks in one transaction: one wait for the write lock, one sync.

    The counts of one lead's opens (or of one link's clicks) are added up first and
    written in one statement each, so that the write lock is held for as many statements
    as there are leads and links in the batch, however often each was followed.

    Returns:
        How many were counted (those of campaigns the ledger knows).

    Raises:
        StorageError: The ledger did not take the write (nothing was recorded).
    """
    # (campaign, lead, URL or None) -> first time, last time, how many
    summed: dict[tuple[str, str, str | None], tuple[datetime, datetime, int]] = {}
    for count in counts:
        claims = _keyed(count.claims)
        key = (claims.campaign_id, claims.email, claims.url)
        seen = summed.get(key)
        if seen is None:
            summed[key] = (count.at, count.at, 1)
        else:
            summed[key] = (min(seen[0], count.at), max(seen[1], count.at), seen[2] + 1)
    counted = 0
    known: dict[str, bool] = {}
    with ledger.transaction():
        for (campaign, email, url), (first_at, last_at, times) in summed.items():
            if campaign not in known:
                known[campaign] = ledger.campaigns.account(campaign) is not None
            if not known[campaign]:
                continue
            if url is None:
                ledger.tracking.add_opens(campaign, email, first_at, last_at, times)
            else:
                ledger.tracking.add_clicks(campaign, email, url, first_at, last_at, times)
            counted += times
    return counted

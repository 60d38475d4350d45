"""What bad news does to a lead: its sequence stops, its address is suppressed.

A hard bounce (an SMTP 5xx at send time, or a report in the mailbox), a complaint and an
unsubscribe (by mail or by one click) end a lead the same way, wherever they were
learnt: the lead is stopped with a :class:`~mailopsd.lifecycle.StopReason` and its
address suppressed for every campaign of its campaign's account, with a
:class:`Suppression` reason. A reply stops the lead and suppresses nothing; with
``stop_on_domain_reply`` it also stops the lead's colleagues, the other active leads of
its campaign at the same domain (:func:`stop_colleagues`), suppressing nothing either:
they did not ask not to be written to. The functions write inside the caller's ledger
transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from mailopsd.config.domains import FreeMail, domain_of
from mailopsd.lifecycle import LeadState, StopReason
from mailopsd.refs import CredentialRef
from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import Ledger

__all__ = ["Suppression", "record_stop", "stop_colleagues", "stop_lead", "stopped", "suppress"]

logger = logging.getLogger(__name__)


class Suppression(StrEnum):
    """Why an address is suppressed: the words the ledger stores and the status shows."""

    HARD_BOUNCE = "hard bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBED = "unsubscribed"
    """An unsubscribe request by mail."""
    UNSUBSCRIBED_ONE_CLICK = "unsubscribed (one-click)"
    """The unsubscribe link of a message, followed."""


def suppress(ledger: Ledger, account: str, email: str, reason: Suppression, now: datetime) -> bool:
    """Suppress an address for every campaign of ``account``.

    Returns:
        Whether it was not suppressed before (the first reason is kept).
    """
    return ledger.suppressions.add(account, email, reason, now)


def stop_lead(ledger: Ledger, campaign_id: str, email: str, reason: StopReason) -> bool:
    """Stop a lead's sequence: its queued steps are never sent.

    Returns:
        Whether it was going on (``False``: it was over, or there is no such lead).
    """
    return ledger.leads.stop(campaign_id, email, reason)


def record_stop(
    ledger: Ledger,
    key: CredentialRef,
    email: str,
    reason: StopReason,
    *,
    account: str | None,
    suppression: Suppression | None,
    now: datetime,
) -> None:
    """Stop a lead (logging ``lead stopped``), and suppress its address if asked.

    Args:
        ledger: The ledger, inside a transaction.
        key: The lead's campaign and the credential that wrote to it.
        email: The lead's address.
        reason: Why it stops.
        account: The account of the lead's campaign (``None``: no longer configured,
            so nothing is suppressed).
        suppression: Why its address is suppressed; ``None`` for none (a reply).
        now: The time recorded.
    """
    if stop_lead(ledger, key[0], email, reason):
        logger.info("lead stopped campaign=%s credential=%s reason=%s", *key, reason)
    if suppression is not None and account is not None:
        suppress(ledger, account, email, suppression, now)


def stop_colleagues(
    ledger: Ledger, key: CredentialRef, email: str, *, free_mail: FreeMail
) -> list[str]:
    """Stop the other active leads of a campaign at the domain of a lead who replied.

    Each is stopped with ``domain_replied`` and logged once (``lead stopped``); no
    address is suppressed. Nothing happens at a free-mail domain.

    Args:
        ledger: The ledger, inside a transaction.
        key: The campaign and the credential the reply was read for.
        email: The address of the lead who replied.
        free_mail: The free-mail domains, where a reply speaks for one person only.

    Returns:
        The addresses stopped now.
    """
    domain = domain_of(email)
    if free_mail.covers(domain):
        return []
    colleagues = ledger.leads.stop_at_domain(key[0], domain, StopReason.DOMAIN_REPLIED, keep=email)
    for colleague in colleagues:
        logger.info(
            "lead stopped campaign=%s credential=%s reason=%s lead=%s replied=%s",
            *key,
            StopReason.DOMAIN_REPLIED,
            colleague,
            email,
        )
    return colleagues


def stopped(lead: LeadProgress, reason: StopReason, *, error: str) -> LeadProgress:
    """The lead stopped for ``reason`` by what a send was answered (``error``)."""
    return replace(lead, state=LeadState.STOPPED, stop_reason=reason, last_error=error)

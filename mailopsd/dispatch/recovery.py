"""Sends left without an outcome: marked ``unknown``, never sent again.

A daemon that stopped (or was killed, or lost its ledger) between a send's intent and
its outcome cannot know whether the message left. At start, on a new session of a
shared ledger, or when it takes a campaign another daemon held, the daemon marks each
such send ``unknown``, which counts as sent (the step is never sent again), and moves
its lead on as a send would.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailopsd.config.loader import LoadedConfig
from mailopsd.dispatch import progression
from mailopsd.lifecycle import LeadState, SendOutcome
from mailopsd.state.ledger import Ledger

__all__ = ["recover"]

# The dispatcher's lines, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.dispatch.dispatcher")


def recover(
    ledger: Ledger, loaded: LoadedConfig, now: datetime, campaigns: frozenset[str] | None
) -> int:
    """Mark the sends left without an outcome ``unknown``, and move their leads on.

    Args:
        ledger: The ledger.
        loaded: The config (each lead's next step follows its campaign's sequence).
        now: When.
        campaigns: Only these campaigns'; None: every campaign's.

    Returns:
        How many sends were found so.
    """
    pending = [
        (send_id, intent)
        for send_id, intent in ledger.sends.pending()
        if campaigns is None or intent.campaign_id in campaigns
    ]
    with ledger.transaction():
        for send_id, intent in pending:
            ledger.sends.set_outcome(
                send_id,
                outcome=SendOutcome.UNKNOWN,
                code=None,
                detail="no outcome recorded (mailopsd stopped); never sent again",
                at=now,
            )
            lead = ledger.leads.get(intent.campaign_id, intent.email)
            campaign = loaded.config.campaigns.get(intent.campaign_id)
            if lead is not None and lead.state == LeadState.SENDING:
                ledger.leads.update(progression.sent(lead, intent, campaign))
    for _, intent in pending:
        logger.warning(
            "send outcome unknown campaign=%s credential=%s step=%d message_id=%s",
            intent.campaign_id,
            intent.credential_id,
            intent.step,
            intent.message_id,
        )
    return len(pending)

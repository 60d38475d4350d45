"""A lead after a send: its next step due, a retry later, or the end of its sequence.

What the dispatcher writes to a lead once a send's outcome is known, and what recovery
writes for a send whose outcome never came. No I/O: the dispatcher records the result.

- ``sent`` or ``unknown``: the step counts as sent (``unknown`` is never sent again);
  the next step is due after its delay (plus the campaign's drawn ``delay_jitter``), or
  the lead is done.
- ``bounced``: the lead stops (:mod:`mailopsd.health.effects`).
- ``invalid``: the address was refused as malformed; the lead fails, no bounce.
- ``deferred``: tried again after a growing delay, failed after ``max_attempts``.
- anything else is the credential's trouble, not the lead's: it waits, its attempts
  unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from mailopsd import backoff
from mailopsd.config import pacing
from mailopsd.config.models import Campaign
from mailopsd.health import effects
from mailopsd.lifecycle import LeadState, SendOutcome, StopReason
from mailopsd.smtp.transport import Outcome
from mailopsd.state.leads import LeadProgress
from mailopsd.state.schema import stamp
from mailopsd.state.sends import Intent

__all__ = ["after_outcome", "sent"]


def after_outcome(
    lead: LeadProgress,
    outcome: Outcome,
    intent: Intent,
    campaign: Campaign,
    *,
    max_attempts: int,
    now: datetime,
) -> LeadProgress:
    """The lead after the send ``intent`` ended with ``outcome``.

    Args:
        lead: The lead as it was before the send.
        outcome: How the send ended.
        intent: The send, as its intent was recorded.
        campaign: The lead's campaign (its sequence and delays).
        max_attempts: Deferrals after which the lead fails.
        now: The time recorded (a deferred lead's retry counts from it).

    Returns:
        The lead to write.
    """
    if outcome.kind in (SendOutcome.SENT, SendOutcome.UNKNOWN):
        return sent(lead, intent, campaign)
    if outcome.kind == SendOutcome.BOUNCED:
        return effects.stopped(lead, StopReason.BOUNCED, error=f"{outcome.code} {outcome.detail}")
    if outcome.kind == SendOutcome.INVALID:  # never tried again; not a bounce
        error = f"address refused as malformed: {outcome.code} {outcome.detail}"
        return replace(lead, state=LeadState.FAILED, last_error=error)
    back = LeadState.NEW if lead.step == 0 else LeadState.WAITING
    if outcome.kind == SendOutcome.DEFERRED:
        attempts = lead.attempts + 1
        if attempts >= max_attempts:
            return replace(
                lead,
                state=LeadState.FAILED,
                attempts=attempts,
                last_error=f"{outcome.code} {outcome.detail}",
            )
        delay = timedelta(seconds=backoff.DEFERRED_LEAD.delay_s(attempts))
        return replace(
            lead,
            state=back,
            attempts=attempts,
            next_due_at=stamp(now + delay),
            last_error=f"{outcome.code} {outcome.detail}",
        )
    # The credential's problem, not the lead's: it waits, its attempts unchanged.
    due = lead.next_due_at if lead.step else stamp(now + timedelta(minutes=1))
    return replace(lead, state=back, next_due_at=due)


def sent(lead: LeadProgress, intent: Intent, campaign: Campaign | None) -> LeadProgress:
    """The lead after step ``intent.step`` went out (or may have)."""
    if campaign is None or intent.step >= len(campaign.sequence):
        state, next_due_at = LeadState.DONE, None
    else:
        delay = campaign.sequence[intent.step].delay
        due = intent.at
        if delay is not None:
            due = pacing.followup_due(
                delay,
                campaign.delay_jitter,
                campaign_id=intent.campaign_id,
                email=intent.email,
                step=intent.step + 1,
                sent_at=intent.at,
            )
        state, next_due_at = LeadState.WAITING, stamp(due)
    variants = lead.variants
    if intent.variant is not None:  # what was sent is what the lead was given
        variants = {**lead.variants, str(intent.step): intent.variant}
    return replace(
        lead,
        variants=variants,
        state=state,
        step=intent.step,
        next_due_at=next_due_at,
        message_ids=(*lead.message_ids, intent.message_id),
        first_subject=intent.subject if intent.step == 1 else lead.first_subject,
        credential_id=intent.credential_id if intent.step == 1 else lead.credential_id,
        attempts=0,
        last_error=None,
    )

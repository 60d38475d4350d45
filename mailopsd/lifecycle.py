"""A lead's lifecycle: the states it moves through, why it stops early, what comes back.

The values are the words the ledger stores and the status shows, so they never change;
the names let code say which state it means. Pure.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LeadState", "MailKind", "StopReason"]


class LeadState(StrEnum):
    """Where a lead is in its campaign's sequence."""

    NEW = "new"
    """No step sent yet."""
    SENDING = "sending"
    """A send's intent is recorded, its outcome not yet."""
    WAITING = "waiting"
    """A step went out; the next one is due at ``next_due_at``."""
    DONE = "done"
    """Every step went out."""
    FAILED = "failed"
    """Given up: too many deferrals, a malformed address or a template error."""
    STOPPED = "stopped"
    """Stopped early; ``stop_reason`` says why."""


class StopReason(StrEnum):
    """Why a lead was stopped before its sequence ended."""

    BOUNCED = "bounced"
    COMPLAINED = "complained"
    REPLIED = "replied"
    UNSUBSCRIBED = "unsubscribed"
    AUTO_REPLY = "auto_reply"


class MailKind(StrEnum):
    """What a message that came back about a lead is, or one recipient of a report.

    The classifier gives every kind but ``unconfirmed``; the ledger stores them as a
    message's kind, a bounce's kind (``hard``, ``soft``, ``block``, ``unconfirmed``) and a
    reply's kind (``reply``, ``auto_reply``, ``unsubscribe``, ``feedback``).
    """

    HARD = "hard"
    """A permanent failure: the address does not take mail. Counts toward the bounce rate."""
    SOFT = "soft"
    """A temporary failure (a full mailbox, for now): recorded only."""
    BLOCK = "block"
    """The server refused the sender, not the address: counts toward the block rate."""
    UNCONFIRMED = "unconfirmed"
    """A ``hard`` or ``block`` report quoting none of our Message-IDs: recorded only."""
    FEEDBACK = "feedback"
    """A complaint (an abuse report, a feedback loop)."""
    AUTO_REPLY = "auto_reply"
    """An out-of-office or other automatic answer."""
    DELIVERED = "delivered"
    """A delivery report that says the message arrived."""
    UNSUBSCRIBE = "unsubscribe"
    """An unsubscribe request by mail (or by one click, as a reply)."""
    REPLY = "reply"
    """A person's answer."""
    OTHER = "other"
    """None of these."""

"""A lead's lifecycle: the states it moves through and why it stops early.

The values are the words the ledger stores and the status shows, so they never change;
the names let code say which state it means. Pure.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LeadState", "StopReason"]


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

"""A lead's lifecycle: its states, why it stops early, how its sends end, what comes back.

The values are the words the ledger stores and the status shows, so they never change;
the names let code say which state it means. Pure.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["COUNTED_OUTCOMES", "LeadState", "MailKind", "SendOutcome", "StopReason"]


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
    DOMAIN_REPLIED = "domain_replied"
    """Another lead of the campaign at the same company domain replied
    (``stop_on_domain_reply``); the address is not suppressed."""


class SendOutcome(StrEnum):
    """How a send ended, as its row in the ledger says."""

    PENDING = "pending"
    """Its intent is recorded, its outcome not yet (or never: the process stopped)."""
    SENT = "sent"
    """The server accepted the message."""
    DEFERRED = "deferred"
    """The server refused it for now (4xx): the step is tried again later."""
    BOUNCED = "bounced"
    """The server refused it (5xx)."""
    NOT_SENT = "not_sent"
    """The message was not handed to the server (no connection, the server's own
    trouble, or not tried): the step is tried again later."""
    AUTH_FAILED = "auth_failed"
    """The server refused the mailbox's login."""
    UNKNOWN = "unknown"
    """The connection was lost after the message was handed over: never sent again."""
    INVALID = "invalid"
    """The server refused the lead's address as malformed: the address's fault, not a
    bounce of the mailbox (nothing was sent, and it says nothing of the mailbox)."""


COUNTED_OUTCOMES = (
    SendOutcome.PENDING,
    SendOutcome.SENT,
    SendOutcome.UNKNOWN,
    SendOutcome.BOUNCED,
)
"""The outcomes that count against daily limits and rate limits: the message was (or may
have been) handed to the server. Migration 4's triggers spell the same list out."""


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

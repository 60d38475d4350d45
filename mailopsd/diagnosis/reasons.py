"""Why a message could not be delivered: the reasons, and the class each one gives.

The vocabulary is close to the one bounce-processing tools share (``userunknown``,
``mailboxfull``, ``spamdetected``, ...), so a reason read here means what it means there.
The classifier finds a reason for each failed recipient; its class follows from the
reason through :data:`CLASSES` alone, so the two never disagree:

- ``hard``: the address is gone; the lead stops and its address is suppressed.
- ``soft``: delivery failed for now or for a reason of the recipient's side; recorded.
- ``block``: the sender was refused; counts toward the mailbox's block rate.

Three reasons say only that the server refused (``notaccept``, ``onhold``,
``undefined``); their class follows the status code's class: permanent (5.x.x, 5xx) is
``hard``, transient (4.x.x, 4xx) is ``soft``.

The values are the words the ledger stores and ``status`` and ``/metrics`` show, so they
never change. Pure.
"""

from __future__ import annotations

from enum import StrEnum

from mailopsd.lifecycle import MailKind

__all__ = ["BY_CLASS", "BY_CODE", "CLASSES", "Reason", "class_of", "parse_reason"]


class Reason(StrEnum):
    """Why one recipient's message failed (or what an automatic answer is)."""

    # hard: the address
    USER_UNKNOWN = "userunknown"
    """The mailbox does not exist (RFC 3463 X.1.1)."""
    HOST_UNKNOWN = "hostunknown"
    """The domain does not exist or takes no mail (X.1.2, X.4.4, null MX)."""
    HAS_MOVED = "hasmoved"
    """The mailbox has moved (X.1.6)."""
    SUSPEND = "suspend"
    """The account exists but is disabled, suspended or closed (X.2.1)."""
    # soft: the recipient's side, for now
    MAILBOX_FULL = "mailboxfull"
    """The mailbox is over its quota (X.2.2)."""
    EXCEED_LIMIT = "exceedlimit"
    """The message exceeds the mailbox's own size limit (X.2.3)."""
    MESSAGE_TOO_BIG = "mesgtoobig"
    """The message exceeds the system's size limit (X.3.4)."""
    EXPIRED = "expired"
    """Delivery was retried until the queue gave up (X.4.7), or is still being retried."""
    NETWORK_ERROR = "networkerror"
    """The network or DNS failed: no answer, connection refused, routing loop (X.4.x)."""
    SYSTEM_ERROR = "systemerror"
    """The receiving system's own trouble (X.3.x): misconfiguration, internal error."""
    SYSTEM_FULL = "systemfull"
    """The receiving system is out of storage (X.3.1)."""
    TOO_MANY_CONNECTIONS = "toomanyconn"
    """The receiving server limits connections or greylists: try again later."""
    MAILER_ERROR = "mailererror"
    """The local delivery program failed (a command died, a pipe broke)."""
    # block: the sender
    BLOCKED = "blocked"
    """The sending host or address is on a blocklist or refused at connection."""
    POLICY_VIOLATION = "policyviolation"
    """The receiving site's policy refuses the message."""
    SPAM_DETECTED = "spamdetected"
    """The message was judged spam."""
    VIRUS_DETECTED = "virusdetected"
    """The message was judged to carry malware."""
    SECURITY_ERROR = "securityerror"
    """A security requirement failed (X.7.x): encryption, delivery not authorised."""
    AUTH_FAILURE = "authfailure"
    """SPF, DKIM or DMARC failed."""
    REQUIRE_PTR = "requireptr"
    """The sending host has no (or a mismatched) reverse DNS name."""
    BAD_REPUTATION = "badreputation"
    """The sending host or domain has a poor reputation."""
    RATE_LIMITED = "ratelimited"
    """The sender sends too much: the receiver throttles it."""
    SPEEDING = "speeding"
    """The sender was refused for sending too fast (rate-based rejection)."""
    REJECTED = "rejected"
    """The sender's address or domain was refused (X.1.7, X.1.8)."""
    FILTERED = "filtered"
    """The recipient's own filter or a group's membership rules refused the message."""
    NOT_COMPLIANT_RFC = "notcompliantrfc"
    """The message does not follow the mail standards (X.6.x, malformed headers)."""
    NO_RELAYING = "norelaying"
    """The server refused to relay."""
    CONTENT_ERROR = "contenterror"
    """The message's content was refused (X.6.x: conversion, encoding)."""
    SYNTAX_ERROR = "syntaxerror"
    """A protocol error: a command out of sequence or not understood (X.5.x)."""
    FAILED_STARTTLS = "failedstarttls"
    """TLS was required and could not be set up."""
    # by the status code's class
    NOT_ACCEPT = "notaccept"
    """The host takes no mail at all (RFC 7504's 521 and 556, X.3.2)."""
    ON_HOLD = "onhold"
    """The report says delivery failed but not why."""
    UNDEFINED = "undefined"
    """Nothing in the report tells why."""
    # not failures
    VACATION = "vacation"
    """An automatic answer: out of office, vacation."""
    FEEDBACK = "feedback"
    """A complaint (an ARF report)."""
    DELIVERED = "delivered"
    """A success report."""


CLASSES: dict[Reason, MailKind] = {
    Reason.USER_UNKNOWN: MailKind.HARD,
    Reason.HOST_UNKNOWN: MailKind.HARD,
    Reason.HAS_MOVED: MailKind.HARD,
    Reason.SUSPEND: MailKind.HARD,
    Reason.MAILBOX_FULL: MailKind.SOFT,
    Reason.EXCEED_LIMIT: MailKind.SOFT,
    Reason.MESSAGE_TOO_BIG: MailKind.SOFT,
    Reason.EXPIRED: MailKind.SOFT,
    Reason.NETWORK_ERROR: MailKind.SOFT,
    Reason.SYSTEM_ERROR: MailKind.SOFT,
    Reason.SYSTEM_FULL: MailKind.SOFT,
    Reason.TOO_MANY_CONNECTIONS: MailKind.SOFT,
    Reason.MAILER_ERROR: MailKind.SOFT,
    Reason.BLOCKED: MailKind.BLOCK,
    Reason.POLICY_VIOLATION: MailKind.BLOCK,
    Reason.SPAM_DETECTED: MailKind.BLOCK,
    Reason.VIRUS_DETECTED: MailKind.BLOCK,
    Reason.SECURITY_ERROR: MailKind.BLOCK,
    Reason.AUTH_FAILURE: MailKind.BLOCK,
    Reason.REQUIRE_PTR: MailKind.BLOCK,
    Reason.BAD_REPUTATION: MailKind.BLOCK,
    Reason.RATE_LIMITED: MailKind.BLOCK,
    Reason.SPEEDING: MailKind.BLOCK,
    Reason.REJECTED: MailKind.BLOCK,
    Reason.FILTERED: MailKind.BLOCK,
    Reason.NOT_COMPLIANT_RFC: MailKind.BLOCK,
    Reason.NO_RELAYING: MailKind.BLOCK,
    Reason.CONTENT_ERROR: MailKind.BLOCK,
    Reason.SYNTAX_ERROR: MailKind.BLOCK,
    Reason.FAILED_STARTTLS: MailKind.BLOCK,
    Reason.VACATION: MailKind.AUTO_REPLY,
    Reason.FEEDBACK: MailKind.FEEDBACK,
    Reason.DELIVERED: MailKind.DELIVERED,
}
"""The class of every reason but the three that follow the status code's class."""

BY_CODE = frozenset({Reason.NOT_ACCEPT, Reason.ON_HOLD, Reason.UNDEFINED})
"""The reasons whose class follows the status code's class (in no class of their own)."""

BY_CLASS: dict[MailKind, tuple[Reason, ...]] = {
    kind: tuple(reason for reason, its in CLASSES.items() if its == kind)
    for kind in (MailKind.HARD, MailKind.SOFT, MailKind.BLOCK)
}
"""The reasons of each failure class (the three by-code reasons in none)."""


def class_of(reason: Reason, *, permanent: bool) -> MailKind:
    """The class ``reason`` gives; ``permanent``: the failure's code was 5.x.x or 5xx."""
    if reason in BY_CODE:
        return MailKind.HARD if permanent else MailKind.SOFT
    return CLASSES[reason]


def parse_reason(word: str) -> Reason | None:
    """The reason named by ``word`` (as stored or configured), ``None`` if none is."""
    try:
        return Reason(word.strip().lower())
    except ValueError:
        return None

"""What the classifier says about a message, and the reading each of its parsers returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from mailopsd.diagnosis import Reason
from mailopsd.lifecycle import MailKind

__all__ = ["KINDS", "Classification", "FailedRecipient", "Reading"]

KINDS = tuple(kind for kind in MailKind if kind is not MailKind.UNCONFIRMED)
"""Every class the classifier gives (``unconfirmed`` is the recorder's)."""


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a report names.

    For a bounce, the address that failed (``original``: the address as first given, when
    the report names another one); for a complaint, the complaining recipient; for an
    auto-reply or an unsubscribe request, the address that sent it. ``reason`` says
    why (``kind`` follows from it); ``None`` for an unsubscribe request.
    """

    address: str
    status: str | None
    kind: MailKind
    diagnostic: str = ""
    original: str | None = None
    reason: Reason | None = None


@dataclass(frozen=True)
class Classification:
    """What a message is.

    ``kind`` is ``hard``, ``soft``, ``block``, ``feedback``, ``auto_reply``, ``delivered``,
    ``unsubscribe``, ``reply`` or ``other``; for reports it is the first recipient's class.
    ``references`` holds the Message-IDs it refers to (the returned message's first, then
    In-Reply-To and References; the first 100), ``sender`` the From address, ``notes`` how
    it was read.
    """

    kind: MailKind
    recipients: tuple[FailedRecipient, ...] = ()
    references: tuple[str, ...] = ()
    sender: str | None = None
    subject: str = ""
    notes: tuple[str, ...] = field(default=())


class Reading(NamedTuple):
    """What a message was read as: its class, its recipients, how they were found."""

    kind: MailKind
    recipients: list[FailedRecipient]
    how: str
    references: tuple[str, ...] = ()

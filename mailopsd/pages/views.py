"""The pages' data: a campaign and its mailboxes, with their days, as the pages show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mailopsd.pages.svg import DayBar, RatePoint

__all__ = ["CampaignView", "Hint", "MailboxView"]

Hint = Callable[[str, str], str | None]
"""What re-enables a campaign's credential, given their ids (``None``: not known)."""


@dataclass(frozen=True)
class MailboxView:
    """One mailbox of a campaign: its status row and its days.

    Attributes:
        row: Its entry in the status report's ``smtp_credentials``.
        bars: Its counted sends per day, every day of the range.
        rates: Its bounce rate over the window ending each day of the range.
    """

    row: Mapping[str, object]
    bars: tuple[DayBar, ...]
    rates: tuple[RatePoint, ...]

    @property
    def id(self) -> str:
        """The credential's id."""
        return str(self.row["id"])


@dataclass(frozen=True)
class CampaignView:
    """One campaign as its page shows it.

    Attributes:
        status: Its entry in the status report's ``campaigns``.
        bounce_threshold: The rate that disables a mailbox (0.05 for 5%).
        block_threshold: The same for blocks, when set.
        bounce_window: The window the rate is counted over, as written (``7 days``).
        days: The range's days, oldest first (``YYYY-MM-DD``).
        mailboxes: Its mailboxes, in the status report's order.
    """

    status: Mapping[str, object]
    bounce_threshold: float
    block_threshold: float | None
    bounce_window: str
    days: tuple[str, ...]
    mailboxes: tuple[MailboxView, ...]

"""Sending windows: whether a campaign may send now, in its time zone.

Pure. Local times come from ``zoneinfo``, so a window of 09:00-17:00 in New York stays
09:00-17:00 local across daylight-saving changes.
"""

from __future__ import annotations

from datetime import datetime

from mailopsd.config.models import Campaign

__all__ = ["is_open"]


def is_open(campaign: Campaign, now: datetime) -> bool:
    """Tell whether ``campaign`` may send at ``now`` (always, without a window)."""
    window = campaign.send_window
    return window is None or window.contains(now, campaign.timezone)

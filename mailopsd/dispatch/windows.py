"""Sending windows: whether a campaign may send now, in its time zone or its leads' zones.

Pure. Local times come from ``zoneinfo``, so a window of 09:00-17:00 in New York stays
09:00-17:00 local across daylight-saving changes.
"""

from __future__ import annotations

from datetime import datetime

from mailopsd.config.models import Campaign

__all__ = ["is_open", "open_zones"]


def is_open(campaign: Campaign, now: datetime) -> bool:
    """Tell whether ``campaign`` may send at ``now`` (always, without a window)."""
    window = campaign.send_window
    return window is None or window.contains(now, campaign.timezone)


def open_zones(
    campaign: Campaign, zones: frozenset[str | None], now: datetime
) -> list[str | None] | None:
    """The zones among ``zones`` whose window is open at ``now``, sorted (``None`` last).

    ``None`` stands for the leads without a zone of their own, in the campaign's.

    Returns:
        ``None`` when the campaign has no per-lead zones (:func:`is_open` decides).
    """
    window = campaign.send_window
    if window is None or window.zone_column is None:
        return None
    found = [
        zone for zone in zones if window.contains(now, campaign.timezone if zone is None else zone)
    ]
    return sorted(found, key=lambda zone: (zone is None, zone or ""))

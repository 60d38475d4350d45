"""Recipient time zones at a tick: which of a campaign's zones have their window open.

A campaign whose ``send_window.timezone`` reads each lead's zone from its leads file
(:mod:`mailopsd.config.zones`) keeps the zone with each lead in the ledger, resolved at
import. A tick asks :class:`CampaignZones` which zones are open now: the distinct zones
of a campaign's new and waiting leads are few, found by index seeks, and kept per
campaign until its leads file is imported again (its digest in the ledger changes).
Then only the leads of those zones are read (``zone IN``, one index range each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.config.models import Campaign
from mailopsd.dispatch.windows import is_open, open_zones
from mailopsd.state.ledger import Ledger

__all__ = ["CampaignZones"]


@dataclass
class CampaignZones:
    """The zones of each campaign's leads, kept until its leads file is imported again."""

    ledger: Ledger
    _known: dict[str, tuple[str | None, frozenset[str | None]]] = field(default_factory=dict)

    def of(self, campaign_id: str, digest: str | None) -> frozenset[str | None]:
        """The zones of a campaign's new and waiting leads, as of the import ``digest``."""
        known = self._known.get(campaign_id)
        if known is not None and known[0] == digest:
            return known[1]
        zones = self.ledger.leads.zones(campaign_id)
        self._known[campaign_id] = (digest, zones)
        return zones

    def open(self, campaign_id: str, campaign: Campaign, now: datetime) -> list[str | None] | None:
        """The campaign's zones open at ``now`` (empty: none); ``None``: no per-lead zones.

        Without per-lead zones, the campaign's window in its zone decides as before: an
        empty list when it is closed.
        """
        window = campaign.send_window
        if window is None or window.zone_column is None:
            return None if is_open(campaign, now) else []
        digest = self.ledger.campaigns.leads_digests().get(campaign_id)
        found = open_zones(campaign, self.of(campaign_id, digest), now)
        return [] if found is None else found

"""The per-recipient-domain daily cap of a campaign (``max_per_recipient_domain_per_day``).

Every counted send (step 1 and follow-ups, as for rate limits: sent, bounced, unknown or
in flight) to a recipient domain counts toward its campaign's cap for the UTC day, so
one company's server never gets a burst from one campaign. The counts come from the
ledger (the ``domain_days`` counters its triggers keep), so a restart does not reset
them. The leads queries already leave out domains at their cap; within a tick, the
quota counts each send as it is chosen, reading the day's count of only the domains of
the leads the tick read, once each. A lead over the cap waits for the next UTC day; it
is neither failed nor skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.clock import utc_day_start
from mailopsd.config.domains import domain_of
from mailopsd.config.models import Campaign
from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import Ledger

__all__ = ["DomainQuota"]


@dataclass
class DomainQuota:
    """What a campaign may still send to each recipient domain today, within one tick.

    Attributes:
        cap: The campaign's cap (``None``: no cap, every lead is admitted).
        read: Returns today's counted sends of the domains it is given (those with none
            may be left out).
        sent: Today's sends per domain: read, plus those chosen in this tick.
    """

    cap: int | None
    read: Callable[[Iterable[str]], Mapping[str, int]]
    sent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, ledger: Ledger, campaign_id: str, campaign: Campaign, now: datetime) -> DomainQuota:
        """The quota of a campaign for the UTC day of ``now``, read from ``ledger``."""
        day_start = utc_day_start(now)
        return cls(
            campaign.max_per_recipient_domain_per_day,
            lambda domains: ledger.sends.domain_sends(campaign_id, day_start, domains),
        )

    def admitted(self, leads: Iterable[LeadProgress]) -> Iterator[LeadProgress]:
        """The leads whose domain is under the cap when their turn comes, in order.

        Count each one chosen with :meth:`use` before taking the next.
        """
        if self.cap is None:
            yield from leads
            return
        batch = list(leads)
        unknown = {domain_of(lead.email) for lead in batch} - self.sent.keys()
        if unknown:
            counts = self.read(unknown)
            self.sent.update({domain: counts.get(domain, 0) for domain in unknown})
        for lead in batch:
            if self.sent[domain_of(lead.email)] < self.cap:
                yield lead

    def use(self, email: str) -> None:
        """Count a send to ``email`` chosen in this tick."""
        if self.cap is not None:
            domain = domain_of(email)
            self.sent[domain] = self.sent.get(domain, 0) + 1

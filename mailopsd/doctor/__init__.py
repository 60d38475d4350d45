"""``mailopsd doctor``: can the configured mail be delivered? DNS and headers, checked.

For every ``from_email`` domain: MX, SPF (does it authorise the SMTP host's
addresses?), DKIM keys, the DMARC policy, and the sender rules of the large mailbox
providers; for every ``verp_domain``: MX and SPF; for every campaign: one-click
unsubscribe and the unsubscribe footer. Each finding says what was found and what to
publish or change. The checks ask DNS through
a ``Dns`` (:mod:`~mailopsd.doctor.resolver` does the lookups); they read the config
only, never the state or a secret.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailopsd.config.models import Config
from mailopsd.doctor.domain import (
    check_domain,
    check_envelope_domain,
    envelope_domains,
    sending_domains,
)
from mailopsd.doctor.findings import CampaignReport, DomainReport, Finding, Report, Severity
from mailopsd.doctor.lookups import Answer, Dns, DnsError
from mailopsd.doctor.unsubscribe import check_unsubscribe

__all__ = [
    "Answer",
    "CampaignReport",
    "Dns",
    "DnsError",
    "DomainReport",
    "Finding",
    "Report",
    "Severity",
    "diagnose",
]


def diagnose(config: Config, dns: Dns, *, campaign_ids: Sequence[str], server: str = "") -> Report:
    """Check the sending domains and unsubscribe set-up of the given campaigns.

    Args:
        config: The loaded config.
        dns: Where to look names up.
        campaign_ids: The campaigns to check, each defined in ``config``.
        server: The nameserver asked, for the report.

    Returns:
        The findings, by domain (in config order), then by campaign.
    """
    envelopes = [check_envelope_domain(dns, t) for t in envelope_domains(config, campaign_ids)]
    envelope_spf = {
        report.domain: all(f.severity is Severity.OK for f in report.findings if f.check != "mx")
        for report in envelopes
    }
    domains = tuple(
        check_domain(dns, target, envelope_spf) for target in sending_domains(config, campaign_ids)
    ) + tuple(envelopes)
    campaigns = tuple(
        CampaignReport(campaign_id, tuple(check_unsubscribe(config, config.campaigns[campaign_id])))
        for campaign_id in campaign_ids
    )
    return Report(domains, campaigns, server)

"""What ``mailopsd doctor`` reports: findings, grouped by domain and by campaign.

A finding is one check's verdict (``ok``, ``warn`` or ``fail``) with what was found and,
where something is to be done, the DNS records to publish or the config to change. The
report is a value; the command line prints it as text or JSON. Pure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["CampaignReport", "DomainReport", "Finding", "Report", "Severity", "txt_record"]

_TXT_STRING_MAX = 255  # one character-string of a TXT record (RFC 1035 3.3)


class Severity(StrEnum):
    """How a check came out: fine, worth a look, or to be fixed."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


def txt_record(name: str, text: str) -> str:
    """A TXT record in zone-file form, split in strings of 255 characters where longer.

    Args:
        name: The owner name, without the final dot.
        text: The record's text (quotes and backslashes are escaped).
    """
    escaped = [
        text[at : at + _TXT_STRING_MAX].replace("\\", "\\\\").replace('"', '\\"')
        for at in range(0, max(len(text), 1), _TXT_STRING_MAX)
    ]
    return f"{name}. TXT " + " ".join(f'"{part}"' for part in escaped)


@dataclass(frozen=True)
class Finding:
    """One check's verdict.

    Attributes:
        check: What was checked: ``mx``, ``spf``, ``dkim``, ``dmarc``, ``bulk-sender``,
            ``dns`` (a domain that could not be looked up), ``one-click``, ``footer``.
        severity: The verdict.
        message: What was found and what it means, one paragraph.
        publish: DNS records to publish, in zone-file form (``name. TXT "..."``).
        change: A config change to make, as YAML.
    """

    check: str
    severity: Severity
    message: str
    publish: tuple[str, ...] = ()
    change: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The finding as a JSON-ready mapping."""
        return {
            "check": self.check,
            "severity": str(self.severity),
            "message": self.message,
            "publish": list(self.publish),
            "change": self.change,
        }


@dataclass(frozen=True)
class DomainReport:
    """The DNS findings of one sending domain.

    Attributes:
        domain: The ``from_email`` domain, or a ``verp_domain``.
        used_by: The credentials sending from it, as ``campaign/credential``.
        findings: In check order: mx, spf (one per SMTP host), then for a from domain
            spf-align (one per verp_domain), dkim, dmarc, bulk-sender.
        role: ``from_email`` or ``verp_domain``: what the domain is to them.
    """

    domain: str
    used_by: tuple[str, ...]
    findings: tuple[Finding, ...]
    role: str = "from_email"


@dataclass(frozen=True)
class CampaignReport:
    """The findings of one campaign's messages (unsubscribe headers and footers)."""

    campaign: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Report:
    """Every finding of one run of ``doctor``."""

    domains: tuple[DomainReport, ...]
    campaigns: tuple[CampaignReport, ...]
    server: str = field(default="")

    def findings(self) -> list[Finding]:
        """Every finding, domains first."""
        found = [f for domain in self.domains for f in domain.findings]
        return found + [f for campaign in self.campaigns for f in campaign.findings]

    def counts(self) -> dict[str, int]:
        """How many findings of each severity, every severity listed."""
        counted = Counter(finding.severity for finding in self.findings())
        return {str(severity): counted[severity] for severity in Severity}

    @property
    def has_failures(self) -> bool:
        """Tell whether any finding is ``fail``."""
        return any(finding.severity is Severity.FAIL for finding in self.findings())

    def as_dict(self) -> dict[str, object]:
        """The report as a JSON-ready mapping (the shape ``doctor --json`` prints)."""
        return {
            "nameserver": self.server,
            "domains": [
                {
                    "domain": domain.domain,
                    "role": domain.role,
                    "used_by": list(domain.used_by),
                    "findings": [finding.as_dict() for finding in domain.findings],
                }
                for domain in self.domains
            ],
            "campaigns": [
                {
                    "campaign": campaign.campaign,
                    "findings": [finding.as_dict() for finding in campaign.findings],
                }
                for campaign in self.campaigns
            ],
            "counts": self.counts(),
            "result": "fail" if self.has_failures else "ok",
        }

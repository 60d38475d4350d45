"""DMARC policy of a sending domain (RFC 7489 6): found, valid, and what it asks.

The record is looked up at ``_dmarc.<from domain>``, then at each parent domain, up to
the one of two labels: a walk up the DNS tree, as DMARCbis does, instead of the public
suffix list (which mailopsd does not ship). Under a public suffix of two labels
(``co.uk``), the walk also asks ``_dmarc.co.uk``, where nothing is published. A policy
found at a parent applies its ``sp=`` (else ``p=``) to the from domain.

mailopsd sends with ``MAIL FROM`` = ``from_email``, and the DKIM keys doctor looks for
are under the from domain itself, so both align with ``From:`` in relaxed and in strict
mode. Pure: it asks a ``Dns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailopsd.doctor.findings import Finding, Severity, txt_record
from mailopsd.doctor.lookups import Dns, DnsError

__all__ = ["DmarcPolicy", "check_dmarc", "find_policy", "parse_policy"]

_POLICIES = ("none", "quarantine", "reject")
_PERCENT = 100


@dataclass(frozen=True)
class DmarcPolicy:
    """A DMARC record as read.

    Attributes:
        name: Where it was found (``_dmarc.example.com``).
        domain: The domain it was published for.
        text: The record.
        tags: Its tags, names in lower case.
        problem: What makes receivers ignore it, or ``None``.
    """

    name: str
    domain: str
    text: str
    tags: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    def applied(self, from_domain: str) -> str:
        """The policy receivers apply to mail from ``from_domain`` (``sp=`` for a subdomain)."""
        if from_domain != self.domain and "sp" in self.tags:
            return self.tags["sp"]
        return self.tags.get("p", "")


def parse_policy(text: str, *, name: str, domain: str) -> DmarcPolicy:
    """Read a DMARC record found at ``name`` for ``domain``."""
    parts = [part.strip() for part in text.split(";") if part.strip()]
    tags: dict[str, str] = {}
    for part in parts:
        tag, _, value = part.partition("=")
        tags.setdefault(tag.strip().lower(), value.strip())
    problem = None
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        problem = "it must start with v=DMARC1"
    elif tags.get("p", "").lower() not in _POLICIES:
        problem = f"p={tags.get('p', '')} is not none, quarantine or reject"
    elif tags.get("sp", "none").lower() not in _POLICIES:
        problem = f"sp={tags['sp']} is not none, quarantine or reject"
    return DmarcPolicy(name, domain, text, tags, problem)


def find_policy(dns: Dns, domain: str) -> DmarcPolicy | None:
    """The DMARC record of ``domain`` or of its nearest parent that has one.

    Raises:
        DnsError: A lookup of the walk got no answer.
    """
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        owner = ".".join(labels[start:])
        name = f"_dmarc.{owner}"
        records = [r for r in dns.lookup(name, "TXT").records if r.lower().startswith("v=dmarc")]
        if len(records) > 1:
            return DmarcPolicy(
                name, owner, records[0], problem=f"{len(records)} DMARC records at one name"
            )
        if records:
            return parse_policy(records[0], name=name, domain=owner)
    return None


def _suggested(domain: str) -> str:
    return txt_record(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}")


def check_dmarc(dns: Dns, domain: str) -> tuple[Finding, DmarcPolicy | None]:
    """The DMARC finding of ``domain`` and the policy found (``None``: none usable).

    Args:
        dns: Where to look names up.
        domain: The ``from_email`` domain.
    """
    try:
        policy = find_policy(dns, domain)
    except DnsError as err:
        return Finding("dmarc", Severity.FAIL, f"could not check DMARC: {err}"), None
    if policy is None:
        return Finding(
            "dmarc",
            Severity.FAIL,
            f"no DMARC record at _dmarc.{domain} nor at its parent domains: Gmail and Yahoo "
            "require one of bulk senders (p=none at least); start with p=none and reports "
            "to an address you read",
            (_suggested(domain),),
        ), None
    if policy.problem is not None:
        return Finding(
            "dmarc",
            Severity.FAIL,
            f"{policy.name}: {policy.text!r}: {policy.problem}, so receivers ignore it",
            (_suggested(policy.domain),),
        ), None
    return _policy_finding(domain, policy), policy


def _policy_finding(domain: str, policy: DmarcPolicy) -> Finding:
    applied = policy.applied(domain).lower()
    where = (
        f"{policy.name}"
        if policy.domain == domain
        else f"{policy.name} (the parent domain's, {'sp=' if 'sp' in policy.tags else 'p='} "
        f"applies to {domain})"
    )
    modes = ", ".join(
        f"{tag}={'strict' if policy.tags.get(tag, 'r').lower() == 's' else 'relaxed'}"
        for tag in ("aspf", "adkim")
    )
    text = (
        f"{where}: p={policy.tags['p']}, policy for {domain}: {applied}; alignment {modes}: "
        f"SPF (MAIL FROM is the from_email) and DKIM keys under {domain} align"
    )
    if policy.tags.get("pct", str(_PERCENT)) != str(_PERCENT):
        text += f"; pct={policy.tags['pct']}: the policy applies to that share of failing mail"
    if "rua" not in policy.tags:
        text += "; no rua=: no aggregate reports come back to tell you what fails"
    if applied == "none":
        return Finding(
            "dmarc",
            Severity.WARN,
            text + "; p=none meets the Gmail and Yahoo minimum but only monitors: mail that "
            "fails DMARC is still delivered, so your domain can be spoofed; move to "
            "p=quarantine once the reports show your own mail passes",
        )
    return Finding("dmarc", Severity.OK, text)

"""The checks of one sending domain: MX, SPF, DKIM, DMARC, and the bulk-sender rules.

The sending domains are the ``from_email`` domains of the credentials checked. Replies
come back to the from domain, which therefore needs MX (or address) records. The
envelope sender (``MAIL FROM``) is the ``from_email`` itself, unless the credential has
``verp_domain``: then it is ``bounces+<token>@<verp_domain>``, delivery reports come
back there, and receivers check SPF against that domain. So a ``verp_domain`` gets its
own checks (MX, and SPF for the SMTP hosts of the credentials that use it), the from
domain's SPF is checked for the credentials without one, and for those with one the
from domain's report says whether SPF still aligns with it for DMARC. A first lookup
that gets no answer (a dead nameserver, a broken zone) ends the domain's checks with
one finding rather than one timeout per check. Pure: it asks a ``Dns``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailopsd.config.models import Config
from mailopsd.doctor import dkim, dmarc, spfreport
from mailopsd.doctor.findings import DomainReport, Finding, Severity
from mailopsd.doctor.lookups import Dns, DnsError

__all__ = [
    "SendingDomain",
    "check_domain",
    "check_envelope_domain",
    "envelope_domains",
    "sending_domains",
]


@dataclass(frozen=True)
class SendingDomain:
    """A from domain and what sends as it.

    Attributes:
        domain: The domain (A-labels, lower case, as sent).
        sender: The first ``from_email`` at it (SPF macros may use it).
        smtp_hosts: The SMTP hosts of its credentials that send with it as the envelope
            domain (those without ``verp_domain``), in config order.
        selectors: The ``dkim_selectors`` of its credentials, merged; ``None`` if none
            of them names any.
        used_by: Its credentials, as ``campaign/credential``.
        verp_domains: The ``verp_domain`` of its credentials that have one.
    """

    domain: str
    sender: str
    smtp_hosts: tuple[str, ...]
    selectors: tuple[str, ...] | None
    used_by: tuple[str, ...]
    verp_domains: tuple[str, ...] = ()


def sending_domains(config: Config, campaign_ids: Iterable[str]) -> list[SendingDomain]:
    """The from domains of the given campaigns' credentials, in config order."""
    found: dict[str, dict[str, list[str]]] = {}
    senders: dict[str, str] = {}
    for campaign_id in campaign_ids:
        for credential_id, credential in config.campaigns[campaign_id].smtp_credentials.items():
            domain = credential.from_email.rpartition("@")[2].lower()
            senders.setdefault(domain, credential.from_email)
            entry = found.setdefault(
                domain, {"hosts": [], "selectors": [], "used_by": [], "verp": []}
            )
            entry["used_by"].append(f"{campaign_id}/{credential_id}")
            if credential.verp_domain is not None:
                _add(entry["verp"], credential.verp_domain)
            else:
                _add(entry["hosts"], credential.smtp_host.lower())
            for selector in credential.dkim_selectors or ():
                _add(entry["selectors"], selector.lower())
    return [
        SendingDomain(
            domain,
            senders[domain],
            tuple(entry["hosts"]),
            tuple(entry["selectors"]) or None,
            tuple(entry["used_by"]),
            tuple(entry["verp"]),
        )
        for domain, entry in found.items()
    ]


def envelope_domains(config: Config, campaign_ids: Iterable[str]) -> list[SendingDomain]:
    """The ``verp_domain`` of the given campaigns' credentials, in config order."""
    found: dict[str, dict[str, list[str]]] = {}
    for campaign_id in campaign_ids:
        for credential_id, credential in config.campaigns[campaign_id].smtp_credentials.items():
            if credential.verp_domain is None:
                continue
            entry = found.setdefault(credential.verp_domain, {"hosts": [], "used_by": []})
            entry["used_by"].append(f"{campaign_id}/{credential_id}")
            _add(entry["hosts"], credential.smtp_host.lower())
    return [
        SendingDomain(domain, f"bounces@{domain}", tuple(e["hosts"]), None, tuple(e["used_by"]))
        for domain, e in found.items()
    ]


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _mx_finding(dns: Dns, domain: str, *, field: str = "from_email") -> Finding:
    """The MX finding; a failed lookup raises, to end the domain's checks.

    Raises:
        DnsError: The MX lookup got no answer.
    """
    answer = dns.lookup(domain, "MX")
    if not answer.exists:
        return Finding(
            "mx",
            Severity.FAIL,
            f"{domain} does not exist in DNS: receivers refuse mail from a domain that "
            f"does not exist, and replies and bounces cannot come back; check {field}",
        )
    hosts = sorted(answer.records, key=lambda record: int(record.split()[0]))
    if any(record.split()[-1] == "." for record in hosts):
        return Finding(
            "mx",
            Severity.FAIL,
            f"{domain} publishes a null MX (RFC 7505): it receives no mail, so replies and "
            "bounces to it are lost and receivers may refuse mail from it",
            (f"{domain}. MX 10 <your inbound mail server>.",),
        )
    if hosts:
        return Finding("mx", Severity.OK, f"{domain} receives mail at {', '.join(hosts)}")
    addresses = [*dns.lookup(domain, "A").records, *dns.lookup(domain, "AAAA").records]
    if addresses:
        return Finding(
            "mx",
            Severity.WARN,
            f"{domain} has no MX record: mail to it goes to its own address "
            f"({', '.join(addresses)}), which must run a mail server; publish an MX",
            (f"{domain}. MX 10 <your inbound mail server>.",),
        )
    return Finding(
        "mx",
        Severity.FAIL,
        f"{domain} has no MX and no address record: it cannot receive replies or bounces, "
        "and receivers may refuse mail from it",
        (f"{domain}. MX 10 <your inbound mail server>.",),
    )


def _bulk_sender(domain: str, *, spf_ok: bool, dkim_ok: bool, dmarc_ok: bool) -> Finding:
    """The Gmail and Yahoo sender rules of February 2024, from the other findings."""
    has = [name for name, ok in (("SPF", spf_ok), ("DKIM", dkim_ok)) if ok]
    rule = "Gmail and Yahoo (February 2024)"
    if not dmarc_ok or not has:
        missing = [] if has else ["SPF or DKIM passing for the from domain"]
        missing += [] if dmarc_ok else ["a DMARC record (p=none at least)"]
        return Finding(
            "bulk-sender",
            Severity.FAIL,
            f"{rule} ask bulk senders for {' and '.join(missing)}; mail from {domain} is "
            "likely to be refused or put in spam. Fix the findings above",
        )
    if len(has) < 2:
        lacking = "DKIM" if spf_ok else "SPF"
        return Finding(
            "bulk-sender",
            Severity.WARN,
            f"{rule}: {has[0]} aligned and DMARC present meet the rule for all senders; "
            f"senders of more than 5,000 messages a day to them also need {lacking}",
        )
    return Finding(
        "bulk-sender",
        Severity.OK,
        f"{rule}: SPF and DKIM aligned with {domain} and DMARC present; one-click "
        "unsubscribe is checked per campaign below",
    )


def _aligned(envelope: str, domain: str) -> bool:
    """Whether SPF of ``envelope`` aligns with a From at ``domain`` in DMARC's relaxed mode.

    Relaxed alignment asks for the same organizational domain. Without the public suffix
    list (as for DMARC's walk up, ``dmarc.py``), this takes one domain under the other,
    or both under the from domain's parent when that parent has at least two labels:
    ``bounces.example.com`` aligns with ``example.com`` and with ``news.example.com``.
    Its limits, both ways: under a public suffix of two labels (``co.uk``) it calls
    ``other.co.uk`` aligned with ``example.co.uk`` though they are separate domains, and
    it calls ``x.example.com`` not aligned with ``a.b.example.com`` though DMARC does.
    Deciding exactly needs the public suffix list.
    """
    if envelope == domain or envelope.endswith(f".{domain}") or domain.endswith(f".{envelope}"):
        return True
    parent = domain.partition(".")[2]
    return parent.count(".") >= 1 and envelope.endswith(f".{parent}")


def _alignment(
    domain: str, verp_domains: tuple[str, ...], envelope_spf: Mapping[str, bool]
) -> tuple[list[Finding], bool]:
    """For credentials with ``verp_domain``: whether their SPF aligns with ``domain``."""
    findings, ok = [], True
    for envelope in verp_domains:
        if not _aligned(envelope, domain):
            ok = False
            findings.append(
                Finding(
                    "spf-align",
                    Severity.WARN,
                    f"verp_domain {envelope} is outside {domain}'s organizational domain: "
                    f"SPF is checked against {envelope} and cannot align with the From "
                    f"domain, so DMARC passes only through DKIM; use a verp_domain under "
                    f"{domain} (such as bounces.{domain}) to have both",
                )
            )
        elif not envelope_spf.get(envelope, False):
            ok = False
            findings.append(
                Finding(
                    "spf-align",
                    Severity.WARN,
                    f"verp_domain {envelope} aligns with {domain}, but its SPF does not pass "
                    "for every smtp_host (see its checks below)",
                )
            )
        else:
            findings.append(
                Finding(
                    "spf-align",
                    Severity.OK,
                    f"verp_domain {envelope}: SPF passes there and aligns with {domain} (relaxed)",
                )
            )
    return findings, ok


def check_envelope_domain(dns: Dns, target: SendingDomain) -> DomainReport:
    """The findings of one ``verp_domain``: MX (reports come back) and SPF per SMTP host.

    Args:
        dns: Where to look names up.
        target: The domain (``envelope_domains``) and the credentials that use it.

    Returns:
        The findings: mx, spf (one per SMTP host); no DKIM or DMARC (From is elsewhere).
    """
    domain = target.domain
    try:
        findings = [_mx_finding(dns, domain, field="verp_domain")]
    except DnsError as err:
        skipped = Finding(
            "dns",
            Severity.FAIL,
            f"could not look up {domain}: {err}; its MX and SPF checks were skipped",
        )
        return DomainReport(domain, target.used_by, (skipped,), role="verp_domain")
    for host in target.smtp_hosts:
        findings.append(spfreport.check_spf(dns, spfreport.SpfCheck(domain, target.sender, host)))
    return DomainReport(domain, target.used_by, tuple(findings), role="verp_domain")


def check_domain(
    dns: Dns, target: SendingDomain, envelope_spf: Mapping[str, bool] | None = None
) -> DomainReport:
    """Every finding of one sending domain.

    Args:
        dns: Where to look names up.
        target: The domain and what sends as it.
        envelope_spf: For each of its ``verp_domains``, whether SPF passes there for
            every SMTP host (``check_envelope_domain``).

    Returns:
        The findings: mx, spf (one per SMTP host sending with it as envelope domain),
        spf-align (one per verp_domain), dkim, dmarc, bulk-sender.
    """
    domain = target.domain
    try:
        findings = [_mx_finding(dns, domain)]
    except DnsError as err:
        skipped = Finding(
            "dns",
            Severity.FAIL,
            f"could not look up {domain}: {err}; its MX, SPF, DKIM and DMARC checks were skipped",
        )
        return DomainReport(domain, target.used_by, (skipped,))
    for host in target.smtp_hosts:
        findings.append(spfreport.check_spf(dns, spfreport.SpfCheck(domain, target.sender, host)))
    spf_ok = all(f.severity is Severity.OK for f in findings if f.check == "spf")
    aligned, align_ok = _alignment(domain, target.verp_domains, envelope_spf or {})
    findings += aligned
    spf_ok = spf_ok and align_ok
    dkim_findings, dkim_ok = dkim.check_dkim(dns, domain, selectors=target.selectors)
    dmarc_finding, policy = dmarc.check_dmarc(dns, domain)
    findings += [*dkim_findings, dmarc_finding]
    findings.append(
        _bulk_sender(domain, spf_ok=spf_ok, dkim_ok=dkim_ok, dmarc_ok=policy is not None)
    )
    return DomainReport(domain, target.used_by, tuple(findings))

"""The SPF finding of a sending domain for one SMTP host, with the record to publish.

mailopsd's ``MAIL FROM`` is the ``from_email``, so SPF is checked on the from domain,
for the addresses the ``smtp_host`` resolves to (A and AAAA). Those are the addresses of
the server mailopsd hands its mail to; a provider whose outgoing servers differ from
its submission host is normally authorised by the ``include:`` it documents, which
covers both. A loopback ``smtp_host`` is a relay on this machine: the address mail
leaves from is not known here, so the result is only a warning. Pure: it asks a ``Dns``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailopsd.doctor import spf
from mailopsd.doctor.findings import Finding, Severity, txt_record
from mailopsd.doctor.lookups import Dns, DnsError
from mailopsd.doctor.spfterms import MacroContext

__all__ = ["SpfCheck", "check_spf"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SpfCheck:
    """What to check: a domain, the address sending as it, the SMTP host used."""

    domain: str
    sender: str
    smtp_host: str


def _terms(addresses: list[IpAddress]) -> str:
    return " ".join(f"ip{address.version}:{address}" for address in addresses)


def _with_terms(record: str, addresses: list[IpAddress]) -> str:
    """``record`` with ``ip4:``/``ip6:`` terms for ``addresses`` first, ``+all`` made ``~all``."""
    words = record.split()
    rest = ["~all" if word.lower() in ("all", "+all") else word for word in words[1:]]
    return " ".join([words[0], _terms(addresses), *rest]).replace("  ", " ")


def _host_addresses(dns: Dns, host: str) -> list[IpAddress]:
    """The addresses of ``host`` (itself when it is an address).

    Raises:
        DnsError: A lookup got no answer.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found = [*dns.lookup(host, "A").records, *dns.lookup(host, "AAAA").records]
    return [ipaddress.ip_address(address) for address in found]


def check_spf(dns: Dns, check: SpfCheck) -> Finding:
    """The SPF finding of ``check.domain`` for ``check.smtp_host``.

    Args:
        dns: Where to look names up.
        check: The domain, sender and SMTP host.

    Returns:
        ``ok`` when every address of the host passes, ``warn`` for a relay on this
        machine, ``fail`` otherwise, with the record to publish.
    """
    try:
        record = spf.find_record(dns, check.domain)
        addresses = _host_addresses(dns, check.smtp_host)
    except DnsError as err:
        return Finding("spf", Severity.FAIL, f"could not check SPF: {err}")
    host = f"smtp_host {check.smtp_host}"
    if not addresses:
        return Finding(
            "spf",
            Severity.FAIL,
            f"{host} has no A or AAAA record, so no address can be checked against SPF; "
            "check the host name in the credential",
        )
    suggested = txt_record(check.domain, f"v=spf1 {_terms(addresses)} ~all")
    if record.text is None:
        return Finding(
            "spf",
            Severity.FAIL,
            f"no SPF record at {check.domain}: receivers cannot tell that {host} may send as it",
            (suggested,),
        )
    if record.problem is not None:
        return Finding(
            "spf",
            Severity.FAIL,
            f"{record.text!r}: {record.problem} (permerror: receivers treat the mail as "
            "unauthenticated by SPF); publish one valid record",
            (txt_record(check.domain, _with_terms(record.text, addresses)),),
        )
    return _evaluated(dns, check, record, addresses)


def _evaluated(
    dns: Dns, check: SpfCheck, record: spf.SpfRecord, addresses: list[IpAddress]
) -> Finding:
    assert record.text is not None  # noqa: S101 - checked by the caller
    context = MacroContext(check.sender, addresses[0], check.domain)
    cost = spf.count_lookups(dns, record, context=context)
    shown = f"{check.domain}: {record.text!r}"
    if cost.total > spf.LOOKUP_LIMIT:
        return _too_many(check, shown, cost, addresses)
    verdicts = {
        address: spf.evaluate(dns, address, domain=check.domain, sender=check.sender)
        for address in addresses
    }
    results = "; ".join(
        f"{address}: {verdict.result} ({verdict.reason})" for address, verdict in verdicts.items()
    )
    lookups = f"{cost.total} of {spf.LOOKUP_LIMIT} DNS lookups"
    problems = f"; nested problems: {'; '.join(cost.problems)}" if cost.problems else ""
    text = f"{shown}; smtp_host {check.smtp_host}: {results}; {lookups}{problems}"
    return _verdict(check, record, text, verdicts)


def _verdict(
    check: SpfCheck, record: spf.SpfRecord, text: str, verdicts: dict[IpAddress, spf.Verdict]
) -> Finding:
    """The finding for the host's verdicts (``text`` says them), with the record to publish."""
    assert record.text is not None  # noqa: S101 - checked by the caller
    if any(term.name == "all" and term.qualifier == "+" for term in record.terms):
        return Finding(
            "spf",
            Severity.FAIL,
            f"{text}; +all authorises every address on the internet to send as "
            f"{check.domain}: end the record with ~all or -all",
            (txt_record(check.domain, _with_terms(record.text, list(verdicts))),),
        )
    if all(address.is_loopback for address in verdicts):
        return Finding(
            "spf",
            Severity.WARN,
            f"{text}; {check.smtp_host} is on this machine (a relay): the address your mail "
            "leaves from is not known here; check that the record authorises it",
        )
    failed = [a for a, v in verdicts.items() if v.result is not spf.Result.PASS]
    if not failed:
        return Finding("spf", Severity.OK, text)
    if any(verdicts[a].result is spf.Result.TEMPERROR for a in failed):
        return Finding("spf", Severity.FAIL, f"{text}; run again once DNS answers")
    return Finding(
        "spf",
        Severity.FAIL,
        f"{text}: not authorised, so receivers see SPF {verdicts[failed[0]].result}; add "
        "the host's addresses (or the include: your SMTP provider documents)",
        (txt_record(check.domain, _with_terms(record.text, failed)),),
    )


def _too_many(check: SpfCheck, shown: str, cost: spf.Cost, addresses: list[IpAddress]) -> Finding:
    terms = ", ".join(f"{term} {spent}" for term, spent in cost.by_term)
    return Finding(
        "spf",
        Severity.FAIL,
        f"{shown} needs {cost.total} DNS lookups ({terms}); RFC 7208 allows "
        f"{spf.LOOKUP_LIMIT}, so receivers answer permerror and SPF fails for mail that "
        "matches nothing before the limit. Drop the includes of services that no longer "
        "send as this domain, or list their addresses as ip4:/ip6: terms; the record "
        f"below authorises {check.smtp_host} with no lookup: add back only what else "
        "sends as this domain",
        (txt_record(check.domain, f"v=spf1 {_terms(addresses)} ~all"),),
    )

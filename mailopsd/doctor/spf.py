"""SPF evaluation (RFC 7208 4): is an address authorised to send for a domain?

Written here rather than taken from a library. pyspf (2.0.14, last released in 2020)
looks every name up through a module-level function over dnspython's module-level
``query``, deprecated since dnspython 2.0: pointing it at one nameserver and port
means patching module state, and the deprecation warning fails a strict test run; it
has no types either. checkdmarc builds its own resolver from a list of addresses, with
no port, and reports a record's lookups but does not evaluate an address against it.

``evaluate`` follows check_host(): the first matching mechanism decides, ``include``
and ``redirect=`` recurse, and the limits of 4.6.4 hold (10 lookups, 2 void lookups,
10 MX names per ``mx``). ``count_lookups`` walks the whole tree, as a receiver does for
an address that matches nothing, and says what each top-level term costs. ``ptr`` is
counted but never matches: RFC 7208 5.5 says not to use it. Pure: it asks a ``Dns``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from mailopsd.doctor.lookups import Dns, DnsError
from mailopsd.doctor.spfterms import (
    LOOKUP_MECHANISMS,
    MacroContext,
    SpfSyntaxError,
    Term,
    expand,
    parse_record,
    spf_records,
)

__all__ = [
    "LOOKUP_LIMIT",
    "Cost",
    "Result",
    "SpfRecord",
    "Verdict",
    "count_lookups",
    "evaluate",
    "find_record",
]

LOOKUP_LIMIT = 10
_VOID_LIMIT = 2
_MX_LIMIT = 10
_WALK_CAP = 100  # a loop of includes stops the count here

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Result(StrEnum):
    """The results of check_host() (RFC 7208 2.6)."""

    PASS = "pass"  # noqa: S105 - an SPF result, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


_BY_QUALIFIER = {"+": Result.PASS, "-": Result.FAIL, "~": Result.SOFTFAIL, "?": Result.NEUTRAL}


@dataclass(frozen=True)
class Verdict:
    """What check_host() said for one address, and why."""

    result: Result
    reason: str
    lookups: int = 0


@dataclass(frozen=True)
class SpfRecord:
    """A domain's SPF record: its text and terms, or why there is none to use."""

    text: str | None
    terms: tuple[Term, ...] = ()
    problem: str | None = None


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


def find_record(dns: Dns, domain: str) -> SpfRecord:
    """Fetch and parse ``domain``'s SPF record.

    Raises:
        DnsError: The TXT lookup got no answer.
    """
    answer = dns.lookup(domain, "TXT")
    records = spf_records(answer.records)
    if not records:
        problem = "the domain does not exist" if not answer.exists else None
        return SpfRecord(None, problem=problem)
    if len(records) > 1:
        return SpfRecord(records[0], problem=f"{len(records)} SPF records (RFC 7208 allows one)")
    try:
        return SpfRecord(records[0], parse_record(records[0]))
    except SpfSyntaxError as err:
        return SpfRecord(records[0], problem=str(err))


@dataclass
class _Evaluation:
    dns: Dns
    ip: IpAddress
    sender: str
    lookups: int = 0
    voids: int = 0

    def check_host(self, domain: str) -> tuple[Result, str]:
        try:
            record = find_record(self.dns, domain)
        except DnsError as err:
            raise _TempError(str(err)) from err
        if record.problem is not None and record.text is not None:
            raise _PermError(f"{domain}: {record.problem}")
        if record.text is None:
            return Result.NONE, f"{domain} has no SPF record"
        context = MacroContext(self.sender, self.ip, domain)
        for term in record.terms:
            if not term.is_modifier and self._matches(term, context):
                return _BY_QUALIFIER[term.qualifier], f"{term.text} in {domain}"
        redirect = next((t for t in record.terms if t.name == "redirect"), None)
        if redirect is None:
            return Result.NEUTRAL, f"nothing matched in {domain} (default neutral)"
        target = self._count(_expand(redirect.value, context))
        result, reason = self.check_host(target)
        if result is Result.NONE:
            raise _PermError(f"redirect={target}: it has no SPF record")
        return result, reason

    def _count(self, name: str) -> str:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _PermError(f"more than {LOOKUP_LIMIT} DNS lookups")
        return name

    def _matches(self, term: Term, context: MacroContext) -> bool:
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            return _in_network(self.ip, term.value)
        target = self._count(_expand(term.value or context.domain, context))
        if term.name == "include":
            return self._include(target)
        if term.name == "a":
            return self._any_in(self._addresses(target, void=True), term)
        if term.name == "mx":
            return self._mx(target, term)
        if term.name == "exists":
            return bool(self._records(target, "A", void=True))
        return False  # ptr: never matches here (RFC 7208 5.5)

    def _include(self, target: str) -> bool:
        result, _ = self.check_host(target)
        if result is Result.NONE:
            raise _PermError(f"include:{target}: it has no SPF record")
        return result is Result.PASS

    def _mx(self, target: str, term: Term) -> bool:
        hosts = [record.split()[-1] for record in self._records(target, "MX", void=True)]
        if len(hosts) > _MX_LIMIT:
            raise _PermError(f"{term.text}: {target} has more than {_MX_LIMIT} MX hosts")
        return any(self._any_in(self._addresses(host), term) for host in hosts if host != ".")

    def _addresses(self, name: str, *, void: bool = False) -> tuple[str, ...]:
        return self._records(name, "A" if self.ip.version == 4 else "AAAA", void=void)

    def _records(self, name: str, rdtype: str, *, void: bool = False) -> tuple[str, ...]:
        try:
            records = self.dns.lookup(name, rdtype).records
        except DnsError as err:
            raise _TempError(str(err)) from err
        if void and not records:
            self.voids += 1
            if self.voids > _VOID_LIMIT:
                raise _PermError(f"more than {_VOID_LIMIT} lookups found nothing")
        return records

    def _any_in(self, addresses: tuple[str, ...], term: Term) -> bool:
        length = term.cidr4 if self.ip.version == 4 else term.cidr6
        return any(_in_network(self.ip, f"{address}/{length}") for address in addresses)


def _expand(spec: str, context: MacroContext) -> str:
    """Expand a domain-spec; a bad macro is a permerror of the evaluation."""
    try:
        return expand(spec, context)
    except SpfSyntaxError as err:
        raise _PermError(str(err)) from err


def _in_network(ip: IpAddress, network: str) -> bool:
    try:
        return ip in ipaddress.ip_network(network, strict=False)
    except (ValueError, TypeError):
        return False


def evaluate(dns: Dns, ip: IpAddress, *, domain: str, sender: str) -> Verdict:
    """Run check_host() for ``ip`` sending as ``sender`` from ``domain``.

    Args:
        dns: Where to look names up.
        ip: The sending address.
        domain: The domain whose policy applies (the ``MAIL FROM`` domain).
        sender: The ``MAIL FROM`` address (for macros).

    Returns:
        The result, the term that decided it (or the error), and the lookups made.
    """
    run = _Evaluation(dns, ip, sender)
    try:
        result, reason = run.check_host(domain)
    except _PermError as err:
        return Verdict(Result.PERMERROR, str(err), run.lookups)
    except _TempError as err:
        return Verdict(Result.TEMPERROR, str(err), run.lookups)
    return Verdict(result, reason, run.lookups)


@dataclass
class Cost:
    """The DNS lookups a record needs when nothing matches (the worst case).

    Attributes:
        total: Every lookup of the tree: each lookup term, and each nested record's.
        by_term: What each top-level lookup term costs, itself and what it includes.
        problems: Nested records that could not be read (missing, broken, DNS errors).
    """

    total: int = 0
    by_term: list[tuple[str, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def count_lookups(dns: Dns, record: SpfRecord, *, context: MacroContext) -> Cost:
    """Count the lookups of ``record``'s whole tree (includes and redirects followed).

    Args:
        dns: Where to look names up.
        record: The record at ``context.domain``.
        context: What macros stand for.

    Returns:
        The total, what each top-level term costs, and what could not be read.
    """
    cost = Cost()
    for term in record.terms:
        if term.name in LOOKUP_MECHANISMS or term.name == "redirect":
            spent = 1 + _nested_cost(dns, term, context, cost.problems, depth=1)
            cost.by_term.append((term.text, spent))
            cost.total += spent
    return cost


def _nested_cost(
    dns: Dns, term: Term, context: MacroContext, problems: list[str], *, depth: int
) -> int:
    """The lookups inside an ``include`` or ``redirect=`` target (0 for other terms)."""
    if term.name not in ("include", "redirect") or depth > _WALK_CAP // 10:
        return 0
    try:
        target = expand(term.value, context)
        record = find_record(dns, target)
    except (SpfSyntaxError, DnsError) as err:
        problems.append(f"{term.text}: {err}")
        return 0
    if record.text is None or record.problem is not None:
        problems.append(f"{term.text}: {record.problem or 'no SPF record there'}")
        return 0
    inner = MacroContext(context.sender, context.ip, target)
    total = 0
    for nested in record.terms:
        if nested.name in LOOKUP_MECHANISMS or nested.name == "redirect":
            total += 1 + _nested_cost(dns, nested, inner, problems, depth=depth + 1)
            if total > _WALK_CAP:
                break
    return total

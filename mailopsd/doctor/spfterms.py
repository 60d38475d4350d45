"""An SPF record's terms (RFC 7208 4.6, 5, 6) and the macros of its domain-specs (7).

Parsing is strict where the RFC is (an unknown mechanism, a bad network or a second
``redirect=`` is a permerror) and lenient where it is (unknown modifiers are ignored).
Pure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "LOOKUP_MECHANISMS",
    "MacroContext",
    "SpfSyntaxError",
    "Term",
    "expand",
    "parse_record",
    "spf_records",
]

LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
"""Mechanisms that cost one DNS lookup each (``redirect=`` costs one too)."""

_MECHANISM = re.compile(r"(?P<qualifier>[-+~?]?)(?P<name>[A-Za-z0-9]+)(?P<sep>[:/]?)(?P<arg>.*)\Z")
_WITH_CIDR = re.compile(r"(?P<spec>.*?)(?P<cidr4>/\d+)?(?P<cidr6>//\d+)?\Z")
_MODIFIER = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<value>.*)\Z")
_MACRO = re.compile(
    r"%(?:\{(?P<letter>[slodiphvSLODIPHV])(?P<digits>\d*)(?P<r>[rR]?)"
    r"(?P<delims>[-.+,/_=]*)\}|(?P<escape>[%_-]))"
)
_MAX_NAME = 253


class SpfSyntaxError(ValueError):
    """A record or a domain-spec does not parse (an SPF permerror); the text says where."""


@dataclass(frozen=True)
class Term:
    """One directive or modifier of a record.

    Attributes:
        text: The term as written.
        name: The mechanism (``all``, ``include``, ``a``, ``mx``, ``ptr``, ``ip4``,
            ``ip6``, ``exists``) or modifier (``redirect``, ``exp``, ...), lower case.
        qualifier: ``+``, ``-``, ``~`` or ``?`` for a mechanism; ``""`` for a modifier.
        value: The domain-spec or network after ``:`` (or ``=``), ``""`` when absent.
        cidr4: The IPv4 prefix length (``a``, ``mx``, ``ip4``).
        cidr6: The IPv6 prefix length (``a``, ``mx``, ``ip6``).
    """

    text: str
    name: str
    qualifier: str
    value: str = ""
    cidr4: int = 32
    cidr6: int = 128

    @property
    def is_modifier(self) -> bool:
        """Tell whether the term is a modifier (``name=value``)."""
        return self.qualifier == ""


@dataclass(frozen=True)
class MacroContext:
    """What the macros of a domain-spec stand for (RFC 7208 7.3).

    Attributes:
        sender: The envelope sender (``MAIL FROM``): mailopsd uses ``from_email``.
        ip: The address being checked.
        domain: The domain whose record is being evaluated (``%{d}``).
    """

    sender: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    domain: str


def spf_records(texts: tuple[str, ...]) -> list[str]:
    """The TXT records that are SPF records (``v=spf1`` alone or followed by a space)."""
    return [text for text in texts if re.match(r"v=spf1(?: |\Z)", text, re.IGNORECASE)]


def parse_record(text: str) -> tuple[Term, ...]:
    """Split a record into its terms, checked.

    Raises:
        SpfSyntaxError: A term is not valid, or a modifier is given twice.
    """
    words = text.split()
    terms = tuple(_term(word) for word in words[1:])
    for name in ("redirect", "exp"):
        if sum(1 for term in terms if term.is_modifier and term.name == name) > 1:
            raise SpfSyntaxError(f"{name}= is given more than once")
    return terms


def _term(word: str) -> Term:
    modifier = _MODIFIER.match(word)
    if modifier is not None:
        return Term(word, modifier["name"].lower(), "", modifier["value"])
    found = _MECHANISM.match(word)
    if found is None:
        raise SpfSyntaxError(f"{word!r} is not an SPF term")
    name, sep, arg = found["name"].lower(), found["sep"], found["arg"]
    qualifier = found["qualifier"] or "+"
    if name in ("ip4", "ip6"):
        if sep != ":" or not arg:
            raise SpfSyntaxError(f"{word!r}: {name} needs a network, as in {name}:{_NET[name]}")
        return _network_term(word, name, qualifier, arg)
    if name == "all":
        if sep:
            raise SpfSyntaxError(f"{word!r}: all takes no argument")
        return Term(word, name, qualifier)
    if name not in LOOKUP_MECHANISMS:
        raise SpfSyntaxError(f"{word!r}: unknown mechanism {name}")
    return _domain_term(word, name, qualifier, sep, arg)


_NET = {"ip4": "192.0.2.0/24", "ip6": "2001:db8::/32"}


def _network_term(word: str, name: str, qualifier: str, arg: str) -> Term:
    bits = 32 if name == "ip4" else 128
    address, _, length = arg.partition("/")
    try:
        network = ipaddress.ip_network(f"{address}/{length or bits}", strict=False)
    except ValueError as err:
        raise SpfSyntaxError(f"{word!r}: not a valid {name} network") from err
    if network.max_prefixlen != bits:
        raise SpfSyntaxError(f"{word!r}: not an {'IPv4' if bits == 32 else 'IPv6'} network")
    return Term(word, name, qualifier, str(network), network.prefixlen, network.prefixlen)


def _domain_term(word: str, name: str, qualifier: str, sep: str, arg: str) -> Term:
    spec, cidr4, cidr6 = "", None, None
    if sep == "/":
        arg = "/" + arg
    parts = _WITH_CIDR.match(arg)
    if parts is not None:
        spec, cidr4, cidr6 = parts["spec"], parts["cidr4"], parts["cidr6"]
    if sep == ":" and not spec:
        raise SpfSyntaxError(f"{word!r}: a domain is missing after the colon")
    if sep == "/" and spec:
        raise SpfSyntaxError(f"{word!r} is not an SPF term")
    if name in ("include", "exists") and not spec:
        raise SpfSyntaxError(f"{word!r}: {name} needs a domain, as in {name}:example.com")
    if (cidr4 or cidr6) and name not in ("a", "mx"):
        raise SpfSyntaxError(f"{word!r}: only a, mx, ip4 and ip6 take a prefix length")
    v4 = int(cidr4[1:]) if cidr4 else 32
    v6 = int(cidr6[2:]) if cidr6 else 128
    if v4 > 32 or v6 > 128:
        raise SpfSyntaxError(f"{word!r}: prefix length out of range")
    return Term(word, name, qualifier, spec, v4, v6)


def expand(spec: str, context: MacroContext) -> str:
    """Expand the macros of a domain-spec into a domain name (RFC 7208 7).

    Raises:
        SpfSyntaxError: A ``%`` starts no valid macro.
    """
    if "%" not in spec:
        return spec.rstrip(".")
    parts: list[str] = []
    at = 0
    for found in _MACRO.finditer(spec):
        if "%" in spec[at : found.start()]:
            break
        parts.append(spec[at : found.start()])
        parts.append(_macro(found, context))
        at = found.end()
    if "%" in spec[at:]:
        raise SpfSyntaxError(f"{spec!r}: a % starts no valid macro")
    parts.append(spec[at:])
    return _shorten("".join(parts).rstrip("."))


def _macro(found: re.Match[str], context: MacroContext) -> str:
    escape = found["escape"]
    if escape is not None:
        return {"%": "%", "_": " ", "-": "%20"}[escape]
    letter = found["letter"]
    value = _macro_value(letter.lower(), context)
    pieces = re.split("[" + re.escape(found["delims"] or ".") + "]", value)
    if found["r"]:
        pieces.reverse()
    if found["digits"]:
        keep = int(found["digits"])
        if keep == 0:
            raise SpfSyntaxError(f"{found.group()!r}: a macro keeps at least one part")
        pieces = pieces[-keep:]
    text = ".".join(pieces)
    return quote(text, safe="") if letter.isupper() else text


def _macro_value(letter: str, context: MacroContext) -> str:
    local, _, sender_domain = context.sender.rpartition("@")
    if letter == "i":
        ip = context.ip
        if ip.version == 4:
            return str(ip)
        return ".".join(ip.exploded.replace(":", ""))
    if letter == "v":
        return "in-addr" if context.ip.version == 4 else "ip6"
    values = {
        "s": context.sender,
        "l": local or "postmaster",
        "o": sender_domain,
        "d": context.domain,
        "p": "unknown",  # validated reverse names are not looked up (RFC 7208 5.5)
        "h": sender_domain,  # the HELO name of the provider's server is not known here
    }
    return values[letter]


def _shorten(name: str) -> str:
    """Drop leading labels until the name fits in 253 characters (RFC 7208 7.3)."""
    while len(name) > _MAX_NAME and "." in name:
        name = name.partition(".")[2]
    return name

"""DNS lookups through dnspython, against one nameserver or the system's resolvers.

The one module of ``doctor`` that touches the network. Every lookup is asked once per
run: answers and failures are kept, since the checks ask the same names more than once
(an SPF record is walked once to count its lookups and again for each address). A
failure becomes ``DnsError`` with a message that names the lookup, the server and the
next step; dnspython's own exceptions never leave this module.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.resolver
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.mxbase import MXBase
from dns.rdtypes.txtbase import TXTBase

from mailopsd.doctor.lookups import Answer, DnsError
from mailopsd.errors import MailopsError

__all__ = ["DEFAULT_TIMEOUT_S", "Nameserver", "Resolver", "parse_nameserver"]

DEFAULT_TIMEOUT_S = 5.0
_DNS_PORT = 53
_RCODE_ADVICE = {
    "SERVFAIL": "the domain's DNS is broken, or its servers cannot be reached from there",
    "REFUSED": "that server does not answer for this name; give a recursive resolver",
}


@dataclass(frozen=True)
class Nameserver:
    """A nameserver to ask: an IP address and a port."""

    address: str
    port: int = _DNS_PORT

    def __str__(self) -> str:
        """``127.0.0.1:5353``, ``[::1]:53``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """Read ``IP``, ``IP:PORT`` or ``[IPv6]:PORT``.

    Raises:
        ValueError: The text is none of these; the message shows the forms.
    """
    host, port = text, str(_DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest[1:] if rest.startswith(":") else ""  # "" is refused below
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(
            f"--nameserver must be IP[:PORT], such as 127.0.0.1:5353, ::1 or [::1]:5353 "
            f"(got {text!r})"
        )
    return Nameserver(str(address), int(port))


class Resolver:
    """Looks up records for the checks (a ``Dns``), each name and type once per run."""

    def __init__(self, nameserver: Nameserver | None, *, timeout_s: float) -> None:
        """Ask ``nameserver``, or the system's resolvers (``/etc/resolv.conf``) if ``None``.

        Raises:
            MailopsError: No nameserver is given and the system names none.
        """
        try:
            self._resolver = dns.resolver.Resolver(configure=nameserver is None)
        except dns.exception.DNSException as err:
            raise MailopsError(
                "no nameserver to ask: /etc/resolv.conf names none; give --nameserver IP"
            ) from err
        if nameserver is not None:
            self._resolver.nameservers = [nameserver.address]
            self._resolver.port = nameserver.port
        self._resolver.timeout = timeout_s
        self._resolver.lifetime = timeout_s
        self.timeout_s = timeout_s
        self.server = str(nameserver) if nameserver else "the system's resolvers"
        self._seen: dict[tuple[str, str], Answer | DnsError] = {}

    def lookup(self, name: str, rdtype: str) -> Answer:
        """Return the records of type ``rdtype`` at ``name`` (see ``Dns.lookup``).

        Raises:
            DnsError: No usable answer came; the same lookup fails the same way again.
        """
        key = (name.lower().rstrip("."), rdtype)
        if key not in self._seen:
            try:
                self._seen[key] = self._ask(name, rdtype)
            except DnsError as err:
                self._seen[key] = err
        found = self._seen[key]
        if isinstance(found, DnsError):
            raise found
        return found

    def _ask(self, name: str, rdtype: str) -> Answer:
        try:
            qname = dns.name.from_text(name)
            answer = self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Answer(exists=False)
        except dns.exception.Timeout as err:
            raise DnsError(
                name,
                rdtype,
                f"no answer from {self.server} within {self.timeout_s:g} s; check that it is "
                "up and reachable (--nameserver, --timeout), then run again",
                is_timeout=True,
            ) from err
        except dns.resolver.NoNameservers as err:
            raise DnsError(name, rdtype, self._refusal(err)) from err
        except dns.exception.DNSException as err:  # a bad name (label too long, empty label)
            raise DnsError(name, rdtype, f"not a valid DNS name ({err})") from err
        if answer.rrset is None:
            return Answer()
        return Answer(tuple(_text(rdata) for rdata in answer.rrset))

    def _refusal(self, err: dns.resolver.NoNameservers) -> str:
        """What the servers answered instead of records, with what it likely means."""
        codes = sorted({str(error[3]) for error in err.kwargs.get("errors", [])})
        said = " and ".join(codes) or "no usable answer"
        advice = "; ".join(_RCODE_ADVICE[code] for code in codes if code in _RCODE_ADVICE)
        return f"{self.server} answered {said}" + (f" ({advice})" if advice else "")


def _text(rdata: dns.rdata.Rdata) -> str:
    """One record as the checks read it (see ``Answer.records``)."""
    if isinstance(rdata, TXTBase):
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if isinstance(rdata, MXBase):
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True)}"
    if isinstance(rdata, A | AAAA):
        return str(rdata.address)
    return str(rdata.to_text())

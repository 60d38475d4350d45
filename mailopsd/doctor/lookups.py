"""What the checks ask of DNS: one lookup, its answer, and how it fails.

The checks take any ``Dns`` (the resolver of :mod:`mailopsd.doctor.resolver` in use, a
loopback nameserver in tests), so they stay free of sockets. A name that does not exist
and a name without records of the type asked are answers (empty ones, told apart by
``exists``); a lookup that gets no answer at all (a timeout, SERVFAIL, REFUSED) raises
``DnsError``, which the checks turn into a finding. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailopsd.errors import MailopsError

__all__ = ["Answer", "Dns", "DnsError"]


@dataclass(frozen=True)
class Answer:
    """The records of one type at one name, as text.

    Attributes:
        records: TXT: each record's strings joined (RFC 7208 3.3); A/AAAA: the address;
            MX: ``"<preference> <host>"`` with the host's trailing dot removed.
        exists: ``False`` when the name does not exist at all (NXDOMAIN).
    """

    records: tuple[str, ...] = ()
    exists: bool = True


class DnsError(MailopsError):
    """A lookup got no usable answer; the text says which, from where, and what to do.

    Attributes:
        name: The name looked up.
        rdtype: The record type asked for.
        reason: What went wrong, e.g. ``no answer within 2 s``.
        is_timeout: Whether nothing answered in time (rather than a refusal or failure).
    """

    def __init__(self, name: str, rdtype: str, reason: str, *, is_timeout: bool = False) -> None:
        self.name = name
        self.rdtype = rdtype
        self.reason = reason
        self.is_timeout = is_timeout
        super().__init__(f"DNS lookup of {rdtype} {name} failed: {reason}")


class Dns(Protocol):
    """Looks up DNS records."""

    def lookup(self, name: str, rdtype: str) -> Answer:
        """Return the records of type ``rdtype`` (TXT, A, AAAA, MX) at ``name``.

        Raises:
            DnsError: No usable answer came (timeout, SERVFAIL, REFUSED, a bad name).
        """
        ...

"""DKIM keys of a sending domain (RFC 6376 3.6.1): found, usable, strong enough.

mailopsd signs nothing itself: the SMTP provider signs, with a key it asks the domain
owner to publish at ``<selector>._domainkey.<domain>``. Which selector it uses is the
provider's choice, so the config may name them (``dkim_selectors``); otherwise a short
list of common ones is tried, and not finding a key there is only a warning. A key
with an empty ``p=`` is revoked; RSA keys under 1024 bits are ignored by receivers
(RFC 8301), and 2048 bits is what it recommends. Pure: it asks a ``Dns``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mailopsd.doctor.findings import Finding, Severity, txt_record
from mailopsd.doctor.lookups import Dns, DnsError

__all__ = ["COMMON_SELECTORS", "DkimKey", "check_dkim", "is_usable", "parse_key"]

COMMON_SELECTORS = ("google", "selector1", "selector2", "default", "k1", "s1", "s2", "dkim", "mail")
MIN_RSA_BITS = 1024
GOOD_RSA_BITS = 2048
_ED25519_BYTES = 32


@dataclass(frozen=True)
class DkimKey:
    """A key record as read: its type and size, or what makes it unusable.

    Attributes:
        name: Where it is published (``s1._domainkey.example.com``).
        key_type: ``k=`` (default ``rsa``).
        bits: The RSA modulus size, when the key is RSA and readable.
        problem: Why receivers cannot use it (revoked, unreadable), or ``None``.
        testing: ``t=y``: the domain says it is testing DKIM.
    """

    name: str
    key_type: str
    bits: int | None = None
    problem: str | None = None
    testing: bool = False


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            tags.setdefault(name.strip().lower(), "".join(value.split()))
    return tags


def parse_key(name: str, text: str) -> DkimKey:
    """Read a key record published at ``name``."""
    tags = _tags(text)
    key_type = tags.get("k", "rsa").lower()
    testing = "y" in tags.get("t", "").lower().split(":")
    if tags.get("v", "DKIM1") != "DKIM1":
        return DkimKey(name, key_type, problem=f"v={tags['v']} is not DKIM1", testing=testing)
    if "p" not in tags:
        return DkimKey(name, key_type, problem="no p= tag (the public key)", testing=testing)
    if not tags["p"]:
        return DkimKey(name, key_type, problem="revoked: p= is empty", testing=testing)
    try:
        raw = base64.b64decode(tags["p"], validate=True)
    except (binascii.Error, ValueError):
        return DkimKey(name, key_type, problem="p= is not base64", testing=testing)
    if key_type == "ed25519":
        ok = len(raw) == _ED25519_BYTES
        return DkimKey(name, key_type, problem=None if ok else "not a 32-byte ed25519 key")
    if key_type != "rsa":
        return DkimKey(name, key_type, problem=f"unknown key type k={key_type}", testing=testing)
    try:
        key = load_der_public_key(raw)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPublicKey):
        return DkimKey(name, key_type, problem="p= is not an RSA public key", testing=testing)
    return DkimKey(name, key_type, bits=key.key_size, testing=testing)


def _placeholder(domain: str, selector: str) -> str:
    return txt_record(
        f"{selector}._domainkey.{domain}",
        "v=DKIM1; k=rsa; p=<the public key your SMTP provider gives you>",
    )


def _key_finding(domain: str, selector: str, key: DkimKey) -> Finding:
    if key.problem is not None:
        return Finding(
            "dkim",
            Severity.FAIL,
            f"{key.name}: {key.problem}; mail signed with selector {selector} fails DKIM. "
            "Publish the key your SMTP provider signs with",
            (_placeholder(domain, selector),),
        )
    size = f"{key.bits}-bit RSA key" if key.bits else f"{key.key_type} key"
    testing = " (t=y: testing, receivers may treat its signatures as absent)"
    note = testing if key.testing else ""
    if key.bits is not None and key.bits < MIN_RSA_BITS:
        return Finding(
            "dkim",
            Severity.FAIL,
            f"{key.name}: {size}: receivers ignore RSA keys under {MIN_RSA_BITS} bits "
            f"(RFC 8301); have your provider make a {GOOD_RSA_BITS}-bit key and publish it",
            (_placeholder(domain, selector),),
        )
    if (key.bits is not None and key.bits < GOOD_RSA_BITS) or key.testing:
        advice = f"; {GOOD_RSA_BITS} bits is recommended (RFC 8301)" if key.bits else ""
        return Finding("dkim", Severity.WARN, f"{key.name}: {size}{note}{advice}")
    return Finding("dkim", Severity.OK, f"{key.name}: {size}")


def _lookup_key(dns: Dns, domain: str, selector: str) -> DkimKey | None:
    """The key at a selector, ``None`` if none is published there.

    Raises:
        DnsError: The lookup got no answer.
    """
    name = f"{selector}._domainkey.{domain}"
    records = [r for r in dns.lookup(name, "TXT").records if "p=" in r or "v=DKIM1" in r]
    if not records:
        return None
    if len(records) > 1:
        return DkimKey(name, "rsa", problem=f"{len(records)} key records at one name")
    return parse_key(name, records[0])


def is_usable(key: DkimKey | None) -> bool:
    """Tell whether receivers can verify signatures with ``key``."""
    if key is None or key.problem is not None:
        return False
    return key.bits is None or key.bits >= MIN_RSA_BITS


def check_dkim(
    dns: Dns, domain: str, *, selectors: tuple[str, ...] | None
) -> tuple[list[Finding], bool]:
    """The DKIM findings of ``domain``: one per configured selector, or per key found.

    Args:
        dns: Where to look names up.
        domain: The ``from_email`` domain.
        selectors: The configured ``dkim_selectors`` (``None``: try the common ones).

    Returns:
        The findings, in selector order, and whether a usable key was found.
    """
    if selectors is None:
        return _guessed(dns, domain)
    findings = []
    usable = False
    for selector in selectors:
        name = f"{selector}._domainkey.{domain}"
        try:
            key = _lookup_key(dns, domain, selector)
        except DnsError as err:
            findings.append(Finding("dkim", Severity.FAIL, f"could not check {name}: {err}"))
            continue
        if key is None:
            findings.append(
                Finding(
                    "dkim",
                    Severity.FAIL,
                    f"no DKIM key at {name} (selector {selector} is in dkim_selectors): "
                    "mail your provider signs with it fails DKIM",
                    (_placeholder(domain, selector),),
                )
            )
        else:
            findings.append(_key_finding(domain, selector, key))
            usable = usable or is_usable(key)
    return findings, usable


def _guessed(dns: Dns, domain: str) -> tuple[list[Finding], bool]:
    findings = []
    errors = []
    usable = False
    for selector in COMMON_SELECTORS:
        try:
            key = _lookup_key(dns, domain, selector)
        except DnsError as err:
            errors.append(str(err))
            continue
        if key is not None:
            findings.append(_key_finding(domain, selector, key))
            usable = usable or is_usable(key)
    if errors:
        findings.append(Finding("dkim", Severity.FAIL, f"could not check DKIM: {errors[0]}"))
    if not findings:
        findings.append(
            Finding(
                "dkim",
                Severity.WARN,
                f"no DKIM key found under the common selectors ({', '.join(COMMON_SELECTORS)}) "
                f"of {domain}; if your SMTP provider signs with another selector, name it in "
                "the credential's dkim_selectors; if it does not sign for this domain, set "
                "that up with it and publish its key",
                (_placeholder(domain, "<selector>"),),
            )
        )
    return findings, usable

"""Recipient domains: the domain of an address, and which domains are free mail.

A lead's domain is the part of its key after the ``@`` (see
:mod:`mailopsd.config.addresses`): lower case, in A-labels, so ``bücher.de`` and
``xn--bcher-kva.de`` are one domain. The ledger computes the same text in SQL
(``substr(email, instr(email, '@') + 1)``), which is what its indexes on domains hold.

Free-mail domains are those where the people behind two addresses have nothing in
common but their mail provider: a reply from one ``gmail.com`` lead says nothing of the
others, so ``stop_on_domain_reply`` never applies there. :data:`FREE_MAIL_DOMAINS` is the
built-in table; a config adds its own with ``free_mail_domains``. An entry is a domain,
or ``name.*`` for ``name`` under any ending (``gmx.*``: ``gmx.de``, ``gmx.net``,
``gmx.co.uk``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailopsd.config.addresses import AddressError, lead_key, refusal

__all__ = [
    "FREE_MAIL_DOMAINS",
    "FreeMail",
    "domain_key",
    "domain_of",
    "free_mail",
    "free_mail_entry",
]

ANY_ENDING = ".*"

FREE_MAIL_DOMAINS = (
    # Google, Microsoft, Yahoo, Apple, AOL
    "gmail.com",
    "googlemail.com",
    "outlook.*",
    "hotmail.*",
    "live.com",
    "live.co.uk",
    "live.fr",
    "live.de",
    "live.nl",
    "live.it",
    "live.ca",
    "live.com.au",
    "msn.com",
    "passport.com",
    "yahoo.*",
    "ymail.com",
    "rocketmail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.*",
    "aim.com",
    # Privacy-minded and independent providers
    "proton.me",
    "protonmail.com",
    "protonmail.ch",
    "pm.me",
    "tutanota.com",
    "tutanota.de",
    "tuta.io",
    "tuta.com",
    "fastmail.com",
    "fastmail.fm",
    "hey.com",
    "zoho.com",
    "zohomail.com",
    "mail.com",
    "email.com",
    "hushmail.com",
    "posteo.de",
    "mailbox.org",
    # Europe
    "gmx.*",
    "web.de",
    "t-online.de",
    "freenet.de",
    "arcor.de",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "onet.pl",
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "ziggo.nl",
    "telenet.be",
    "bluewin.ch",
    # Russia and neighbours
    "yandex.*",
    "ya.ru",
    "mail.ru",
    "inbox.ru",
    "list.ru",
    "bk.ru",
    "rambler.ru",
    "ukr.net",
    # The Americas
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "cox.net",
    "charter.net",
    "earthlink.net",
    "bellsouth.net",
    "shaw.ca",
    "rogers.com",
    "sympatico.ca",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    # Asia
    "qq.com",
    "foxmail.com",
    "163.com",
    "126.com",
    "yeah.net",
    "sina.com",
    "sohu.com",
    "naver.com",
    "daum.net",
    "hanmail.net",
    "rediffmail.com",
)
"""The built-in free-mail domains: the large consumer mail providers. ``name.*`` entries
cover ``name`` under any ending (``yahoo.co.uk``, ``yahoo.fr``...)."""


def domain_of(key: str) -> str:
    """The domain of an address key (see ``addresses.lead_key``): what follows its ``@``."""
    return key.rpartition("@")[2]


def domain_key(text: str) -> str:
    """Check a domain and return its normal form, as the domain of a lead's key.

    Args:
        text: A domain such as ``Example.COM`` or ``bücher.de`` (no ``@``).

    Returns:
        The domain lower-case, in A-labels (``xn--bcher-kva.de``).

    Raises:
        AddressError: It is not a domain mail can be sent to; the message (lower-case,
            without the text) says why.
    """
    if "@" in text:
        raise AddressError("a domain has no @")
    if not text.strip():
        raise AddressError("it is empty")
    try:
        return domain_of(lead_key(f"x@{text.strip()}"))
    except AddressError as err:
        reason = refusal(err).replace("the part after the @-sign", "the domain")
        raise AddressError(reason.replace("an email address", "a domain")) from err


def free_mail_entry(text: str) -> str:
    """Check an entry of ``free_mail_domains``: a domain, or ``name.*``.

    Returns:
        The domain in its normal form, or ``name.*`` with ``name`` lower-case.

    Raises:
        AddressError: It is neither; the message (without the text) says why.
    """
    if text.endswith(ANY_ENDING):
        name = text[: -len(ANY_ENDING)]
        if "." in name or "*" in name:
            raise AddressError("only one name may come before .*, as in gmx.*")
        return domain_key(f"{name}.example").removesuffix(".example") + ANY_ENDING
    if "*" in text:
        raise AddressError("a * may only end an entry, as in gmx.*")
    return domain_key(text)


@dataclass(frozen=True)
class FreeMail:
    """The free-mail domains: exact domains, and names under any ending."""

    domains: frozenset[str]
    any_ending: frozenset[str]

    def covers(self, domain: str) -> bool:
        """Tell whether ``domain`` (a normal form, see :func:`domain_key`) is free mail."""
        first, dot, _ = domain.partition(".")
        return domain in self.domains or (bool(dot) and first in self.any_ending)


def free_mail(extra: Iterable[str] = ()) -> FreeMail:
    """The built-in free-mail domains and ``extra`` (entries checked by :func:`free_mail_entry`)."""
    entries = (*FREE_MAIL_DOMAINS, *extra)
    return FreeMail(
        domains=frozenset(entry for entry in entries if not entry.endswith(ANY_ENDING)),
        any_ending=frozenset(
            entry.removesuffix(ANY_ENDING) for entry in entries if entry.endswith(ANY_ENDING)
        ),
    )

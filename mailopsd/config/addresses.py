"""Email addresses: the one check and the one normal form for every address mailopsd uses.

Leads, ``from_email``, ``bcc`` and ``bounce_to`` are all checked here, with
email-validator's syntax rules (RFC 5321/5322 dot-atoms; no quoted local parts,
comments, group or display-name syntax, domain literals, control characters or
special-use domains such as ``.test``; at most 64 characters before the ``@`` and 254
in all), offline: no DNS.

An address has one spelling on the wire, and it is also the ledger's key, compared when
de-duplicating leads and when checking suppressions:

- the domain is mapped by UTS-46 (full-width letters folded, soft hyphens, zero-width
  spaces and other ignorable characters removed, case folded) and written in A-labels
  (``bücher.de`` -> ``xn--bcher-kva.de``), as SMTP without SMTPUTF8 carries it;
- the local part must be ASCII: mailopsd does not speak SMTPUTF8, so a non-ASCII local
  part could not be sent at all;
- a lead's key is lower-cased whole (:func:`lead_key`), as it always was: a mailbox
  provider that tells ``Ada@`` from ``ada@`` is vanishingly rare, and writing the same
  person twice is the greater harm. ``from_email`` and the other addresses of the
  configuration keep their local part as written (:func:`wire_form`).
"""

from __future__ import annotations

import re

import email_validator
import idna

__all__ = ["AddressError", "key_of", "lead_key", "refusal", "shown", "wire_form"]

# email-validator costs some 35 µs an address; a leads file of a million rows would
# spend half a minute in it. An ASCII address whose lower-case form this pattern and
# _plain_key's checks accept (a dot-atom of RFC 5322 atext, LDH labels of at most 63
# characters with no "--", a final label ending in a letter, not a special-use name,
# within the length limits) gets the same verdict and form from email-validator;
# anything else is left to email-validator. tests/unit/config/test_addresses.py checks
# that the two agree.
_PLAIN = re.compile(
    r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})"
    r"@(?P<domain>[a-z0-9][a-z0-9.-]{0,251}[a-z])\Z",
    re.ASCII,
)
# Names email-validator refuses (``test``, ``local``, ...), by their last label: a
# domain ending in one of these labels is left to email-validator.
_SPECIAL_TLDS = frozenset(
    name.rpartition(".")[2] for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
)
_ADDRESS_MAX = 254
_LABEL_MAX = 63
_SHOWN_MAX = 80


class AddressError(ValueError):
    """A text is not an address mailopsd can send to; the text says why."""


def refusal(err: AddressError) -> str:
    """Why an address was refused, as the tail of a message: lower-case, no full stop.

    Leads and the addresses of the configuration (``from_email``, ``bcc``...) are
    refused in the same words.
    """
    text = str(err).rstrip(".")
    return text[:1].lower() + text[1:]


def _is_plain_domain(domain: str) -> bool:
    """Whether a lower-case ASCII domain the pattern took is one email-validator takes as is."""
    if "." not in domain or ".." in domain or "--" in domain:
        return False
    if ".-" in domain or "-." in domain or domain.rpartition(".")[2] in _SPECIAL_TLDS:
        return False
    return len(domain) <= _LABEL_MAX or max(map(len, domain.split("."))) <= _LABEL_MAX


def _plain_key(text: str) -> str | None:
    """The key of an address the fast check alone settles, else ``None``."""
    if not text.isascii() or len(text) > _ADDRESS_MAX:
        return None
    key = text.lower()
    found = _PLAIN.match(key)
    if found is None:
        return None
    local = found["local"]
    if local[0] == "." or local[-1] == "." or ".." in local:
        return None
    return key if _is_plain_domain(found["domain"]) else None


def _mapped(text: str) -> str:
    """``text`` with its domain mapped by UTS-46, as a browser maps a typed name.

    email-validator refuses a soft hyphen or a zero-width space outright; UTS-46, which
    it applies otherwise, removes them. Mapping first gives every spelling of a domain
    the same A-labels. A domain UTS-46 refuses is left for email-validator to explain.
    """
    local, at, domain = text.rpartition("@")
    if not at or domain.isascii():
        return text
    try:
        return f"{local}@{idna.uts46_remap(domain, std3_rules=False, transitional=False)}"
    except idna.IDNAError:
        return text


def _validated(text: str) -> str:
    """The wire form, by email-validator (after the UTS-46 mapping of the domain)."""
    try:
        checked = email_validator.validate_email(
            _mapped(text),
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # keeps the 64-character limit of a local part
        )
    except email_validator.EmailNotValidError as err:
        raise AddressError(str(err)) from err
    return str(checked.ascii_email)


def wire_form(text: str) -> str:
    """Check an address and return it as it goes on the wire.

    Args:
        text: The address, with nothing around it.

    Returns:
        The local part as written, ``@``, the domain lower-case in A-labels.

    Raises:
        AddressError: It is not an address mailopsd can send to; the message says why.
    """
    key = _plain_key(text)
    if key is None:
        return _validated(text)
    at = text.rindex("@")
    return text[:at] + key[at:]


def lead_key(text: str) -> str:
    """Check a lead's address and return its key: the wire form, lower-cased.

    Raises:
        AddressError: It is not an address mailopsd can send to.
    """
    key = _plain_key(text)
    return key if key is not None else _validated(text).lower()


def key_of(text: str) -> str:
    """The key of an address from outside (a report, a reply, a link), valid or not.

    An address that passes :func:`lead_key` gets its key; any other is only
    lower-cased, so it still finds what was recorded under that spelling.
    """
    try:
        return lead_key(text.strip())
    except AddressError:
        return text.strip().lower()


def shown(text: str) -> str:
    """An address for a message: quoted, control characters escaped, long ones cut."""
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN_MAX else quoted[: _SHOWN_MAX - 2] + "…'"

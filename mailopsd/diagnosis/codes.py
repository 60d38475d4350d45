"""Status codes: the RFC 3463 enhanced codes and SMTP reply codes, and the reason they name.

Each enhanced code of the IANA "Enumerated Status Codes" registry (RFC 3463, RFC 3886,
RFC 4468, RFC 4865, RFC 4954, RFC 5248, RFC 6710, RFC 7293, RFC 7372, RFC 7505, RFC 8689)
that says what happened names a reason in :data:`_DETAILS`; a subject's other codes
(``X.4.9``, ``X.7.99``) name the subject's reason (:data:`_SUBJECTS`). A code
names a reason (``5.1.1``), or only a class (``5.7.1``, "delivery not authorized", which
servers give for spam, blocklists and policy alike: the words say which), or, for the
generic ``X.Y.0`` codes and ``X.4.1`` (Exchange also refuses unknown addresses with it),
only suggests one for when the words say nothing; ``rules.diagnose`` weighs the two.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

from mailopsd.diagnosis.reasons import Reason

__all__ = [
    "FAIL_STATUS",
    "REPLY_CODE",
    "STATUS",
    "CodeReason",
    "Strength",
    "status_of",
    "status_reason",
]

STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
FAIL_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\d)")
REPLY_CODE = re.compile(r"(?:^|(?<=[\s:;'\"(\[<#=]))([45])[0-5]\d(?=[\s\])'\".,;:]|-\d\.|$)")

# (subject, detail) -> reason, from the registry's descriptions.
_DETAILS: dict[tuple[str, str], Reason] = {
    ("1", "1"): Reason.USER_UNKNOWN,  # bad destination mailbox address
    ("1", "2"): Reason.HOST_UNKNOWN,  # bad destination system address
    ("1", "3"): Reason.USER_UNKNOWN,  # bad destination mailbox address syntax
    ("1", "4"): Reason.USER_UNKNOWN,  # destination mailbox address ambiguous
    ("1", "6"): Reason.HAS_MOVED,  # destination mailbox has moved, no forwarding address
    ("1", "7"): Reason.REJECTED,  # bad sender's mailbox address syntax
    ("1", "8"): Reason.REJECTED,  # bad sender's system address
    ("1", "9"): Reason.SYSTEM_ERROR,  # message relayed to non-compliant mailer
    ("1", "10"): Reason.NOT_ACCEPT,  # recipient address has null MX (RFC 7505)
    ("2", "1"): Reason.SUSPEND,  # mailbox disabled, not accepting messages
    ("2", "2"): Reason.MAILBOX_FULL,  # mailbox full
    ("2", "3"): Reason.EXCEED_LIMIT,  # message length exceeds administrative limit
    ("2", "4"): Reason.SYSTEM_ERROR,  # mailing list expansion problem
    ("3", "1"): Reason.SYSTEM_FULL,  # mail system full
    ("3", "2"): Reason.NOT_ACCEPT,  # system not accepting network messages
    ("3", "3"): Reason.SYSTEM_ERROR,  # system not capable of selected features
    ("3", "4"): Reason.MESSAGE_TOO_BIG,  # message too big for system
    ("3", "5"): Reason.SYSTEM_ERROR,  # system incorrectly configured
    ("4", "4"): Reason.HOST_UNKNOWN,  # unable to route: the domain has no mail host
    ("4", "5"): Reason.SYSTEM_ERROR,  # mail system congestion
    ("4", "7"): Reason.EXPIRED,  # delivery time expired
    ("5", "3"): Reason.EXCEED_LIMIT,  # too many recipients
    ("7", "8"): Reason.SECURITY_ERROR,  # authentication credentials invalid
    ("7", "13"): Reason.SUSPEND,  # user account disabled (RFC 4954)
    ("7", "17"): Reason.HAS_MOVED,  # mailbox owner has changed (RFC 7293)
    ("7", "18"): Reason.HAS_MOVED,  # domain owner has changed (RFC 7293)
    ("7", "20"): Reason.AUTH_FAILURE,  # no passing DKIM signature found (RFC 7372)
    ("7", "21"): Reason.AUTH_FAILURE,  # no acceptable DKIM signature found
    ("7", "22"): Reason.AUTH_FAILURE,  # no valid author-matched DKIM signature found
    ("7", "23"): Reason.AUTH_FAILURE,  # SPF validation failed
    ("7", "24"): Reason.AUTH_FAILURE,  # SPF validation error
    ("7", "25"): Reason.REQUIRE_PTR,  # reverse DNS validation failed
    ("7", "26"): Reason.AUTH_FAILURE,  # multiple authentication checks failed
    ("7", "27"): Reason.REJECTED,  # sender address has null MX (RFC 7505)
    ("7", "28"): Reason.SPEEDING,  # mail flood detected
    ("7", "29"): Reason.AUTH_FAILURE,  # ARC validation failure
    ("7", "30"): Reason.FAILED_STARTTLS,  # REQUIRETLS support required (RFC 8689)
}
# A subject's reason for its other codes: X.3 the receiving system, X.4 the network and
# routing, X.5 the protocol, X.6 the content, X.7 security and policy. They fix the class;
# the server's words, when they name a reason of that class, say which one.
_SUBJECTS: dict[str, Reason] = {
    "3": Reason.SYSTEM_ERROR,
    "4": Reason.NETWORK_ERROR,
    "5": Reason.SYNTAX_ERROR,
    "6": Reason.CONTENT_ERROR,
    "7": Reason.SECURITY_ERROR,
}
# What the generic codes suggest when the words tell nothing: X.1.0 the address, X.2.0
# the mailbox, X.3.0 the system, X.4.0 and X.4.1 the network, X.5.0 the protocol.
_GENERIC: dict[tuple[str, str], Reason] = {
    ("1", "0"): Reason.USER_UNKNOWN,
    ("2", "0"): Reason.MAILBOX_FULL,
    ("3", "0"): Reason.SYSTEM_ERROR,
    ("4", "0"): Reason.NETWORK_ERROR,
    ("4", "1"): Reason.NETWORK_ERROR,
    ("5", "0"): Reason.SYNTAX_ERROR,
}


class Strength(IntEnum):
    """How much a status code says by itself."""

    GENERIC = 0
    """A suggestion, for when the words tell nothing."""
    CLASS = 1
    """The class; the words may name the reason within it."""
    REASON = 2
    """The reason."""


class CodeReason(NamedTuple):
    """The reason a status code names, and how firmly."""

    reason: Reason
    strength: Strength


def status_of(text: str) -> str | None:
    """The most telling failure status in ``text``: the first specific one, else the first."""
    first = None
    for match in FAIL_STATUS.finditer(text):
        if match.group(2) != "0" or match.group(3) != "0":
            return ".".join(match.groups())
        first = first or ".".join(match.groups())
    return first


def status_reason(status: str) -> CodeReason | None:
    """The reason ``status`` names, and how firmly; ``None`` for ``X.0.0`` and the like."""
    klass, subject, detail = status.split(".")
    if klass == "4" and (subject, detail) == ("2", "1"):
        return CodeReason(Reason.ON_HOLD, Strength.REASON)  # disabled for now: try again
    if (subject, detail) in _GENERIC:
        return CodeReason(_GENERIC[subject, detail], Strength.GENERIC)
    if (subject, detail) in _DETAILS:
        # "Mailbox disabled" is also what servers answer for an address they never had:
        # the words say which.
        strength = Strength.CLASS if (subject, detail) == ("2", "1") else Strength.REASON
        return CodeReason(_DETAILS[subject, detail], strength)
    if subject in _SUBJECTS:
        return CodeReason(_SUBJECTS[subject], Strength.CLASS)
    return None  # X.0.0, and X.1.5 and the like: nothing said by the code itself

"""Status codes: the RFC 3463 enhanced codes and SMTP reply codes, and the class they name.

A specific enhanced code (``5.1.1``, ``4.2.2``, ``5.7.1``...) names a class by itself; the
generic ones (``X.0.0``) and the reply codes only when the server's words tell nothing
(``rules.kind_of`` weighs them against each other).
"""

from __future__ import annotations

import re

from mailopsd.lifecycle import MailKind

__all__ = [
    "FAIL_STATUS",
    "REPLY_CODE",
    "STATUS",
    "fallback_kind",
    "status_kind",
    "status_of",
]

STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
FAIL_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\d)")
REPLY_CODE = re.compile(r"(?:^|(?<=[\s:;'\"(\[<#=]))([45])[0-5]\d(?=[\s\])'\".,;:]|-\d\.|$)")

# (subject, detail) -> class, for the codes of RFC 3463 that say what happened.
_STATUS_KINDS = {
    ("1", "1"): MailKind.HARD,  # bad destination mailbox address
    ("1", "2"): MailKind.HARD,  # bad destination system address
    ("1", "3"): MailKind.HARD,  # bad destination mailbox address syntax
    ("1", "4"): MailKind.HARD,  # destination mailbox address ambiguous
    ("1", "6"): MailKind.HARD,  # destination mailbox has moved
    ("1", "10"): MailKind.HARD,  # recipient address has null MX (RFC 7505)
    ("1", "7"): MailKind.BLOCK,  # bad sender's mailbox address syntax
    ("1", "8"): MailKind.BLOCK,  # bad sender's system address
    ("2", "1"): MailKind.HARD,  # mailbox disabled, not accepting messages
    ("2", "2"): MailKind.SOFT,  # mailbox full
    ("2", "3"): MailKind.SOFT,  # message length exceeds administrative limit
    ("2", "4"): MailKind.SOFT,  # mailing list expansion problem
    ("4", "4"): MailKind.HARD,  # unable to route: the domain has no mail host
}
# Subjects whose every specific code means one class: X.3 the receiving system, X.4
# network and routing (X.4.7: expired in the queue), X.5 protocol, X.6 content, X.7
# security and policy. X.4.1 ("no answer from host") is left to the words: Exchange also
# uses it to refuse an address its directory does not know.
_SUBJECT_KINDS = {
    "3": MailKind.SOFT,
    "4": MailKind.SOFT,
    "5": MailKind.BLOCK,
    "6": MailKind.BLOCK,
    "7": MailKind.BLOCK,
}
# For the "other" codes (X.Y.0), when the words tell nothing.
_FALLBACK_SUBJECT_KINDS = {
    "1": MailKind.HARD,
    "2": MailKind.SOFT,
    "3": MailKind.SOFT,
    "4": MailKind.SOFT,
    "5": MailKind.BLOCK,
}


def status_of(text: str) -> str | None:
    """The most telling failure status in ``text``: the first specific one, else the first."""
    first = None
    for match in FAIL_STATUS.finditer(text):
        if match.group(2) != "0" or match.group(3) != "0":
            return ".".join(match.groups())
        first = first or ".".join(match.groups())
    return first


def status_kind(status: str) -> MailKind | None:
    """The class a status code names by itself, ``None`` for the generic ones."""
    klass, subject, detail = status.split(".")
    if (klass, subject, detail) == ("5", "3", "2"):
        return MailKind.HARD  # the host takes no mail at all (RFC 7504's 521)
    if klass == "4" and (subject == "2" or (subject, detail) == ("5", "3")):
        return MailKind.SOFT  # the mailbox is unavailable, or too many recipients, for now
    specific = _STATUS_KINDS.get((subject, detail))
    if specific is None and subject in _SUBJECT_KINDS and (subject, detail) != ("4", "1"):
        specific = _SUBJECT_KINDS[subject] if detail != "0" or subject in ("6", "7") else None
    return specific


def fallback_kind(status: str) -> MailKind:
    """The class a generic status code's subject suggests, when nothing else tells."""
    klass, subject, _ = status.split(".")
    return _FALLBACK_SUBJECT_KINDS.get(subject) or (
        MailKind.SOFT if klass == "4" else MailKind.HARD
    )

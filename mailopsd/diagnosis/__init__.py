"""What a mail server's refusal means: the reason, and the class that follows from it.

Pure: a status code and the server's words in, a :class:`Diagnosis` out. Used by the
inbox's classifier for each recipient of a delivery report, and by the dispatcher for a
refusal at send time, so both read a reply the same way.

The package, by concept: ``reasons`` (the vocabulary and the class of each reason),
``codes`` (RFC 3463 enhanced codes and SMTP reply codes), ``phrases`` (the servers'
words, as data), ``rules`` (weighing them).
"""

from __future__ import annotations

from mailopsd.diagnosis.codes import status_of
from mailopsd.diagnosis.reasons import BY_CLASS, BY_CODE, CLASSES, Reason, class_of, parse_reason
from mailopsd.diagnosis.rules import Diagnosis, diagnose

__all__ = [
    "BY_CLASS",
    "BY_CODE",
    "CLASSES",
    "Diagnosis",
    "Reason",
    "class_of",
    "diagnose",
    "parse_reason",
    "reply_diagnosis",
]


def reply_diagnosis(code: int, text: str) -> Diagnosis:
    """The diagnosis of an SMTP reply: its code and its text (``550``, ``5.7.1 Spam``)."""
    return diagnose(status_of(text), f"{code} {text}")

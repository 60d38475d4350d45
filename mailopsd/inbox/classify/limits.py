"""The classifier's bounds: how much of a message, and of each part of it, is read.

In one place because together they are the promise that any input, however big or deep,
costs time and memory in proportion to these numbers rather than to its size.
"""

from __future__ import annotations

from mailopsd.diagnosis.rules import MAX_WORDS  # characters of a diagnostic matched

__all__ = [
    "MAX_DECODED",
    "MAX_DEPTH",
    "MAX_ENCODED",
    "MAX_FLUFL",
    "MAX_FLUFL_FIELDS",
    "MAX_FLUFL_LINES",
    "MAX_FLUFL_MARKS",
    "MAX_HEAD",
    "MAX_LINE",
    "MAX_MESSAGE",
    "MAX_PARTS",
    "MAX_RECIPIENTS",
    "MAX_REFERENCES",
    "MAX_TEXT",
    "MAX_WORDS",
]

MAX_MESSAGE = 2 * 2**20  # bytes of a message that are parsed: reports come first
MAX_TEXT = 64 * 2**10  # characters kept of each text part
MAX_ENCODED = 96 * 2**10  # bytes of an encoded body decoded to fill MAX_TEXT
MAX_PARTS = 64  # MIME parts looked at
MAX_DEPTH = 8  # MIME nesting followed
MAX_HEAD = 256 * 2**10  # bytes of header fields read before a body must have begun
MAX_RECIPIENTS = 100  # recipients read from one report
MAX_REFERENCES = 100  # Message-IDs kept of those a message refers to, the first ones
MAX_FLUFL = 64 * 2**10  # bytes of a message's body the flufl.bounce detectors scan
MAX_FLUFL_FIELDS = 200  # header fields they see
MAX_FLUFL_LINES = 2000  # lines they see: a detector tries ~50 patterns on each
MAX_FLUFL_MARKS = 2 * MAX_PARTS  # part delimiters and Content-Type fields they may see
MAX_LINE = 998  # characters of a line they see (RFC 5322's limit)
MAX_DECODED = 16 * 2**10  # characters of a field whose encoded words are decoded

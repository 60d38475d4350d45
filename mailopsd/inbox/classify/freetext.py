"""Reading a report written as text: where the returned message begins, who failed, why.

Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo and the others word their reports
differently, but each names the failed address next to the server's reply: the address
is found on its line (not in a sender's or reporter's context), the reply in the lines
around it, and the whole report gives the reason when those lines do not. ``flufl.bounce``
is the last resort for the addresses, kept off what would make its detectors slow.
"""

from __future__ import annotations

import bisect
import email
import email.policy
import functools
import itertools
import re
from collections.abc import Iterable

import flufl.bounce

from mailopsd.diagnosis import codes, rules
from mailopsd.inbox.classify import limits, phrases, reader
from mailopsd.inbox.classify.model import FailedRecipient

__all__ = ["brief", "flufl_recipients", "recipient_lines", "split_returned", "text_recipients"]


# --- The returned message: what we sent ---------------------------------------------------

# A line that opens the copy of the returned message, once stripped of its dashes.
_MARK = re.compile("|".join(phrases.RETURNED_MARK), re.IGNORECASE)
_MARK_WORD = re.compile("|".join(phrases.RETURNED_MARK_WORDS), re.I)
_MARK_TRIM = " \t\r-=*_>[]():.#"
_INLINE_HEADERS = re.compile(r"^(?:Received|Return-Path|DKIM-Signature|Message-I[Dd]):[ \t]", re.M)


def split_returned(text: str) -> tuple[str, str]:
    """Split a text report into the report and the copy of the returned message."""
    checked = -1  # the end of the last line tried: each line once, not once per word in it
    for word in _MARK_WORD.finditer(text):
        if word.start() < checked:
            continue
        start = text.rfind("\n", 0, word.start()) + 1
        end = text.find("\n", word.end())
        end = checked = len(text) if end < 0 else end
        if end - start <= 120 and _MARK.fullmatch(text[start:end].strip(_MARK_TRIM)):
            return text[:start], text[end:]
    headers = _INLINE_HEADERS.search(text)
    if headers is not None:
        return text[: headers.start()], text[headers.start() :]
    return text, ""


# --- Failed recipients in a report's text -------------------------------------------------

# Text just before an address that makes it the sender's or the reporter's.
_SENDER_CONTEXT = re.compile(
    r"(?:" + "|".join(phrases.SENDER_CONTEXT) + r")\W{0,4}$", re.IGNORECASE
)
_SKIP_LINE = re.compile(r"^\s*(?:" + "|".join(phrases.SKIP_FIELDS) + r")\s*:", re.IGNORECASE)
_LEAD_IN = re.compile("|".join(phrases.LEAD_IN), re.IGNORECASE)
_QUOTED_RECIPIENT = re.compile(r"^\s*(?:to|cc|bcc)\s*:", re.IGNORECASE)
_DISPLAY_NAME = re.compile(r"\s*<[^<>@\s]+@")


def _candidates(report: str, exclude: set[str]) -> list[tuple[str, int]]:
    """The addresses a text report names as failed, each with its first line.

    Those after a lead-in ("did not reach the following recipients") come first; those
    only on a quoted ``To:`` line (the original's recipients, not all of them failed)
    count only when there is nothing else.
    """
    found: dict[str, int] = {}
    lines = report.splitlines()
    for index, line in enumerate(lines):
        if "@" not in line or _SKIP_LINE.match(line):
            continue
        for match in reader.ADDRESS.finditer(line):
            address = reader.address_of(match.group(0))
            if address in exclude or address in found:
                continue
            if _DISPLAY_NAME.match(line, match.end()):
                continue  # "a@b <c@d>": the first is a display name
            if _SENDER_CONTEXT.search(line[max(0, match.start() - 24) : match.start()]):
                continue
            found[address] = index
    lead = _LEAD_IN.search(report, 0, limits.MAX_WORDS)
    first = report.count("\n", 0, lead.start()) if lead else 0
    listed = [(a, i) for a, i in found.items() if not _QUOTED_RECIPIENT.match(lines[i])]
    ranked = sorted(listed, key=lambda item: (item[1] < first, item[1]))
    return ranked or sorted(found.items(), key=lambda item: item[1])


def recipient_lines(lines: list[str], start: int, stop: int) -> str:
    """The lines about one recipient: its own, those after it, a transcript before it."""
    before: list[str] = []
    index = start - 1
    while index >= 0 and len(before) < 4 and lines[index].lstrip().startswith(("<<<", ">>>")):
        before.insert(0, lines[index])
        index -= 1
    after = [lines[start]]
    blank = 0
    for line in lines[start + 1 : min(stop, start + 10)]:
        blank = blank + 1 if not line.strip() else 0
        if blank == 2:
            break
        if blank == 0:
            after.append(line)
    return "\n".join(before + after)


def text_recipients(
    report: str, exclude: set[str], *, named: Iterable[str] = (), temporary: rules.Flag
) -> list[FailedRecipient]:
    """Failed recipients of a text report; ``named`` (X-Failed-Recipients) when given."""
    lines = report.splitlines()
    found = _candidates(report, exclude)
    line_of = dict(found)
    starts = sorted(line_of.values())
    order = list(dict.fromkeys(a for a in named if a not in exclude)) or [a for a, _ in found]

    @functools.cache
    def whole() -> tuple[str | None, rules.Diagnosis, str]:
        words = report[: limits.MAX_WORDS]
        status = codes.status_of(words)
        return status, rules.diagnose(status, words, temporary=temporary), words

    recipients = []
    for address in order[: limits.MAX_RECIPIENTS]:
        start = line_of.get(address)
        words = ""
        if start is not None:
            after = bisect.bisect_right(starts, start)
            words = recipient_lines(
                lines, start, starts[after] if after < len(starts) else len(lines)
            )
        if rules.informative(words):
            status = codes.status_of(words)
            said = rules.diagnose(status, words, temporary=temporary)
        else:  # the reason is elsewhere: the whole report gives it
            status, said, words = whole()
        recipients.append(
            FailedRecipient(address, status, said.kind, brief(words), reason=said.reason)
        )
    return recipients


def brief(words: str) -> str:
    """The server's words on one line, cut to what a recipient's diagnostic keeps."""
    return " ".join(words.split())[:300]


def flufl_recipients(
    message: reader.Entity, report: str, *, temporary: rules.Flag
) -> list[FailedRecipient]:
    """The failed addresses ``flufl.bounce`` finds, in the order the report names them."""
    text = _flufl_text(message)
    if text is None:
        return []
    try:
        parsed = email.message_from_string(text, policy=email.policy.compat32)
        soon, never = flufl.bounce.all_failures(parsed)
    except Exception:  # a detector choking on a broken message finds nothing
        return []
    addresses = {_decoded(a): a in soon and a not in never for a in (*never, *soon)}
    lowered = report.lower()

    def position(address: str) -> tuple[int, str]:
        found = lowered.find(address)
        return (found if found >= 0 else len(lowered)), address

    recipients = []
    for address in sorted(addresses, key=position)[: limits.MAX_RECIPIENTS]:
        if reader.ADDRESS.fullmatch(address):
            recipients += text_recipients(
                report,
                set(),
                named=[address],
                temporary=rules.either(addresses[address], temporary),
            )
    return recipients


# A line that opens a MIME part or declares one (the email parser's lines end in CR or LF).
_MIME_MARK = re.compile(r"(?:\A|[\r\n])(?:--|content-type:)", re.IGNORECASE)
_FIRST_LINES = re.compile(rf"(?:[^\r\n]*(?:\r\n?|\n)){{0,{limits.MAX_FLUFL_LINES}}}[^\r\n]*")
_LONG_LINE = re.compile(rf"(?:\A|(?<=[\r\n]))([^\r\n]{{{limits.MAX_LINE}}})[^\r\n]+")


def _flufl_text(message: reader.Entity) -> str | None:
    """The message as the flufl.bounce detectors may read it; ``None`` for a MIME bomb.

    The detectors cost more than the size of what they read: they walk the MIME tree from
    its root for every line (parts times depth), try ~50 patterns on each line, some of
    which backtrack on long lines, and parse address fields slowly. So they get each
    header field unfolded on one line, the body's first lines, every line cut to 998
    characters, and nothing of a message with hundreds of parts or nested messages (no
    report has that many).
    """
    fields = ((name, value) for name, values in message.fields.items() for value in values)
    head = "".join(f"{n}: {v}\n" for n, v in itertools.islice(fields, limits.MAX_FLUFL_FIELDS))
    body = message.body[: limits.MAX_FLUFL].decode("utf-8", "replace")
    text = _LONG_LINE.sub(r"\1", f"{head}\n{body}")
    first = _FIRST_LINES.match(text)
    text = first.group(0) if first else text
    marks = itertools.islice(_MIME_MARK.finditer(text), limits.MAX_FLUFL_MARKS + 1)
    return None if sum(1 for _ in marks) > limits.MAX_FLUFL_MARKS else text


def _decoded(raw: object) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip("<>").lower()

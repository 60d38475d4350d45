"""Malformed mail for the reliability suite: the real-world corpus, broken on purpose.

Every message starts from a seed: a real bounce, auto-reply or complaint of
``tests/data/bounces``, a hand-written sample of ``tests/data/samples``, or a message of
``tests.inbox_mail`` about one of a campaign's leads. One to three mutations then break it
the ways hostile or broken senders do: truncation, lost or repeated MIME boundaries,
nesting hundreds deep, enormous or endlessly folded header fields, invalid charsets and
transfer encodings, NUL and 8-bit bytes, CR-only or LF-only lines, delivery reports and
complaints with broken fields, lying Content-Length, RFC 2047 encoded-word bombs, JSON
bombs, and text made to feed the classifier's regular expressions.

With ``Targets`` the seeds name real leads and the Message-IDs they were sent, and most
messages get a Message-ID of their own, so that a poll records them rather than skipping
them as copies. ``generate`` is deterministic for a given ``random.Random`` state.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import inbox_mail

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "bounces"
SAMPLES = DATA / "samples"


@dataclass(frozen=True)
class Targets:
    """The mailbox being read and the leads it wrote to, with each send's Message-ID."""

    mailbox: str
    sent: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Malformed:
    """One generated message and how it was made, to name it when a check fails."""

    number: int
    seed: str
    mutations: tuple[str, ...]
    raw: bytes

    def describe(self) -> str:
        """``#12 postfix-09.eml + truncate, newlines (4,096 bytes)``."""
        how = ", ".join(self.mutations) or "unchanged"
        return f"#{self.number} {self.seed} + {how} ({len(self.raw):,} bytes)"


@dataclass(frozen=True)
class _Seed:
    name: str
    raw: bytes
    recipient: str | None


@dataclass
class _Context:
    """What a mutation may use: the generator, the size budget, other seeds, the leads."""

    rng: random.Random
    max_size: int
    seeds: list[_Seed]
    targets: Targets | None

    def budget(self, raw: bytes) -> int:
        """Bytes a mutation may still add."""
        return max(0, self.max_size - len(raw))


_Mutation = Callable[[_Context, bytes], bytes]

# --- Seeds --------------------------------------------------------------------------------


def _corpus() -> list[_Seed]:
    labels = [json.loads(line) for line in (CORPUS / "labels.jsonl").read_text().splitlines()]
    seeds = [
        _Seed(label["file"], (CORPUS / label["file"]).read_bytes(), label["recipient"])
        for label in labels
    ]
    seeds += [_Seed(p.name, p.read_bytes(), None) for p in sorted(SAMPLES.glob("*.eml"))]
    return seeds


_BUILDERS: tuple[Callable[[str, str, str], bytes], ...] = (
    lambda lead, box, mid: inbox_mail.reply(lead, box, mid),
    lambda lead, box, mid: inbox_mail.reply(lead, box, None, subject="your note"),
    inbox_mail.auto_reply,
    lambda lead, box, _: inbox_mail.unsubscribe(lead, box),
    lambda _, box, __: inbox_mail.stranger(box),
    inbox_mail.postfix_dsn,
    lambda lead, box, mid: inbox_mail.postfix_dsn(lead, box, mid, status="4.2.2"),
    inbox_mail.exim_bounce,
    inbox_mail.exchange_ndr,
    inbox_mail.gmail_bounce,
    inbox_mail.block_dsn,
    inbox_mail.arf_complaint,
)


def _built(ctx: _Context) -> _Seed:
    """A message of ``tests.inbox_mail`` about a lead (a made-up one without targets)."""
    if ctx.targets is not None and ctx.targets.sent:
        lead, message_id = ctx.rng.choice(ctx.targets.sent)
        box = ctx.targets.mailbox
    else:
        lead, message_id, box = "lead@example.net", "<m1@sender.example.com>", "ada@example.com"
    index = ctx.rng.randrange(len(_BUILDERS))
    return _Seed(f"inbox_mail[{index}]", _BUILDERS[index](lead, box, message_id), lead)


def _aimed(ctx: _Context, seed: _Seed) -> bytes:
    """The seed's bytes, its failed recipient swapped for a lead and threaded to a send."""
    raw = seed.raw
    if ctx.targets is None or not ctx.targets.sent:
        return raw
    lead, message_id = ctx.rng.choice(ctx.targets.sent)
    if seed.recipient is not None:
        raw = re.sub(re.escape(seed.recipient.encode()), lead.encode(), raw, flags=re.I)
    if ctx.rng.random() < 0.5:
        raw = b"In-Reply-To: " + message_id.encode() + b"\r\n" + raw
    return raw


# --- Helpers ------------------------------------------------------------------------------

_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]{1,200})', re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """Header block (with its blank line) and body; all head when there is no blank line."""
    end = _HEAD_END.search(raw)
    return (raw, b"") if end is None else (raw[: end.end()], raw[end.end() :])


def _repeat(unit: bytes, wanted: int, budget: int) -> bytes:
    """``unit`` repeated ``wanted`` times, or as often as ``budget`` bytes allow."""
    return unit * max(1, min(wanted, budget // max(1, len(unit))))


def _insert(ctx: _Context, raw: bytes, piece: bytes) -> bytes:
    at = ctx.rng.randrange(len(raw) + 1)
    return raw[:at] + piece + raw[at:]


def _size(ctx: _Context, raw: bytes) -> int:
    """A size to grow to: mostly small, sometimes everything the budget allows."""
    sizes = (2_000, 20_000, 200_000, ctx.budget(raw))
    return ctx.rng.choices(sizes, weights=(5, 5, 3, 1))[0]


# --- Mutations ----------------------------------------------------------------------------


def truncate(ctx: _Context, raw: bytes) -> bytes:
    """Cut anywhere: mid-header, mid-boundary, mid-base64."""
    return raw[: ctx.rng.randrange(len(raw) + 1)]


def drop_boundaries(ctx: _Context, raw: bytes) -> bytes:
    """Lose every boundary line, only the closing ones, or some of them."""
    found = _BOUNDARY.findall(raw)
    if not found:
        return raw.replace(b"boundary", b"boundery")
    marker = b"--" + ctx.rng.choice(found)
    mode = ctx.rng.choice(("all", "closing", "some", "declaration"))
    if mode == "declaration":
        return _BOUNDARY.sub(b"boundary=", raw, count=1)
    lines = raw.split(b"\n")
    kept = [
        line
        for line in lines
        if not line.startswith(marker)
        or (mode == "closing" and not line.rstrip().endswith(b"--"))
        or (mode == "some" and ctx.rng.random() < 0.5)
    ]
    return b"\n".join(kept)


def repeat_boundaries(ctx: _Context, raw: bytes) -> bytes:
    """One boundary line repeated up to a million times: as many empty parts."""
    found = _BOUNDARY.findall(raw)
    marker = b"--" + (ctx.rng.choice(found) if found else b"b") + b"\r\n"
    wanted = ctx.rng.choice((3, 100, 10_000, 1_000_000))
    return _insert(ctx, raw, _repeat(marker, wanted, ctx.budget(raw)))


def tiny_parts(ctx: _Context, raw: bytes) -> bytes:
    """A multipart of a hundred to millions of empty parts (as the budget allows), the seed
    last."""
    head = b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
    head += b'Content-Type: multipart/mixed; boundary="t"\r\n\r\n'
    part = ctx.rng.choice(
        (b"--t\r\n\r\n", b"--t\n\n", b"--t\r\nContent-Type: text/plain\r\n\r\nx\r\n")
    )
    wanted = ctx.rng.choice((100, 1000, 10_000, 2_000_000))
    parts = _repeat(part, wanted, ctx.budget(raw) - len(head))
    return head + parts + b"--t\r\nContent-Type: message/rfc822\r\n\r\n" + raw


def nest_multipart(ctx: _Context, raw: bytes) -> bytes:
    """The seed inside multiparts hundreds deep, closed or not, one boundary or many."""
    depth = ctx.rng.choice((20, 100, 500, 3000))
    same = ctx.rng.random() < 0.3
    closed = ctx.rng.random() < 0.5
    kind = ctx.rng.choice((b"mixed", b"report; report-type=delivery-status", b"alternative"))
    opening, closing = [], []
    for level in range(depth):
        name = b"n" if same else b"n%d" % level
        opening.append(
            b"Content-Type: multipart/%s; boundary=%s\r\n\r\n--%s\r\n" % (kind, name, name)
        )
        if closed:
            closing.append(b"\r\n--%s--\r\n" % name)
    return b"".join(opening) + raw + b"".join(reversed(closing))


def nest_messages(ctx: _Context, raw: bytes) -> bytes:
    """The seed as a message/rfc822 inside a message/rfc822, hundreds deep."""
    depth = ctx.rng.choice((10, 100, 1000, 5000))
    level = ctx.rng.choice(
        (
            b"Content-Type: message/rfc822\r\n\r\n",
            b"From: MAILER-DAEMON@x.example\r\nContent-Type: message/rfc822\r\n\r\n",
            b'Content-Type: multipart/report; boundary="r"\r\n\r\n--r\r\n'
            b"Content-Type: message/rfc822\r\n\r\n",
        )
    )
    return _repeat(level, depth, ctx.budget(raw)) + raw


_FIELDS = (
    b"Subject",
    b"From",
    b"To",
    b"References",
    b"In-Reply-To",
    b"Message-ID",
    b"X-Junk",
    b"Content-Type",
    b"Received",
    b"X-Failed-Recipients",
    b"Auto-Submitted",
)
_FILLERS = (
    b"a",
    b" ",
    b"lead@example.net, ",
    b"<x@y> ",
    b"550 5.1.1 ",
    b"; a=b",
    b"\xc3\xa9",
    b"=?",
    b"http://x/",
)


def huge_header(ctx: _Context, raw: bytes) -> bytes:
    """One header field of up to megabytes on a single line."""
    name = ctx.rng.choice(_FIELDS)
    filler = ctx.rng.choice(_FILLERS)
    value = _repeat(filler, _size(ctx, raw) // len(filler), ctx.budget(raw))
    return name + b": " + value + b"\r\n" + raw


def folded_header(ctx: _Context, raw: bytes) -> bytes:
    """One header field folded over tens of thousands of continuation lines."""
    name = ctx.rng.choice(_FIELDS)
    fold = ctx.rng.choice((b" x\r\n", b"\tx\n", b" lead@example.net,\r\n", b" =?utf-8?q?a?=\r\n"))
    value = _repeat(fold, _size(ctx, raw) // len(fold), ctx.budget(raw))
    return name + b": start\r\n" + value + raw


_CHARSETS = (
    b"x-unknown",
    b"utf-8\x00",
    b"",
    b"rot13",
    b"hex",
    b"base64",
    b"zlib",
    b"undefined",
    b"punycode",
    b"idna",
    b"unicode_escape",
    b"utf-7",
    b"utf-16",
    b"utf-32-be",
    b"mbcs",
    b"iso-2022-jp",
    b"A" * 5000,
    b"../../../etc/passwd",
    b"utf-8'en'",
)


def bad_charset(ctx: _Context, raw: bytes) -> bytes:
    """Every declared charset, in parameters and encoded words, replaced by a hostile one."""
    charset = ctx.rng.choice(_CHARSETS)
    raw = re.sub(rb'charset\s*=\s*"?[^";\s]*"?', b'charset="' + charset + b'"', raw, flags=re.I)
    raw = re.sub(rb"=\?[^?\s]*\?([bBqQ])\?", b"=?" + charset + rb"?\1?", raw)
    head, body = _split(raw)
    return (
        head.replace(
            b"\r\n\r\n", b"\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\n", 1
        )
        + body
    )


def bad_transfer_encoding(ctx: _Context, raw: bytes) -> bytes:
    """Bodies that lie about their transfer encoding, or break it."""
    encoding = ctx.rng.choice(
        (b"base64", b"quoted-printable", b"x-uuencode", b"8bit", b"b\x00se64")
    )
    raw = re.sub(
        rb"(?im)^content-transfer-encoding:[^\r\n]*", b"Content-Transfer-Encoding: " + encoding, raw
    )
    head, body = _split(raw)
    if b"content-transfer-encoding" not in head.lower():
        head = b"Content-Transfer-Encoding: " + encoding + b"\r\n" + head
    junk = ctx.rng.choice((b"!!!", b"=ZZ", b"=", b"====", b"=\r\n", b"A", b"\xff\xfe", b"=?"))
    for _ in range(ctx.rng.choice((1, 10, 1000))):
        body = _insert(ctx, body, junk)
    return head + body


def nul_bytes(ctx: _Context, raw: bytes) -> bytes:
    """NUL bytes sprinkled anywhere, or ending every line."""
    if ctx.rng.random() < 0.3:
        return raw.replace(b"\n", b"\x00\n")
    for _ in range(ctx.rng.choice((1, 10, 100))):
        raw = _insert(ctx, raw, b"\x00" * ctx.rng.choice((1, 1, 1000)))
    return raw


def newlines(ctx: _Context, raw: bytes) -> bytes:
    """CR-only, LF-only, doubled or mixed line endings."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    ending = ctx.rng.choice((b"\r", b"\n", b"\r\r\n", b"\n\r", None))
    if ending is not None:
        return ending.join(lines)
    return b"".join(line + ctx.rng.choice((b"\r", b"\n", b"\r\n")) for line in lines)


def eight_bit_headers(ctx: _Context, raw: bytes) -> bytes:
    """Raw 8-bit bytes in header names and values: Latin-1, broken UTF-8, random."""
    head, body = _split(raw)
    piece = ctx.rng.choice(
        (b"\xe9", b"\xc3", b"\xff\xfe\xfd", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
    )
    for _ in range(ctx.rng.choice((1, 20, 500))):
        head = _insert(ctx, head, piece)
    return head + body


_DSN_FIELDS = re.compile(
    rb"(?im)^(final-recipient|original-recipient|action|status|diagnostic-code|remote-mta"
    rb"|reporting-mta|original-rcpt-to|feedback-type|removal-recipient):[^\r\n]*"
)
_GARBLED = (
    b"",
    b"rfc822;",
    b"rfc822; <>",
    b"rfc822; @",
    b"rfc822; a@" + b"b" * 5000,
    b"5.1.99999999",
    b"9.9.9",
    b"5.",
    b"5.1.1." * 2000,
    b"failed" * 1000,
    b"smtp; " + b"550 " * 5000,
    b"\xff\xfe\x00",
)


def broken_reports(ctx: _Context, raw: bytes) -> bytes:
    """DSN and ARF fields missing, garbled or repeated thousands of times."""
    mode = ctx.rng.choice(("drop", "garble", "repeat"))
    if mode == "drop":
        return _DSN_FIELDS.sub(b"", raw)
    if mode == "garble":
        return _DSN_FIELDS.sub(lambda m: m.group(1) + b": " + ctx.rng.choice(_GARBLED), raw)
    fields = b"".join(m.group(0) + b"\r\n" for m in _DSN_FIELDS.finditer(raw)) or (
        b"Final-Recipient: rfc822; lead@example.net\r\nAction: failed\r\n"
    )
    block = fields + b"\r\n"
    return _insert(ctx, raw, _repeat(block, ctx.rng.choice((100, 5000)), ctx.budget(raw)))


def many_recipients(ctx: _Context, raw: bytes) -> bytes:
    """A delivery report naming hundreds of recipients, then pages of short text lines."""
    leads = [lead for lead, _ in ctx.targets.sent] if ctx.targets else ["lead@example.net"]
    blocks = b"".join(
        b"Final-Recipient: rfc822; %s\r\nAction: failed\r\n\r\n"
        % (ctx.rng.choice(leads).encode() if n % 7 == 0 else b"u%d@example.com" % n)
        for n in range(ctx.rng.choice((120, 1000)))
    )
    unit = ctx.rng.choice((b"x\r\n", b"copy \r\n", b"a@b.cc\r\n"))
    filler = _repeat(unit, _size(ctx, raw) // len(unit), ctx.budget(raw) // 2)
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\n" + filler + b"\r\n"
        b"--m\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        + blocks
        + b"--m\r\nContent-Type: message/rfc822\r\n\r\n"
        + raw
    )


def complaint_garbage(ctx: _Context, raw: bytes) -> bytes:
    """An ARF report whose feedback part is random bytes or endless fields."""
    garbage = ctx.rng.choice(
        (
            ctx.rng.randbytes(ctx.rng.choice((10, 5000, 100_000))),
            _repeat(b"Original-Rcpt-To: <lead@example.net>\r\n", 50_000, ctx.budget(raw)),
            b"Feedback-Type: \xff\r\nVersion: -1\r\nOriginal-Rcpt-To:\r\n",
            b"",
        )
    )
    return (
        b"From: feedback@fbl.example.net\r\nSubject: Complaint\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
        b"--f\r\nContent-Type: message/feedback-report\r\n\r\n" + garbage + b"\r\n"
        b"--f\r\nContent-Type: message/rfc822\r\n\r\n" + raw + b"\r\n--f--\r\n"
    )


def content_length_lie(ctx: _Context, raw: bytes) -> bytes:
    """A Content-Length that lies, at the top and in every part."""
    lie = ctx.rng.choice((b"99999999999999999999999", b"-1", b"0", b"abc", b"1e9999"))
    raw = b"Content-Length: " + lie + b"\r\n" + raw
    return re.sub(rb"(?im)^(content-type:)", b"Content-Length: " + lie + rb"\r\n\1", raw)


_WORDS = (
    b"=?utf-8?q?a?= ",
    b"=?utf-8?q?a?=",
    b"=?utf-8?B?w6k=?= =?iso-8859-1?q?=E9?= ",
    b"=?x-unknown?q?a?= ",
    b"=?utf-8?B?////?=",
    b"=?=?utf-8?q?=?=?= ",
    b"=?utf-8*en?q?a?= ",
    b"=?punycode?q?a-b9?= ",
)


def encoded_word_bomb(ctx: _Context, raw: bytes) -> bytes:
    """Thousands of RFC 2047 encoded words in the fields the classifier decodes."""
    name = ctx.rng.choice((b"Subject", b"From", b"To", b"References", b"Auto-Submitted"))
    word = ctx.rng.choice(_WORDS)
    count = ctx.rng.choice((10, 1000, 20_000, 10**6))
    return name + b": " + _repeat(word, count, min(ctx.budget(raw), 300_000)) + b"\r\n" + raw


def json_bomb(ctx: _Context, raw: bytes) -> bytes:
    """An Amazon SES notification that nests, overflows or lists without end."""
    budget = max(100, ctx.budget(raw) // 2)
    body = ctx.rng.choice(
        (
            b'{"notificationType":"Bounce","bounce":' + b"[" * min(budget, 200_000),
            b'{"notificationType":"Bounce","x":' + b"9" * min(budget, 100_000) + b"}",
            b'{"notificationType":"Bounce","bounce":{"bouncedRecipients":['
            + _repeat(b'{"emailAddress":"lead@example.net","status":"5.1.1"},', 10**6, budget)
            + b"{}]}}",
            b'{"Message":"' + b"\\u0000" * min(budget // 6, 50_000) + b'"}',
            b'{"eventType":"Complaint","complaint":{"complainedRecipients":"\\ud800"}}',
        )
    )
    return b"Subject: SES notification\r\nContent-Type: text/plain\r\n\r\n" + body


_REGEX_FOOD = (
    b"a" * 64,
    b"a.",
    b"@",
    b"x@y.",
    b"copy ",
    b"5.1.1 ",
    b"550 ",
    b"<",
    b"in reply to ",
    b"mailbox ",
    b"http://",
    b"=?",
    b"\t",
    b"-",
)


def regex_food(ctx: _Context, raw: bytes) -> bytes:
    """Long runs of what the classifier's patterns look for, on one line or many."""
    unit = ctx.rng.choice(_REGEX_FOOD) + ctx.rng.choice((b"", b"", b"\n"))
    return _insert(ctx, raw, _repeat(unit, _size(ctx, raw) // len(unit), ctx.budget(raw)))


def splice(ctx: _Context, raw: bytes) -> bytes:
    """A slice of another message dropped in anywhere."""
    other = ctx.rng.choice(ctx.seeds).raw
    start = ctx.rng.randrange(len(other) + 1)
    return _insert(ctx, raw, other[start : start + ctx.rng.randrange(1, 4000)])


MUTATIONS: dict[str, _Mutation] = {
    fn.__name__: fn
    for fn in (
        truncate,
        drop_boundaries,
        repeat_boundaries,
        tiny_parts,
        nest_multipart,
        nest_messages,
        huge_header,
        folded_header,
        bad_charset,
        bad_transfer_encoding,
        nul_bytes,
        newlines,
        eight_bit_headers,
        broken_reports,
        many_recipients,
        complaint_garbage,
        content_length_lie,
        encoded_word_bomb,
        json_bomb,
        regex_food,
        splice,
    )
}


# --- The generator ------------------------------------------------------------------------


def _one(ctx: _Context, number: int, *, unique_ids: bool) -> Malformed:
    seed = _built(ctx) if ctx.rng.random() < 0.3 else ctx.rng.choice(ctx.seeds)
    raw = _aimed(ctx, seed)
    names = ctx.rng.sample(sorted(MUTATIONS), ctx.rng.choice((1, 1, 2, 3)))
    for name in names:
        raw = MUTATIONS[name](ctx, raw)
        if len(raw) > ctx.max_size:
            raw = raw[: ctx.max_size]
    if unique_ids and ctx.rng.random() < 0.85:
        raw = b"Message-ID: <hostile-%d@test.example>\r\n" % number + raw
    return Malformed(number, seed.name, tuple(names), raw)


def generate(
    rng: random.Random,
    count: int,
    *,
    max_size: int,
    targets: Targets | None = None,
) -> Iterator[Malformed]:
    """Yield ``count`` malformed messages, each at most ``max_size`` bytes (+ a Message-ID).

    Args:
        rng: The source of every choice; the same state gives the same messages.
        count: How many messages.
        max_size: The size cap: longer results are cut (a truncation of their own).
        targets: Leads and Message-IDs to aim the messages at; with them, 85% of the
            messages get a Message-ID of their own.

    Yields:
        The messages, numbered from 0.
    """
    ctx = _Context(rng, max_size, _corpus(), targets)
    for number in range(count):
        yield _one(ctx, number, unique_ids=targets is not None)

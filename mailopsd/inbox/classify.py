"""Classifying what arrives in a sending mailbox: bounces, complaints, auto-replies, replies.

Pure: bytes in, a ``Classification`` out, and never an exception, whatever the bytes.

Delivery reports are read from RFC 3464 ``message/delivery-status`` parts; from the same
fields when an MTA writes them as text; from Amazon SES notifications; and otherwise from
the text that MTAs write. Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo and the
others word their reports differently, but each names the failed address next to the
server's reply; ``flufl.bounce`` is the last resort for the addresses. Complaints are RFC
5965 (ARF) reports. Each failed recipient gets a class:

- ``hard``: the address does not exist, its domain does not, or the account is closed;
- ``soft``: passing or recipient-side trouble: mailbox full, message too big, network,
  expiry in the queue, the receiving system's own errors, greylisting;
- ``block``: the sender was refused (spam, blocklists, reputation, policy, SPF, DKIM,
  DMARC, reverse DNS, authentication, relaying, content), which speaks of the sending
  mailbox, not of the address.

The class comes from the RFC 3463 enhanced status code when it is specific (``5.1.1``,
``4.2.2``, ``5.7.1``...), else from the server's words, else from the SMTP command that
was refused (a refusal at connect, HELO or MAIL FROM is about the sender), else from the
SMTP reply code. Messages that are not reports are auto-replies (RFC 3834 and the older
vendor headers, out-of-office subjects), unsubscribe requests, replies or ``other``.
"""

from __future__ import annotations

import binascii
import bisect
import email
import email.errors
import email.header
import email.policy
import encodings
import encodings.aliases
import functools
import html
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import flufl.bounce

__all__ = ["KINDS", "Classification", "FailedRecipient", "classify"]

KINDS = (
    "hard",
    "soft",
    "block",
    "feedback",
    "auto_reply",
    "delivered",
    "unsubscribe",
    "reply",
    "other",
)

_MAX_MESSAGE = 2 * 2**20  # bytes of a message that are parsed: reports come first
_MAX_TEXT = 64 * 2**10  # characters kept of each text part
_MAX_ENCODED = 96 * 2**10  # bytes of an encoded body decoded to fill _MAX_TEXT
_MAX_WORDS = 16 * 2**10  # characters of a diagnostic matched against the word rules
_MAX_PARTS = 64  # MIME parts looked at
_MAX_DEPTH = 8  # MIME nesting followed
_MAX_RECIPIENTS = 100  # recipients read from one report
_MAX_REFERENCES = 100  # Message-IDs kept of those a message refers to, the first ones
_MAX_FLUFL = 64 * 2**10  # bytes of a message's body the flufl.bounce detectors scan
_MAX_FLUFL_FIELDS = 200  # header fields they see
_MAX_FLUFL_LINES = 2000  # lines they see: a detector tries ~50 patterns on each
_MAX_FLUFL_MARKS = 2 * _MAX_PARTS  # part delimiters and Content-Type fields they may see
_MAX_LINE = 998  # characters of a line they see (RFC 5322's limit)
_MAX_DECODED = 16 * 2**10  # characters of a field whose encoded words are decoded


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a report names.

    For a bounce, the address that failed (``original``: the address as first given, when
    the report names another one); for a complaint, the complaining recipient; for an
    auto-reply or an unsubscribe request, the address that sent it.
    """

    address: str
    status: str | None
    kind: str
    diagnostic: str = ""
    original: str | None = None


@dataclass(frozen=True)
class Classification:
    """What a message is.

    ``kind`` is ``hard``, ``soft``, ``block``, ``feedback``, ``auto_reply``, ``delivered``,
    ``unsubscribe``, ``reply`` or ``other``; for reports it is the first recipient's class.
    ``references`` holds the Message-IDs it refers to (the returned message's first, then
    In-Reply-To and References; the first 100), ``sender`` the From address, ``notes`` how
    it was read.
    """

    kind: str
    recipients: tuple[FailedRecipient, ...] = ()
    references: tuple[str, ...] = ()
    sender: str | None = None
    subject: str = ""
    notes: tuple[str, ...] = field(default=())


def classify(raw: bytes) -> Classification:
    """Classify one message.

    Args:
        raw: The message as received. Any size and any bytes: broken MIME, unknown
            charsets and binary garbage give a class, never an exception.

    Returns:
        The classification; ``other`` when nothing applies.
    """
    try:
        return _classify(raw)
    except Exception as err:  # the contract is a class for any input
        return Classification("other", notes=(f"unreadable: {type(err).__name__}",))


# --- Status codes -------------------------------------------------------------------------

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
_FAIL_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\d)")
_REPLY_CODE = re.compile(r"(?:^|(?<=[\s:;'\"(\[<#=]))([45])[0-5]\d(?=[\s\])'\".,;:]|-\d\.|$)")

# (subject, detail) -> class, for the codes of RFC 3463 that say what happened.
_STATUS_KINDS = {
    ("1", "1"): "hard",  # bad destination mailbox address
    ("1", "2"): "hard",  # bad destination system address
    ("1", "3"): "hard",  # bad destination mailbox address syntax
    ("1", "4"): "hard",  # destination mailbox address ambiguous
    ("1", "6"): "hard",  # destination mailbox has moved
    ("1", "10"): "hard",  # recipient address has null MX (RFC 7505)
    ("1", "7"): "block",  # bad sender's mailbox address syntax
    ("1", "8"): "block",  # bad sender's system address
    ("2", "1"): "hard",  # mailbox disabled, not accepting messages
    ("2", "2"): "soft",  # mailbox full
    ("2", "3"): "soft",  # message length exceeds administrative limit
    ("2", "4"): "soft",  # mailing list expansion problem
    ("4", "4"): "hard",  # unable to route: the domain has no mail host
}
# Subjects whose every specific code means one class: X.3 the receiving system, X.4
# network and routing (X.4.7: expired in the queue), X.5 protocol, X.6 content, X.7
# security and policy. X.4.1 ("no answer from host") is left to the words: Exchange also
# uses it to refuse an address its directory does not know.
_SUBJECT_KINDS = {"3": "soft", "4": "soft", "5": "block", "6": "block", "7": "block"}
# For the "other" codes (X.Y.0), when the words tell nothing.
_FALLBACK_SUBJECT_KINDS = {"1": "hard", "2": "soft", "3": "soft", "4": "soft", "5": "block"}


def _status_of(text: str) -> str | None:
    """The most telling failure status in ``text``: the first specific one, else the first."""
    first = None
    for match in _FAIL_STATUS.finditer(text):
        if match.group(2) != "0" or match.group(3) != "0":
            return ".".join(match.groups())
        first = first or ".".join(match.groups())
    return first


def _status_kind(status: str) -> str | None:
    """The class a status code names by itself, ``None`` for the generic ones."""
    klass, subject, detail = status.split(".")
    if (klass, subject, detail) == ("5", "3", "2"):
        return "hard"  # the host takes no mail at all (RFC 7504's 521)
    if klass == "4" and (subject == "2" or (subject, detail) == ("5", "3")):
        return "soft"  # the mailbox is unavailable, or too many recipients, for now
    specific = _STATUS_KINDS.get((subject, detail))
    if specific is None and subject in _SUBJECT_KINDS and (subject, detail) != ("4", "1"):
        specific = _SUBJECT_KINDS[subject] if detail != "0" or subject in ("6", "7") else None
    return specific


# --- The server's words -------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """Phrases that name a class, and the status codes they overrule."""

    kind: str
    pattern: re.Pattern[str]
    overrules: re.Pattern[str] | None = None


def _rule(kind: str, *phrases: str, overrules: str | None = None) -> _Rule:
    return _Rule(
        kind, re.compile("|".join(phrases)), None if overrules is None else re.compile(overrules)
    )


# Matched against the words lowercased, addresses removed and links cut to their host.
# The first rule that matches names the class, so the specific come before the general
# and the sender's trouble before the recipient's ("domain of sender address does not
# exist" is about the sender).
_RULES = (
    # The sender's own volume: a sending quota is not the recipient's mailbox quota.
    _rule(
        "block",
        r"\b(?:daily|hourly|sending|outgoing|outbound) (?:message |e?mail )?(?:quota|limit)",
        overrules=r"",
    ),
    # A full mailbox, in the many ways servers say it.
    _rule(
        "soft",
        r"(?:mail ?box|mail ?folder|mail ?drop|inbox|postfach|buz[oó]n|bo[iî]te|casella)"
        r"[^.;]{0,40}?(?:\bfull\b|\bvoll\b|llen[oa]|plein|pien[ao]|exceed|quota)",
        r"\bover ?quota",
        r"quota (?:exceeded|exceed|full|violation)",
        r"exceeded (?:\w+ ){0,3}quota",
        r"(?:disk|storage|mailbox) quota",
        r"exceeded storage",
        r"storage (?:limit|full|exceeded)",
        r"(?:insufficient|not enough|out of|no) (?:disk |storage |free )?space",
        r"number of messages[^.;]{0,60}exceed",
        r"too many messages (?:in|on|for) ",
    ),
    # The recipient's account exists but is closed, disabled or blocked.
    _rule(
        "hard",
        r"(?<!your )(?<!sending )(?<!sender )\b(?:account|mailbox|mail box)\b[^.;:]{0,40}?"
        r"\b(?:disabled|suspended|deactivated|inactive|closed|locked|frozen|expired|blocked"
        r"|terminated|discontinued|deleted|removed|cancell?ed|bloqu[eé]e?|gesperrt)\b",
        r"\buser (?:is |has been )?(?:disabled|suspended|deactivated|inactive|terminated)",
    ),
    # The sender's address or domain, relaying, authentication.
    _rule(
        "block",
        r"\bsender\b[^.;]{0,30}?\b(?:rejected|denied|blocked|refused|unknown|invalid"
        r"|not (?:allowed|authori[sz]ed|permitted|accepted)|verif)",
        r"(?:domain of|invalid|unknown|bad|unverified|unauthori[sz]ed|forged) sender",
        r"sender (?:address|domain|verify|verification|policy|mailbox|ip)\b",
        r"envelope[- ]sender",
        r"mail from address",
        r"from address (?:rejected|not|is)",
        r"relay(?:ing)? (?:access )?(?:denied|not (?:allowed|permitted)|prohibited|refused)",
        r"unable to relay",
        r"not (?:allowed|permitted|authori[sz]ed) to relay",
        r"(?:open|insecure)(?: mail)? relay",
        r"we do not relay",
        r"no relaying",
        r"authenticat",
        r"\bauth\b",
        overrules=r"",
    ),
    # The receiving server limits connections or greylists: come back later.
    _rule(
        "soft",
        r"too many (?:concurrent |simultaneous |open )?connections",
        r"connection (?:rate |count )?limit",
        r"(?:concurrent|simultaneous) connections",
        r"gr[ae]y-?list",
        overrules=r"^4\.",
    ),
    # The address or its domain does not exist.
    _rule(
        "hard",
        r"\b(?:user|recipient|addressee|mailbox|address|account|alias|destination|local part)s?"
        r" (?:is )?(?:unknown|not found|not known|not exist|does not exist|doesn't exist"
        r"|invalid|not valid|unavailable|not available|not listed|no longer|not local)",
        r"\bunknown (?:user|recipient|address|mailbox|local[- ]?part|alias|account|e-?mail)",
        r"no such (?:user|mailbox|recipient|address|account|person|domain|host|local user)",
        r"unknown or illegal",
        r"illegal alias",
        r"invalid (?:recipient|mailbox|address|user|destination|e-?mail)",
        r"bad (?:destination|recipient)",
        r"not a valid (?:mailbox|recipient|user|address|e-?mail)",
        r"no valid recipient",
        r"no mailbox",
        r"mailbox name (?:not allowed|invalid)",
        r"(?:does not|doesn't|did not) exist",
        r"non-?existent (?:domain|host|address|user|mailbox|recipient)",
        r"(?:does not|doesn't) have an? (?:[\w.-]+ )?account",
        r"not our customer",
        r"not listed in",
        r"wasn'?t found",
        r"couldn'?t be found",
        r"was not found",
        r"recip(?:ient)?notfound",
        r"no account",
        r"no longer (?:valid|available|active|exists|with|employed|in use|accept)",
        r"(?:has|have) moved",
        r"moved (?:permanently|to )",
        r"address (?:has )?changed",
        r"recipient address rejected: access denied",
        r"address syntax",
        r"(?:recipient|user|address|name)\b[^.;]{0,20}not recognized",
        r"(?:utilisateur|destinataire|benutzer|empf[aä]nger|usuario|destinatario|utente)"
        r" (?:inconnu|unbekannt|desconocido|sconosciuto)",
        r"n'existe pas|existiert nicht|no existe|non esiste",
        r"host (?:unknown|not found)",
        r"unknown (?:host|domain)",
        r"(?:domain|host) (?:name )?(?:not found|does not exist|doesn't exist|lookup failed)",
        r"domain (?:is )?not reachable",
        r"(?:couldn'?t|could not|can'?t|cannot|unable to) find (?:any |the )?"
        r"(?:host|domain|mail server|mx)",
        r"name service error",
        r"name or service not known",
        r"unroutea?ble",
        r"no mx\b|null mx",
        r"no smtp service",
        r"nxdomain",
        r"invalid domain|domain (?:is )?(?:invalid|not valid)",
    ),
    # The message or the sending host was refused: spam, lists, reputation, policy.
    _rule(
        "block",
        r"spam|unsolicited|\bjunk\b|bulk mail",
        r"black ?list|block ?list|deny ?list|blocked|banned",
        r"\brbl\b|dnsbl|spamhaus|spamcop|sorbs|barracuda|uceprotect|cloudmark",
        r"listed (?:at|in|on|by)",
        r"reputation",
        r"\bpolic(?:y|ies)\b",
        r"dmarc|\bspf\b|\bdkim\b",
        r"\bptr\b|reverse (?:dns|lookup)|\brdns\b|your (?:host ?name|reverse)",
        r"client host|hostname|\bhelo\b|\behlo\b",
        r"virus|malware|infected|phishing|suspicious|fraud",
        r"prohibited|forbidden|denied",
        r"not (?:allowed|authori[sz]ed|permitted|accepted)",
        r"(?:message|mail|content|e-?mail)s? (?:was |has been |is )?"
        r"(?:rejected|refused|blocked|declined)",
        r"(?:rejected|refused) (?:due to|because|for|by|as|per|under)",
        r"refused to talk to me",
        r"rate limit|too many (?:messages|mails|e-?mails|recipients|requests)|throttl",
        r"complaints?\b",
        r"unusual rate",
        r"mismatch|does not match",
        r"malformed|syntax|incorrectly constructed",
        r"not implemented|command not recognized|bad sequence",
        r"non-?member|not a member|members[- ]only|moderat|permission to post|google groups?",
        r"content filter|filtered",
        overrules=r"^\d\.1\.",
    ),
    # Too big, expired in the queue, network, the receiving system's own trouble.
    _rule(
        "soft",
        r"too (?:big|large)",
        r"size (?:limit|exceed)",
        r"exceed\w* (?:the )?(?:\w+ ){0,3}size",
        r"(?:message|mail) (?:size|length) exceed",
        r"line (?:length )?limit exceeded|line too long",
        r"expired",
        r"retry (?:time|timeout|period)",
        r"timeout|time ?out|timed out",
        r"not (?:been )?(?:delivered|collected) (?:within|for|after|in)",
        r"delivered for",
        r"unable to deliver in",
        r"(?:aborted|gave up|giving up) after|giving up|gave up",
        r"failed \d+ attempts|repeated attempts",
        r"maximum (?:number of )?(?:delivery )?(?:attempts|retries|time)",
        r"too long in (?:the )?queue|queued? too long",
        r"connection (?:refused|rejected|reset|lost|closed|dropped|failed|failure|error"
        r"|timed out)",
        r"(?:refus\w*|unable|failed|could ?n[o']t|cannot|can't) (?:\w+ ){0,3}connect",
        r"socket error|no route to host|unreachable|not responding|no answer",
        r"could not find a gateway",
        r"routing loop|mail loop|loops? back|loop detected|too many hops|hop count",
        r"lost connection|network (?:error|failure)",
        r"dns (?:error|failure|timeout)",
        r"system error|internal (?:server |system )?error",
        r"(?:local|temporary|unexpected) (?:error|problem|failure)",
        r"(?:server|system|host) (?:is )?(?:overloaded|full)|\bbusy\b",
        r"insufficient (?:system )?(?:resources|storage)",
        r"resources? (?:temporarily )?unavailable",
        r"(?:service|currently|temporarily) (?:is )?unavailable",
        r"service (?:is )?(?:currently |temporarily )?unavailable",
        r"command died|mailer error|delivery program|local delivery|child status",
        r"configuration error|misconfigur",
        r"write error|i/o error|queue file|out of memory",
        r"deferred|temporar|try (?:again )?later|please try again",
        r"not accepting",
    ),
)

# The SMTP command a refusal answered. Before RCPT TO, a refusal is about the sender.
_STAGE = re.compile(
    r"(?:in reply to|after|following|error (?:after|following)|during|response to)"
    r" (?:the )?(?:pipelined )?(rcpt|mail\b|mail from|data|end of data|helo|ehlo|greeting"
    r"|connect|initial connection|banner|starttls|auth)"
    # [ \t]*, not \s*: from every line start, \s* would run over all the blank lines after it.
    r"|(refused to talk to me)|^[ \t]*>>> (rcpt|mail|data|helo|ehlo)",
    re.IGNORECASE | re.MULTILINE,
)
_URL = re.compile(r"(?:https?|ftp)://([\w.-]*)\S*|\b(www\.[\w.-]+)\S*", re.IGNORECASE)
# The local part starts where no local-part character precedes: the scan stays linear in
# long runs of word characters (base64, hex dumps).
_ADDRESS = re.compile(
    r"(?<![\w.+=!#$%&'*/?^`{|}~-])[\w.+=!#$%&'*/?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"
)


@functools.lru_cache(maxsize=512)
def _said(words: str) -> _Rule | None:
    """The first rule the server's words match."""
    text = words[:_MAX_WORDS]
    if "@" in text:
        text = _ADDRESS.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(_url_host, text)
    text = " ".join(text.split()).lower()
    return next((rule for rule in _RULES if rule.pattern.search(text)), None)


def _url_host(match: re.Match[str]) -> str:
    """A link stands for its host: its path and anchors are not the server's words."""
    return f" {match.group(1) or match.group(2) or ''} "


def _stage_kind(words: str) -> str | None:
    """``block`` when a refusal answered the greeting, HELO, MAIL FROM or the content.

    The last command named is the one refused (a transcript lists those before it).
    """
    stages = list(_STAGE.finditer(words))
    if not stages:
        return None
    command = next(group for group in stages[-1].groups() if group).lower()
    if command.startswith("rcpt"):
        return None
    if command.startswith(("data", "end of data")):
        reply = _REPLY_CODE.search(words)
        return None if reply is not None and reply.group(1) == "4" else "block"
    return "block"


_Flag = Callable[[], bool]  # a yes or no worked out only when needed


def _either(flag: bool, lazy: _Flag) -> _Flag:
    """A flag already known to be set, else ``lazy``."""
    return _always if flag else lazy


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def _kind_of(status: str | None, words: str, *, temporary: _Flag = _never) -> str:
    """The class of one failed recipient from its status code and the server's words.

    A specific status code decides, unless the words plainly overrule it: the sender's
    own address, relaying or sending quota are the sender's trouble whatever the code;
    servers refuse a blocked sender at RCPT TO with whatever address code comes to hand;
    greylisting and connection limits answer with any 4.x.x. Else the words decide,
    then the SMTP command that was refused, then the code's subject, then the reply
    code (RFC 7504's 521 and 556 say the host or domain takes no mail at all).
    """
    if status is not None and status.startswith("2."):
        return "delivered"
    said = _said(words)
    if status is not None and (specific := _status_kind(status)) is not None:
        if said is not None and said.overrules is not None and said.overrules.search(status):
            return said.kind
        return specific
    found = said.kind if said is not None else _stage_kind(words)
    if found is not None:
        return found
    reply = _REPLY_CODE.search(words)
    if reply is not None and reply.group(0) in ("521", "556"):
        return "hard"
    if status is not None:
        klass, subject, _ = status.split(".")
        return _FALLBACK_SUBJECT_KINDS.get(subject) or ("soft" if klass == "4" else "hard")
    if reply is not None:
        return "soft" if reply.group(1) == "4" else "hard"
    return "soft" if temporary() else "hard"


def _informative(words: str) -> bool:
    """Whether ``words`` carry a code or a phrase that names a class."""
    return bool(_FAIL_STATUS.search(words) or _REPLY_CODE.search(words) or _said(words))


# --- Reading a message --------------------------------------------------------------------
#
# A small MIME reader that takes what a report needs (headers, text parts, report parts,
# the returned message's headers), reads only the head of a big body, and never fails:
# what it cannot make sense of is text. It is several times faster than a full parse.

_TAG = re.compile(r"<[^<>]{0,2000}>")
_RETURNED_TYPES = frozenset({"message/rfc822", "message/global"})
_HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_BLANK = re.compile(rb"[\x00-\x20\x7f]")
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_PARAM = re.compile(r';\s*([\w.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_MAX_HEAD = 256 * 2**10  # bytes of header fields read before a body must have begun


@dataclass
class _Entity:
    """A message or a MIME part: its header fields (by lowercased name) and its raw body."""

    fields: dict[str, list[str]]
    body: bytes

    def get(self, name: str) -> str | None:
        """The first value of a field, as written."""
        values = self.fields.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        """A field's text, encoded words decoded, on one line; ``""`` when absent."""
        value = self.get(name)
        if value is None:
            return ""
        if "=?" in value:  # decoding costs the square of the words: the head says enough
            value = _decode_words(value[:_MAX_DECODED]) + value[_MAX_DECODED:]
        return " ".join(value.split())

    @functools.cached_property
    def content_type(self) -> tuple[str, dict[str, str]]:
        """The MIME type (``text/plain`` when missing or invalid) and its parameters."""
        kind, _, rest = (self.get("content-type") or "").partition(";")
        kind = kind.strip().lower()
        if not _MIME_TYPE.fullmatch(kind):
            kind = "text/plain"
        params = {
            name.lower().rstrip("*"): value.strip('"')
            for name, value in _PARAM.findall(";" + rest[:4096])
        }
        return kind, params

    def payload(self, limit: int) -> bytes:
        """The body decoded from its transfer encoding, about ``limit`` bytes of it."""
        data = self.body[:limit]
        encoding = (self.get("content-transfer-encoding") or "").strip().lower()
        if encoding == "base64":
            data = _NOT_BASE64.sub(b"", data)
            try:
                return binascii.a2b_base64(data[: len(data) - len(data) % 4])
            except binascii.Error:
                return b""
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        return data

    def text(self) -> str:
        """The body as text, in its charset, HTML tags dropped, at most ``_MAX_TEXT``."""
        kind, params = self.content_type
        text = _decode(self.payload(_MAX_ENCODED), params.get("charset") or "utf-8")
        if kind == "text/html" and "<" in text:
            text = html.unescape(_TAG.sub(" ", text))
        return _clean(text[:_MAX_TEXT])


def _entity(data: bytes) -> _Entity:
    """Split header fields from the body, as tolerantly as mail readers do."""
    if data.startswith(b"From "):  # an mbox separator line
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    ends = (data.find(b"\n\n", 0, _MAX_HEAD), data.find(b"\n\r\n", 0, _MAX_HEAD))
    end = min((i for i in ends if i >= 0), default=-1)
    if end < 0:
        head, body = data[:_MAX_HEAD], b""
    else:
        head, body = data[: end + 1], data[end + (2 if data[end + 1] == 0x0A else 3) :]
    # A field's lines are joined once at the end: joining as they come costs the square
    # of the number of lines of a field folded over thousands of them.
    found: dict[bytes, list[list[bytes]]] = {}
    pieces: list[bytes] | None = None
    offset = 0
    for line in head.split(b"\n"):
        start, offset = offset, offset + len(line) + 1
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and pieces is not None:
            pieces.append(line.strip())
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip()
        if colon and 0 < len(name) <= 80 and name.isascii() and not _BLANK.search(name):
            pieces = [value.strip()]
            found.setdefault(name.lower(), []).append(pieces)
        elif line:
            body = data[start:]  # not a field: the body began without a blank line
            break
    fields = {
        name.decode("ascii"): [b" ".join(value).decode("utf-8", "replace") for value in values]
        for name, values in found.items()
    }
    return _Entity(fields, body)


def _children(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts of a multipart body, ``None`` when its boundary is nowhere."""
    marker = b"--" + boundary.encode("utf-8", "replace")
    pieces: list[bytes] = []
    start = None
    found = body.find(marker)
    while found >= 0 and len(pieces) < _MAX_PARTS:
        end = body.find(b"\n", found)
        end = len(body) if end < 0 else end + 1
        tail = body[found + len(marker) : end]
        if (found == 0 or body[found - 1] == 0x0A) and not tail.lstrip(b"-").strip():
            if start is not None:
                pieces.append(body[start:found].removesuffix(b"\n").removesuffix(b"\r"))
            if tail.startswith(b"--"):
                return pieces
            start = end
        found = body.find(marker, end)
    if start is not None:
        pieces.append(body[start:])  # never closed: the rest is the last part
    return pieces if start is not None or pieces else None


def _clean(value: str) -> str:
    """``value`` without the lone surrogates that some decoders leave in it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, whatever their charset claims."""
    try:
        chunks = email.header.decode_header(text)
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return text
    decoded = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            decoded.append(chunk)
            continue
        decoded.append(_decode(chunk, charset or "ascii"))
    return _clean("".join(decoded))


# The codecs a charset may name: Python's text codecs with an alias, and those without one
# that are mail charsets too. Never a name looked up as given: Python's codec search keeps
# every unknown name it was asked for, for the life of the process. Not the codecs that
# read escapes as text (and warn about bad ones), cost the square of their input, always
# fail, turn bytes into bytes, or exist on Windows only.
_CHARSETS = (
    frozenset(encodings.aliases.aliases.values())
    | {"koi8_u", "koi8_t", "cp874", "cp737", "cp720", "cp856", "cp875", "cp1006", "utf_8_sig"}
    | {"mac_arabic", "mac_croatian", "mac_farsi", "mac_romanian", "palmos"}
) - {
    "unicode_escape",
    "raw_unicode_escape",
    "punycode",
    "idna",
    "undefined",
    "base64_codec",
    "bz2_codec",
    "hex_codec",
    "quopri_codec",
    "rot_13",
    "uu_codec",
    "zlib_codec",
    "mbcs",
    "oem",
}


def _codec(charset: str) -> str | None:
    """The codec a charset names, ``None`` for an unknown one (as Python resolves it)."""
    key = encodings.normalize_encoding(charset.strip().lower()[:64])
    for candidate in (key, key.replace(".", "_")):
        name = encodings.aliases.aliases.get(candidate, candidate)
        if name in _CHARSETS:
            return name
    return None


def _decode(data: bytes, charset: str) -> str:
    """``data`` in ``charset`` when it is a text encoding fit for mail, else in UTF-8."""
    name = _codec(charset)
    try:
        return data.decode(name or "utf-8", "replace")
    except (LookupError, UnicodeError, ValueError):
        return data.decode("utf-8", "replace")


_FIELD = re.compile(r"^([A-Za-z][\w-]{1,40}):[ \t]*(.*)$")


def _fields(text: str) -> list[dict[str, str]]:
    """RFC 822-style field groups, one per paragraph (DSN and ARF fields)."""
    groups: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
            current, name = {}, ""
        elif line[0] in " \t" and name:
            current[name].append(line.strip())  # joined once below: linear in the lines
        elif match := _FIELD.match(line):
            name = match.group(1).lower()
            current.setdefault(name, [match.group(2).strip()])
        else:
            name = ""
    if current:
        groups.append(current)
    return [{name: " ".join(lines) for name, lines in group.items()} for group in groups]


def _address(value: str | None) -> str | None:
    """The first address in a header or a DSN field (``rfc822; a@b``), lowercased."""
    if not value:
        return None
    found = _ADDRESS.search(value.split(";", 1)[-1])
    return found.group(0).strip(".'`").lower() if found else None


_KEPT = ("to", "from", "sender", "return-path", "reply-to", "message-id")


def _copy_headers(data: bytes) -> dict[str, str]:
    """The headers of a returned message that name its sender, recipient and identity."""
    found = _entity(data)
    return {name: found.header(name) for name in _KEPT if name in found.fields}


@dataclass
class _Parts:
    """What a message holds, gathered in one walk over its MIME parts."""

    texts: list[str] = field(default_factory=list)
    html: list[_Entity] = field(default_factory=list)
    attachments: list[_Entity] = field(default_factory=list)
    dsn: list[dict[str, str]] = field(default_factory=list)
    has_dsn: bool = False
    feedback: list[str] = field(default_factory=list)
    has_mdn: bool = False
    returned: list[dict[str, str]] = field(default_factory=list)

    @functools.cached_property
    def text(self) -> str:
        """The human-readable text: the plain parts, else the HTML ones."""
        return "\n".join(self.texts or [part.text() for part in self.html])

    def add(self, part: _Entity, kind: str) -> None:
        """File one leaf part of MIME type ``kind``."""
        if kind in _RETURNED_TYPES or kind in _HEADER_TYPES:
            self.returned.append(_copy_headers(part.payload(_MAX_TEXT)))
        elif kind in _DSN_TYPES:
            self.has_dsn = True
            self.dsn.extend(_fields(part.text()))
        elif kind == "message/feedback-report":
            self.feedback.append(part.text())
        elif kind == "message/disposition-notification":
            self.has_mdn = True
        elif kind.startswith(("text/", "multipart/")):
            disposition = (part.get("content-disposition") or "").lower()
            if disposition.startswith("attachment") or "name" in part.content_type[1]:
                self.attachments.append(part)
            elif kind == "text/html":
                self.html.append(part)
            else:
                self.texts.append(part.text())


def _gather(message: _Entity) -> _Parts:
    """Walk the MIME tree depth-first, not into attached messages."""
    parts = _Parts()
    stack = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        kind, params = part.content_type
        boundary = params.get("boundary")
        children = None
        if kind.startswith("multipart/") and boundary and depth < _MAX_DEPTH:
            children = _children(part.body, boundary)
        if children is None:
            parts.add(part, kind)  # a multipart whose boundary is nowhere reads as text
        else:
            stack.extend((_entity(child), depth + 1) for child in reversed(children))
    return parts


# --- The returned message: what we sent ---------------------------------------------------

# A line that opens the copy of the returned message in a text report (Exim, qmail,
# Sendmail, Gmail, Exchange, Domino...), once stripped of its dashes.
_MARK = re.compile(
    r"(?:here is |this is )?(?:a )?copy of (?:the |your )(?:first part of the )?"
    r"(?:original )?message.*"
    r"|below this line is a copy of the message.*"
    r"|(?:the )?(?:original|returned|unsent|undelivered|rejected) (?:message|mail)"
    r"(?: (?:follows|headers?(?: follows?)?|text|below|is attached))?"
    r"|(?:the )?headers? of (?:the |your )?original message(?: (?:is )?follows?| is following)?"
    r"|start of returned message|message headers? follows?"
    r"|the original message headers? (?:is|are) (?:attached|included|following)",
    re.IGNORECASE,
)
_MARK_WORD = re.compile(r"copy|original|returned|unsent|undelivered|rejected|headers? f", re.I)
_MARK_TRIM = " \t\r-=*_>[]():.#"
_INLINE_HEADERS = re.compile(r"^(?:Received|Return-Path|DKIM-Signature|Message-I[Dd]):[ \t]", re.M)


def _split_returned(text: str) -> tuple[str, str]:
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

# Text just before an address that makes it the sender's or the reporter's, not a failed
# recipient: "MAIL From:<a@b>", "please contact <postmaster@b>", "(expanded from <a@b>)".
_SENDER_CONTEXT = re.compile(
    r"(?:\bfrom|sender|return-path|reply-to|errors-to|contact|write to|send mail to|mailto"
    r"|\bby|message-id|\bid)\W{0,4}$",
    re.IGNORECASE,
)
_SKIP_LINE = re.compile(
    r"^\s*(?:from|sender|reply-to|return-path|message-id|in-reply-to|references|subject"
    r"|x-postfix-sender|original sender|received|errors-to)\s*:",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"following (?:\w+ ){0,2}(?:recipient|address|destination|user)|did not reach"
    r"|(?:recipients?|address(?:es)?) (?:were|was|is|are) affected|delivery to the following"
    r"|failed (?:to|for) (?:these|the following)|could not be delivered to",
    re.IGNORECASE,
)
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
        for match in _ADDRESS.finditer(line):
            address = match.group(0).strip(".'`").lower()
            if address in exclude or address in found:
                continue
            if _DISPLAY_NAME.match(line, match.end()):
                continue  # "a@b <c@d>": the first is a display name
            if _SENDER_CONTEXT.search(line[max(0, match.start() - 24) : match.start()]):
                continue
            found[address] = index
    lead = _LEAD_IN.search(report, 0, _MAX_WORDS)
    first = report.count("\n", 0, lead.start()) if lead else 0
    listed = [(a, i) for a, i in found.items() if not _QUOTED_RECIPIENT.match(lines[i])]
    ranked = sorted(listed, key=lambda item: (item[1] < first, item[1]))
    return ranked or sorted(found.items(), key=lambda item: item[1])


def _block(lines: list[str], start: int, stop: int) -> str:
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


def _text_recipients(
    report: str, exclude: set[str], *, named: Iterable[str] = (), temporary: _Flag
) -> list[FailedRecipient]:
    """Failed recipients of a text report; ``named`` (X-Failed-Recipients) when given."""
    lines = report.splitlines()
    found = _candidates(report, exclude)
    line_of = dict(found)
    starts = sorted(line_of.values())
    order = list(dict.fromkeys(a for a in named if a not in exclude)) or [a for a, _ in found]

    @functools.cache
    def whole() -> tuple[str | None, str, str]:
        words = report[:_MAX_WORDS]
        status = _status_of(words)
        return status, _kind_of(status, words, temporary=temporary), words

    recipients = []
    for address in order[:_MAX_RECIPIENTS]:
        start = line_of.get(address)
        words = ""
        if start is not None:
            after = bisect.bisect_right(starts, start)
            words = _block(lines, start, starts[after] if after < len(starts) else len(lines))
        if _informative(words):
            status = _status_of(words)
            kind = _kind_of(status, words, temporary=temporary)
        else:  # the reason is elsewhere: the whole report gives it
            status, kind, words = whole()
        recipients.append(FailedRecipient(address, status, kind, _brief(words)))
    return recipients


def _brief(words: str) -> str:
    return " ".join(words.split())[:300]


def _flufl_recipients(message: _Entity, report: str, *, temporary: _Flag) -> list[FailedRecipient]:
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
    for address in sorted(addresses, key=position)[:_MAX_RECIPIENTS]:
        if _ADDRESS.fullmatch(address):
            recipients += _text_recipients(
                report, set(), named=[address], temporary=_either(addresses[address], temporary)
            )
    return recipients


# A line that opens a MIME part or declares one (the email parser's lines end in CR or LF).
_MIME_MARK = re.compile(r"(?:\A|[\r\n])(?:--|content-type:)", re.IGNORECASE)
_FIRST_LINES = re.compile(rf"(?:[^\r\n]*(?:\r\n?|\n)){{0,{_MAX_FLUFL_LINES}}}[^\r\n]*")
_LONG_LINE = re.compile(rf"(?:\A|(?<=[\r\n]))([^\r\n]{{{_MAX_LINE}}})[^\r\n]+")


def _flufl_text(message: _Entity) -> str | None:
    """The message as the flufl.bounce detectors may read it; ``None`` for a MIME bomb.

    The detectors cost more than the size of what they read: they walk the MIME tree from
    its root for every line (parts times depth), try ~50 patterns on each line, some of
    which backtrack on long lines, and parse address fields slowly. So they get each
    header field unfolded on one line, the body's first lines, every line cut to 998
    characters, and nothing of a message with hundreds of parts or nested messages (no
    report has that many).
    """
    fields = ((name, value) for name, values in message.fields.items() for value in values)
    head = "".join(f"{n}: {v}\n" for n, v in itertools.islice(fields, _MAX_FLUFL_FIELDS))
    body = message.body[:_MAX_FLUFL].decode("utf-8", "replace")
    text = _LONG_LINE.sub(r"\1", f"{head}\n{body}")
    first = _FIRST_LINES.match(text)
    text = first.group(0) if first else text
    marks = itertools.islice(_MIME_MARK.finditer(text), _MAX_FLUFL_MARKS + 1)
    return None if sum(1 for _ in marks) > _MAX_FLUFL_MARKS else text


def _decoded(raw: object) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip("<>").lower()


# --- Structured reports -------------------------------------------------------------------


def _dsn_recipients(
    blocks: list[dict[str, str]], report: str, *, temporary: _Flag
) -> list[FailedRecipient]:
    """Recipients of RFC 3464 per-recipient fields; the report's text fills in a bare code."""
    found: list[FailedRecipient] = []
    lines = report.splitlines()
    # Lowered once for every recipient: a line-by-line search each time costs the report's
    # length times the number of recipients.
    lowered = functools.cache(lambda: "\n".join(lines).lower())
    for block in blocks:
        if len(found) == _MAX_RECIPIENTS:
            break
        final = _address(block.get("final-recipient"))
        original = _address(block.get("original-recipient"))
        address = final or original
        if address is None:
            continue
        action = block.get("action", "").strip().lower()
        status, diagnostic = _dsn_status(block)
        if status is None or status.endswith(".0.0") or _said(diagnostic) is None:
            about = _about(lines, lowered(), address)
            if status is None or status.endswith(".0.0"):
                status = _status_of(about) or status
            if _said(diagnostic) is None:
                diagnostic = " ".join(f"{diagnostic} {about}".split())
        if action in ("delivered", "relayed", "expanded"):
            kind = "delivered"
        else:
            kind = _kind_of(status, diagnostic, temporary=_either(action == "delayed", temporary))
        other = original if original not in (None, address) else None
        found.append(FailedRecipient(address, status, kind, diagnostic[:300], other))
    return found


def _dsn_status(block: dict[str, str]) -> tuple[str | None, str]:
    """The status of one DSN recipient and the server's words.

    A generic ``Status`` (X.0.0) or a queue expiry (X.4.7) only wraps the remote server's
    answer: the diagnostic's own code, when it has one, says what happened.
    """
    diagnostic = " ".join(block.get("diagnostic-code", "").split())
    if ";" in diagnostic[:20]:
        diagnostic = diagnostic.split(";", 1)[1].strip()
    field_status = block.get("status", "").strip()
    success = _STATUS.match(field_status)
    if success is not None and success.group(1) == "2":
        return ".".join(success.groups()), diagnostic
    status = _status_of(field_status)
    if status is None and field_status:
        diagnostic = f"{field_status} {diagnostic}".strip()  # "Status: 553 Too big"
    cause = _status_of(diagnostic)
    if cause is not None and (status is None or _wraps(status, cause)):
        status = cause
    return status, diagnostic


def _wraps(status: str, cause: str) -> bool:
    _, subject, detail = status.split(".")
    return cause != status and (subject, detail) in (("0", "0"), ("4", "7"))


def _about(lines: list[str], lowered: str, address: str) -> str:
    """The report's lines about ``address``; ``lowered``: the lines joined and lowercased."""
    at = lowered.find(address)
    if at < 0:
        return ""
    return _block(lines, lowered.count("\n", 0, at), len(lines))


_SES_SUBTYPES = {
    "MailboxFull": "mailbox full",
    "MessageTooLarge": "message too large",
    "ContentRejected": "content rejected",
    "AttachmentRejected": "content rejected",
    "NoEmail": "no such user",
    "Suppressed": "no such user",
    "OnAccountSuppressionList": "no such user",
}


def _ses_notification(text: str) -> _Reading | None:
    """An Amazon SES notification (JSON, maybe inside an SNS envelope)."""
    try:
        data = json.JSONDecoder(strict=False).raw_decode(text.lstrip())[0]
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"], strict=False)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    event = str(data.get("notificationType") or data.get("eventType") or "")
    mail = _dict(data.get("mail"))
    references = tuple(
        _clean(str(h.get("value")))
        for h in _list(mail.get("headers"))
        if isinstance(h, dict) and str(h.get("name", "")).lower() == "message-id"
    )
    if event == "Complaint":
        listed = _list(_dict(data.get("complaint")).get("complainedRecipients"))
        recipients = [FailedRecipient(a, None, "feedback") for a in _ses_addresses(listed)]
        return _Reading("feedback", recipients, "ses", references)
    if event == "Delivery":
        delivery = _dict(data.get("delivery"))
        response = _clean(str(delivery.get("smtpResponse", "")))
        found = _STATUS.search(response)
        code = ".".join(found.groups()) if found else None
        listed = _list(delivery.get("recipients"))
        recipients = [
            FailedRecipient(a, code, "delivered", response) for a in _ses_addresses(listed)
        ]
        return _Reading("delivered", recipients, "ses", references)
    if event == "Bounce":
        bounce = _dict(data.get("bounce"))
        transient = str(bounce.get("bounceType", "")) == "Transient"
        subtype = _SES_SUBTYPES.get(str(bounce.get("bounceSubType", "")), "")
        recipients = []
        for entry in map(_dict, _list(bounce.get("bouncedRecipients"))):
            address = _address(str(entry.get("emailAddress", "")))
            if address is None:
                continue
            words = _clean(f"{entry.get('diagnosticCode', '')} {subtype}".strip())
            status = _status_of(str(entry.get("status", ""))) or _status_of(words)
            kind = _kind_of(status, words, temporary=lambda: transient)
            recipients.append(FailedRecipient(address, status, kind, words[:300]))
        kind = recipients[0].kind if recipients else "soft" if transient else "hard"
        return _Reading(kind, recipients, "ses", references)
    return None


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _ses_addresses(listed: list[object]) -> list[str]:
    found = []
    for entry in listed:
        address = _address(str(entry.get("emailAddress") if isinstance(entry, dict) else entry))
        if address:
            found.append(address)
    return found


def _feedback_recipients(parts: _Parts) -> list[FailedRecipient]:
    """The complaining recipients of an ARF report, else the returned message's To."""
    found = [
        address
        for text in parts.feedback
        for line in text.splitlines()
        if line.lower().startswith(("original-rcpt-to:", "removal-recipient:"))
        and (address := _address(line.split(":", 1)[1]))
    ]
    if not found:
        found = [a for m in parts.returned if (a := _address(m.get("to")))][:1]
    return [FailedRecipient(a, None, "feedback") for a in dict.fromkeys(found)]


# --- People and robots --------------------------------------------------------------------

_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|vs|antw|odp|fw|fwd|wg|tr|rv|r)\s*:", re.IGNORECASE)
_BOUNCE_FROM = re.compile(
    r"mailer-daemon|mailerdaemon|mail-daemon|postmaster|mail delivery|\bndr\b|\bmmsc\b",
    re.IGNORECASE,
)
_ROBOT_FROM = re.compile(
    r"no-?reply|do-?not-?reply|daemon|postmaster|admin|bounce|owner-|-owner|-request"
    r"|listserv|majordomo|mailman|sympa|notification",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|has failed|problem|notification"
    r"|failed|report|incomplete|delayed)|returned mail|return(?:ed)? to sender|failure notice"
    r"|mail delivery failed|could not be delivered|non-?delivery|not delivered|delivery failed"
    r"|mail failure|mail system error|failed delivery|nondeliverable|warning: (?:message|could)"
    r"|delayed mail|error sending your mail|message delivery has been delayed",
    re.IGNORECASE,
)
_BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn't be delivered|was not delivered|wasn't delivered"
    r"|undeliverable|delivery (?:has )?failed|failed permanently|unable to deliver"
    r"|not be delivered|permanent (?:fatal )?error|following (?:address|recipient)"
    r"|delivery to the following|error delivering|rejected by|not a member of"
    r"|held until the list moderator|delivery status notification",
    re.IGNORECASE,
)
_TEMPORARY = re.compile(
    r"temporar|delayed|will (?:continue to )?(?:retry|try)|still (?:trying|being retried)"
    r"|warning:|has not yet been delivered|deferred",
    re.IGNORECASE,
)
# Out-of-office subjects: strong phrases anywhere, single words only at the start.
_OOO_SUBJECT = re.compile(
    r"out of (?:the )?office|\booo\b|auto(?:matic|mated)?[ -]?(?:reply|response|answer|respon)"
    r"|autoreply|away from (?:the |my )?(?:office|desk)|(?:^|: )(?:away|vacation|holiday"
    r"|absent|absence|on leave)\b|\bon (?:vacation|holiday|leave|annual leave)\b"
    # German
    r"|abwesenheit|abwesend|automatische antwort|nicht im b(?:ü|ue)ro|au(?:ß|ss)er haus"
    r"|(?:^|: )urlaub\b|autoantwort"
    # French
    r"|r[ée]ponse automatique|message d'absence|absente? du bureau|hors du bureau"
    r"|en cong[ée]s?\b|(?:^|: )cong[ée]s\b"
    # Spanish
    r"|respuesta autom[áa]tica|fuera de (?:la )?oficina|(?:^|: )(?:ausente|ausencia)\b"
    r"|de vacaciones"
    # Italian
    r"|risposta automatica|fuori (?:sede|ufficio)|(?:^|: )(?:assente|assenza)\b|\bin ferie\b"
    # Portuguese
    r"|resposta autom[áa]tica|fora do escrit[óo]rio|(?:^|: )aus[êe]ncia\b|de f[ée]rias"
    # Dutch
    r"|automatisch (?:antwoord|beantwoord)|afwezig|niet (?:op kantoor|aanwezig)"
    r"|buiten kantoor|met vakantie"
    # Nordic, Polish, Czech, Turkish, Finnish, Russian, Japanese, Chinese
    r"|automatiskt svar|automatisk svar|frånvar|fraværende|automatyczna odpowied"
    r"|poza biurem|nieobecno|automatick[áa] odpov|otomatik yan[\u0131i]t"
    r"|automaattinen vastaus|автоответ|автоматический ответ|в отпуске"
    r"|自動応答|自動返信|不在|自动回复|自動回覆",
    re.IGNORECASE,
)
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated")
_UNSUBSCRIBE = re.compile(
    r"(?:(?:re|aw|sv|fw|fwd|wg|tr|rv)\s*:\s*)*\[?\s*unsubscribe\b.{0,200}", re.I
)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")


def _is_auto_reply(mail: _Mail) -> bool:
    """RFC 3834 ``Auto-Submitted``, the older vendor headers, or an out-of-office subject.

    Read receipts (RFC 8098) are automatic responses too, found from their MIME type.
    """
    if mail.parts.has_mdn or mail.report_type == "disposition-notification":
        return True
    return _automatic(mail.message) or bool(_OOO_SUBJECT.search(mail.subject))


def _automatic(message: _Entity) -> bool:
    """Whether the headers say no person wrote the message."""
    auto = message.header("auto-submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if any(name in message.fields for name in _AUTO_HEADERS):
        return True
    return message.header("precedence").lower() in ("auto_reply", "bulk", "junk")


def _is_report(mail: _Mail) -> bool:
    """Whether the headers or the MIME structure say this is a delivery report.

    A report's subject counts only on a robot's message: a person may write one too.
    """
    if mail.parts.has_dsn or "x-failed-recipients" in mail.message.fields:
        return True
    if mail.report_type == "delivery-status" or _BOUNCE_FROM.search(mail.from_field):
        return True
    if not _BOUNCE_SUBJECT.search(mail.subject) or _REPLY_PREFIX.match(mail.subject):
        return False
    return bool(_ROBOT_FROM.search(mail.from_field)) or _automatic(mail.message)


def _is_temporary(parts: _Parts, subject: str) -> bool:
    """Whether a report says delivery is still being tried."""
    actions = {block.get("action", "").strip().lower() for block in parts.dsn}
    if "delayed" in actions and "failed" not in actions:
        return True
    return bool(_TEMPORARY.search(subject) or _TEMPORARY.search(parts.text[:4096]))


# --- Classification -----------------------------------------------------------------------


@dataclass
class _Mail:
    """One message, parsed once, with what every reading needs."""

    message: _Entity
    parts: _Parts
    report: str  # the text report, without the copy of the returned message
    subject: str
    from_field: str
    report_type: str


class _Reading(NamedTuple):
    """What a message was read as: its class, its recipients, how they were found."""

    kind: str
    recipients: list[FailedRecipient]
    how: str
    references: tuple[str, ...] = ()


def _classify(raw: bytes) -> Classification:
    notes: list[str] = []
    if len(raw) > _MAX_MESSAGE:
        notes.append(f"read the first {_MAX_MESSAGE} of {len(raw)} bytes")
    raw = raw[:_MAX_MESSAGE]
    message = _entity(raw)
    parts = _gather(message)
    report, returned_text = _split_returned(parts.text)
    if returned_text:
        parts.returned.append(_copy_headers(returned_text.lstrip().encode("utf-8", "replace")))
    mail = _Mail(
        message,
        parts,
        report,
        message.header("subject")[:1000],
        message.header("from"),
        message.content_type[1].get("report-type", "").lower(),
    )
    reading = _read(mail)
    references = [r for h in parts.returned for r in _MESSAGE_ID.findall(h.get("message-id", ""))]
    for name in ("in-reply-to", "references"):
        references += _MESSAGE_ID.findall(message.header(name))
    return Classification(
        reading.kind,
        tuple(reading.recipients),
        tuple(dict.fromkeys((*reading.references, *references)))[:_MAX_REFERENCES],
        _address(mail.from_field),
        mail.subject,
        (*notes, reading.how),
    )


def _read(mail: _Mail) -> _Reading:
    """Read a message as a complaint, a notification, a report or a person's mail."""
    if mail.parts.feedback or mail.report_type == "feedback-report":
        return _Reading("feedback", _feedback_recipients(mail.parts), "arf")
    head = mail.parts.text.lstrip()[:4096]
    if head.startswith("{") and ("notificationType" in head or "eventType" in head):
        ses = _ses_notification(mail.parts.text)
        if ses is not None:
            return ses
    if _is_report(mail):
        return _bounce(mail)
    sender = _address(mail.from_field)
    if _UNSUBSCRIBE.fullmatch(mail.subject):
        return _Reading("unsubscribe", _self(sender, "unsubscribe"), "unsubscribe")
    if _ROBOT_FROM.search(mail.from_field) and _BOUNCE_BODY.search(mail.report[:8192]):
        return _bounce(mail)  # a robot's report without the usual headers
    if _is_auto_reply(mail):
        return _Reading("auto_reply", _self(sender, "auto_reply"), "auto-reply")
    if _replies(mail.message):
        return _Reading("reply", [], "reply")
    return _Reading("other", [], "other")


def _replies(message: _Entity) -> bool:
    return "in-reply-to" in message.fields or "references" in message.fields


def _self(sender: str | None, kind: str) -> list[FailedRecipient]:
    return [FailedRecipient(sender, None, kind)] if sender else []


def _bounce(mail: _Mail) -> _Reading:
    """Read a delivery report: the first recipient's class, the failed recipients, how."""
    parts, report = mail.parts, mail.report
    temporary = functools.cache(lambda: _is_temporary(parts, mail.subject))
    recipients = _dsn_recipients(parts.dsn, report, temporary=temporary)
    if recipients:
        return _Reading(recipients[0].kind, recipients, "dsn")
    if "final-recipient" in parts.text.lower():  # DSN fields written as text
        recipients = _dsn_recipients(_fields(parts.text), report, temporary=temporary)
        if recipients:
            return _Reading(recipients[0].kind, recipients, "dsn text")
    exclude = _ours(mail)
    named = [
        a.group(0).lower()
        for value in mail.message.fields.get("x-failed-recipients", [])
        for a in _ADDRESS.finditer(value)
    ]
    recipients = _text_recipients(report, exclude, named=named, temporary=temporary)
    if recipients:
        return _Reading(recipients[0].kind, recipients, "text")
    recipients = _flufl_recipients(mail.message, report, temporary=temporary)
    if recipients:
        return _Reading(recipients[0].kind, recipients, "flufl.bounce")
    words = report[:_MAX_WORDS]
    status = _status_of(words)
    kind = _kind_of(status, words, temporary=temporary)
    # The last place a report may name its recipient: the To of the returned message.
    copies = parts.returned + [_copy_headers(part.payload(_MAX_TEXT)) for part in parts.attachments]
    found = (_address(h.get("to")) for h in copies)
    address = next((a for a in found if a and a not in exclude), None)
    if address is None:
        return _Reading(kind, [], "report without a recipient")
    recipient = FailedRecipient(address, status, kind, _brief(words))
    return _Reading(kind, [recipient], "returned message")


def _ours(mail: _Mail) -> set[str]:
    """Addresses that are the sender's or the reporting system's, never a failed one."""
    ours = {_address(mail.message.get(n)) for n in ("from", "to", "return-path", "sender")}
    for copy in mail.parts.returned:
        ours |= {_address(copy.get(n)) for n in ("from", "sender", "return-path", "reply-to")}
    return {address for address in ours if address}

"""The class of one failed recipient: its status code, the server's words, the command refused.

The words are matched against ``phrases.WORD_RULES``, compiled here once; the codes are
read by ``codes``. ``kind_of`` weighs them: a specific code decides unless the words
plainly overrule it, else the words, else the SMTP command that was refused (a refusal
at connect, HELO or MAIL FROM is about the sender), else the code's subject, else the
reply code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from mailopsd.inbox.classify import codes, limits, phrases, reader
from mailopsd.lifecycle import MailKind

__all__ = ["Flag", "Rule", "either", "informative", "kind_of", "matching_rule", "never"]


@dataclass(frozen=True)
class Rule:
    """Phrases that name a class, and the status codes they overrule."""

    kind: MailKind
    pattern: re.Pattern[str]
    overrules: re.Pattern[str] | None = None


def _compiled(rule: phrases.PhraseRule) -> Rule:
    overrules = None if rule.overrules is None else re.compile(rule.overrules)
    return Rule(rule.kind, re.compile("|".join(rule.phrases)), overrules)


# Matched against the words lowercased, addresses removed and links cut to their host;
# the first rule that matches names the class.
_RULES = tuple(_compiled(rule) for rule in phrases.WORD_RULES)

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


@functools.lru_cache(maxsize=512)
def matching_rule(words: str) -> Rule | None:
    """The first rule the server's words match."""
    text = words[: limits.MAX_WORDS]
    if "@" in text:
        text = reader.ADDRESS.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(_url_host, text)
    text = " ".join(text.split()).lower()
    return next((rule for rule in _RULES if rule.pattern.search(text)), None)


def _url_host(match: re.Match[str]) -> str:
    """A link stands for its host: its path and anchors are not the server's words."""
    return f" {match.group(1) or match.group(2) or ''} "


def _stage_kind(words: str) -> MailKind | None:
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
        reply = codes.REPLY_CODE.search(words)
        return None if reply is not None and reply.group(1) == "4" else MailKind.BLOCK
    return MailKind.BLOCK


Flag = Callable[[], bool]  # a yes or no worked out only when needed


def either(flag: bool, lazy: Flag) -> Flag:
    """A flag already known to be set, else ``lazy``."""
    return _always if flag else lazy


def _always() -> bool:
    return True


def never() -> bool:
    """A flag that is never set."""
    return False


def kind_of(status: str | None, words: str, *, temporary: Flag = never) -> MailKind:
    """The class of one failed recipient from its status code and the server's words.

    A specific status code decides, unless the words plainly overrule it: the sender's
    own address, relaying or sending quota are the sender's trouble whatever the code;
    servers refuse a blocked sender at RCPT TO with whatever address code comes to hand;
    greylisting and connection limits answer with any 4.x.x. Else the words decide,
    then the SMTP command that was refused, then the code's subject, then the reply
    code (RFC 7504's 521 and 556 say the host or domain takes no mail at all).
    """
    if status is not None and status.startswith("2."):
        return MailKind.DELIVERED
    said = matching_rule(words)
    if status is not None and (specific := codes.status_kind(status)) is not None:
        if said is not None and said.overrules is not None and said.overrules.search(status):
            return said.kind
        return specific
    found = said.kind if said is not None else _stage_kind(words)
    if found is not None:
        return found
    reply = codes.REPLY_CODE.search(words)
    if reply is not None and reply.group(0) in ("521", "556"):
        return MailKind.HARD
    if status is not None:
        return codes.fallback_kind(status)
    if reply is not None:
        return MailKind.SOFT if reply.group(1) == "4" else MailKind.HARD
    return MailKind.SOFT if temporary() else MailKind.HARD


def informative(words: str) -> bool:
    """Whether ``words`` carry a code or a phrase that names a class."""
    return bool(
        codes.FAIL_STATUS.search(words) or codes.REPLY_CODE.search(words) or matching_rule(words)
    )

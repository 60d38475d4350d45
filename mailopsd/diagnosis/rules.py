"""The reason for one failed recipient: its status code, the server's words, the command refused.

The words are matched against ``phrases.WORD_RULES``, compiled here once; the codes are
read by ``codes``. ``diagnose`` weighs them: a code that names a reason decides unless
the words plainly overrule it; a code that names a class takes the words' reason when it
is of that class; else the words decide, then the SMTP command that was refused (a
refusal at connect, HELO or MAIL FROM is about the sender), then what the code suggests,
then the reply code.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from mailopsd.diagnosis import codes, phrases
from mailopsd.diagnosis.reasons import CLASSES, Reason, class_of
from mailopsd.lifecycle import MailKind

__all__ = [
    "ADDRESS",
    "MAX_WORDS",
    "Diagnosis",
    "Flag",
    "Rule",
    "diagnose",
    "either",
    "gave_up",
    "held_out",
    "informative",
    "matching_rule",
    "never",
]

MAX_WORDS = 16 * 2**10  # characters of a diagnostic matched against the word rules
ADDRESS = re.compile(
    r"(?<![\w.+=!#$%&'*/?^`{|}~-])[\w.+=!#$%&'*/?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"
)


class Diagnosis(NamedTuple):
    """Why one recipient failed, and the class that follows from it."""

    reason: Reason
    kind: MailKind


@dataclass(frozen=True)
class Rule:
    """Phrases that name a reason, and the status codes they overrule."""

    reason: Reason
    pattern: re.Pattern[str]
    overrules: re.Pattern[str] | None = None


def _compiled(rules: tuple[phrases.PhraseRule, ...]) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            rule.reason,
            re.compile("|".join(rule.phrases)),
            None if rule.overrules is None else re.compile(rule.overrules),
        )
        for rule in rules
    )


# Matched against the words lowercased, addresses removed and links cut to their host;
# the first rule that matches names the reason.
_RULES = _compiled(phrases.WORD_RULES)

# The SMTP command a refusal answered. Before RCPT TO, a refusal is about the sender.
_STAGE = re.compile(
    r"(?:in reply to|after|following|error (?:after|following)|during|response to)"
    r" (?:the )?(?:pipelined )?(rcpt|mail from|mail(?= command)|data|end of data|helo|ehlo|greeting"
    r"|connect|initial connection|banner|starttls|auth)"
    # [ \t]*, not \s*: from every line start, \s* would run over all the blank lines after it.
    r"|(refused to talk to me)|^[ \t]*>>> (rcpt|mail|data|helo|ehlo)",
    re.IGNORECASE | re.MULTILINE,
)
# The reason of a refusal at each command before RCPT TO, when the words name none.
_STAGE_REASONS = {
    "mail": Reason.REJECTED,
    "data": Reason.POLICY_VIOLATION,
    "end of data": Reason.POLICY_VIOLATION,
    "helo": Reason.REQUIRE_PTR,
    "ehlo": Reason.REQUIRE_PTR,
    "starttls": Reason.FAILED_STARTTLS,
    "auth": Reason.SECURITY_ERROR,
}
# The transient reasons that a queue's report of waiting or giving up turns into expired.
_RETRIED = frozenset({Reason.NETWORK_ERROR, Reason.SYSTEM_ERROR, Reason.UNDEFINED, Reason.ON_HOLD})
_QUEUE = re.compile("|".join(phrases.QUEUE))
_URL = re.compile(r"(?:https?|ftp)://([\w.-]*)\S*|\b(www\.[\w.-]+)\S*", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def matching_rule(words: str) -> Rule | None:
    """The first rule the server's words match."""
    text = words[:MAX_WORDS]
    if "@" in text:
        text = ADDRESS.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(_url_host, text)
    text = " ".join(text.split()).lower()
    return next((rule for rule in _RULES if rule.pattern.search(text)), None)


@contextlib.contextmanager
def held_out(corpus: str) -> Iterator[None]:
    """Match without the phrases added after reading ``corpus`` (``PhraseRule.seen_in``)."""
    global _RULES
    kept = _RULES
    _RULES = _compiled(tuple(r for r in phrases.WORD_RULES if r.seen_in != corpus))
    matching_rule.cache_clear()
    try:
        yield
    finally:
        _RULES = kept
        matching_rule.cache_clear()


def _url_host(match: re.Match[str]) -> str:
    """A link stands for its host: its path and anchors are not the server's words."""
    return f" {match.group(1) or match.group(2) or ''} "


def _stage_reason(words: str) -> Reason | None:
    """The sender's reason when a refusal answered the greeting, HELO, MAIL FROM or DATA.

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
        return None if reply is not None and reply.group(1) == "4" else Reason.POLICY_VIOLATION
    key = "mail" if command.startswith("mail") else command
    return _STAGE_REASONS.get(key, Reason.BLOCKED)


Flag = Callable[[], bool]  # a yes or no worked out only when needed


def either(flag: bool, lazy: Flag) -> Flag:
    """A flag already known to be set, else ``lazy``."""
    return _always if flag else lazy


def _always() -> bool:
    return True


def never() -> bool:
    """A flag that is never set."""
    return False


def diagnose(status: str | None, words: str, *, temporary: Flag = never) -> Diagnosis:
    """The reason one recipient failed, from its status code and the server's words.

    A code that names a reason decides, unless the words plainly overrule it: the
    sender's own address, relaying or sending quota are the sender's trouble whatever
    the code; servers refuse a blocked sender at RCPT TO with whatever address code
    comes to hand; greylisting and connection limits answer with any 4.x.x. A code
    that names a class (``5.7.1``) takes the words' reason when it is of that class.
    Else the words decide, then the SMTP command that was refused, then what the code
    suggests, then the reply code (RFC 7504's 521 and 556 say the host or domain takes
    no mail at all). ``temporary`` says the report speaks of a delay, when nothing
    else tells whether the failure is permanent.
    """
    if status is not None and status.startswith("2."):
        return Diagnosis(Reason.DELIVERED, MailKind.DELIVERED)
    reply = codes.REPLY_CODE.search(words)
    if status is not None:
        permanent = status.startswith("5")
    elif reply is not None:
        permanent = reply.group(1) == "5"
    else:
        permanent = not temporary()
    reason = _reason(status, words, reply)
    if reason in _RETRIED and (temporary() or _QUEUE.search(words[:MAX_WORDS].lower())):
        # A report of a delivery still being retried, or given up on, speaks of the
        # queue: the network or system trouble it quotes is why it waited.
        reason = Reason.EXPIRED
    if reason == Reason.HOST_UNKNOWN and not permanent:
        # A lookup that failed with a transient code is tried again by the reporting MTA
        # (Gmail's "DNS Error ... NXDOMAIN" with 4.0.0): not yet a verdict on the domain.
        reason = Reason.NETWORK_ERROR
    return Diagnosis(reason, class_of(reason, permanent=permanent))


def _reason(status: str | None, words: str, reply: re.Match[str] | None) -> Reason:
    said = matching_rule(words)
    code = codes.status_reason(status) if status is not None else None
    if status is not None and code is not None and code.strength > codes.Strength.GENERIC:
        if said is not None and said.overrules is not None and said.overrules.search(status):
            return said.reason
        same = said is not None and CLASSES.get(said.reason) == CLASSES.get(code.reason)
        if code.strength == codes.Strength.CLASS and same and said is not None:
            return said.reason
        return code.reason
    if said is not None:
        return said.reason
    staged = _stage_reason(words)
    if staged is not None:
        return staged
    if reply is not None and reply.group(0) in ("521", "556"):
        return Reason.NOT_ACCEPT
    if code is not None:
        return code.reason
    return Reason.UNDEFINED


def gave_up(said: Diagnosis) -> Diagnosis:
    """``said`` for a delivery the queue stopped trying: a transient reason is its expiry."""
    if said.reason in _RETRIED and said.kind == MailKind.SOFT:
        return Diagnosis(Reason.EXPIRED, MailKind.SOFT)
    return said


def informative(words: str) -> bool:
    """Whether ``words`` carry a code or a phrase that names a reason."""
    return bool(
        codes.FAIL_STATUS.search(words) or codes.REPLY_CODE.search(words) or matching_rule(words)
    )

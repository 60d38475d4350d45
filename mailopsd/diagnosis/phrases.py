"""The words of mail servers that name a reason, as data.

Matched against a server's words lowercased, addresses removed and links cut to their
host (``rules``). The first rule that matches names the reason, so the specific come
before the general and the sender's trouble before the recipient's ("domain of sender
address does not exist" is about the sender). Each rule says where its phrases come
from: a standard, or the wording an MTA or a provider documents or writes in its
reports. ``seen_in`` marks the phrases added after reading one of the labelled corpora's
messages (``bounces``, ``bounces-more``), so the corpus test can measure each corpus
without the phrases it taught.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailopsd.diagnosis.reasons import Reason

__all__ = ["QUEUE", "WORD_RULES", "PhraseRule"]


@dataclass(frozen=True)
class PhraseRule:
    """Phrases that name a reason, and the status codes they overrule.

    ``overrules`` is a pattern of the status codes the phrases win over (``""``: every
    code; ``None``: none, a code that names a reason or a class wins).
    """

    reason: Reason
    phrases: tuple[str, ...]
    overrules: str | None = None
    seen_in: str | None = None


WORD_RULES = (
    # The sender's own volume: a sending quota is not the recipient's mailbox quota.
    # Gmail "Daily user sending quota exceeded", Office 365 "5.7.708/5.7.750 ... sending
    # limit", Yahoo "[TS0x] Messages from ... temporarily deferred due to unexpected volume".
    PhraseRule(
        Reason.RATE_LIMITED,
        (
            r"\b(?:daily|hourly|sending|outgoing|outbound) (?:message |e?mail )?(?:quota|limit)",
            r"unexpected volume|user complaints|excessive (?:volume|number)",
        ),
        overrules=r"",
    ),
    # The local delivery program failed: Postfix local(8) and pipe(8) "Command died with
    # status", "Command output:", Sendmail "mailer error" and its X-Unix diagnostics,
    # Exim's "pipe to |command" deliveries, procmail's own errors.
    PhraseRule(
        Reason.MAILER_ERROR,
        (r"command died|mailer error|delivery program|child (?:status|process)",),
    ),
    PhraseRule(
        Reason.MAILER_ERROR,
        (r"\bpipe to \||command output|\bx-unix\b|procmail:",),
        seen_in="bounces-more",
    ),
    # qmail-remote names the stage a refusal answered: "Connected to ... but my name was
    # rejected" (HELO), "... but greeting failed".
    PhraseRule(
        Reason.BLOCKED,
        (r"but (?:my name was rejected|greeting failed)",),
        overrules=r"",
        seen_in="bounces-more",
    ),
    # A full mailbox, in the many ways servers say it: Postfix/Dovecot "Quota exceeded
    # (mailbox for user is full)", Exim "mailbox is full", Exchange "mailbox full",
    # Gmail "The email account that you tried to reach is over quota", qmail "user is
    # over quota", Courier "Mail quota exceeded", German/Spanish/French/Italian MTAs.
    PhraseRule(
        Reason.MAILBOX_FULL,
        (
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
    ),
    # The recipient's account exists but is closed: Gmail "The email account that you
    # tried to reach is disabled", Yahoo "This user doesn't have a yahoo.com account" is
    # below; Exchange "mailbox is disabled", Postfix/Cyrus "account expired", RFC 4954's
    # "user account disabled".
    PhraseRule(
        Reason.SUSPEND,
        (
            r"(?<!your )(?<!sending )(?<!sender )\b(?:account|mailbox|mail box)\b[^.;:]{0,40}?"
            r"\b(?:disabled|suspended|deactivated|inactive|closed|locked|frozen|expired|blocked"
            r"|terminated|discontinued|deleted|removed|cancell?ed|bloqu[eé]e?|gesperrt)\b",
            r"\buser (?:is |has been )?(?:disabled|suspended|deactivated|inactive|terminated)",
        ),
    ),
    # Relaying: Postfix "Relay access denied", Sendmail "Relaying denied", Exim "relay not
    # permitted", Exchange "Unable to relay" (5.7.54 / 5.7.1).
    PhraseRule(
        Reason.NO_RELAYING,
        (
            r"relay(?:ing)? (?:access )?(?:denied|not (?:allowed|permitted)|prohibited|refused)",
            r"unable to relay",
            r"not (?:allowed|permitted|authori[sz]ed) to relay",
            r"(?:open|insecure)(?: mail)? relay",
            r"we do not relay",
            r"no relaying",
        ),
        overrules=r"",
    ),
    # SPF, DKIM, DMARC (RFC 7208, 6376, 7489; RFC 7372's codes): Gmail "Unauthenticated
    # email from ... is not accepted due to domain's DMARC policy", Postfix policyd-spf
    # "SPF fail", Office 365 "5.7.23 ... SPF validation failed".
    PhraseRule(
        Reason.AUTH_FAILURE,
        (
            r"dmarc|\bspf\b|\bdkim\b|sender policy framework|domainkeys",
            r"unauthenticated (?:e?mail|message|sender)",
        ),
        overrules=r"",
    ),
    # The sender's address or domain, authentication of the client: Postfix "Sender
    # address rejected: Domain not found", Exim "sender verify failed", Sendmail "Domain
    # of sender address ... does not exist", "Authentication required".
    PhraseRule(
        Reason.REJECTED,
        (
            r"\bsender\b[^.;]{0,30}?\b(?:rejected|denied|blocked|refused|unknown|invalid"
            r"|not (?:allowed|authori[sz]ed|permitted|accepted)|verif)",
            r"(?:domain of|invalid|unknown|bad|unverified|unauthori[sz]ed|forged) sender",
            r"sender (?:address|domain|verify|verification|policy|mailbox|ip)\b",
            r"envelope[- ]sender",
            r"mail from address",
            r"from address (?:rejected|not|is)",
        ),
        overrules=r"",
    ),
    PhraseRule(
        Reason.REJECTED,
        (r"from:? domain (?:is )?invalid|valid from\b",),
        overrules=r"",
        seen_in="bounces-more",
    ),
    PhraseRule(
        Reason.SECURITY_ERROR,
        (r"authenticat", r"\bauth\b"),
        overrules=r"",
    ),
    # The receiving server limits connections or greylists (Postfix postscreen "too many
    # connections", Exim "too many concurrent SMTP connections", Postgrey "Greylisted"):
    # come back later.
    PhraseRule(
        Reason.TOO_MANY_CONNECTIONS,
        (
            r"too many (?:concurrent |simultaneous |open )?connections",
            r"connection (?:rate |count )?limit",
            r"(?:concurrent|simultaneous) connections",
            r"gr[ae]y-?list",
        ),
        overrules=r"^4\.",
    ),
    # The mailbox has moved (RFC 3463 X.1.6; Sendmail's "User has moved", Exchange).
    PhraseRule(
        Reason.HAS_MOVED,
        (
            r"(?:has|have) moved",
            r"moved (?:permanently|to )",
            r"address (?:has )?changed",
            r"no longer (?:with|employed)",
        ),
    ),
    # The domain takes no mail at all: RFC 7505's null MX, RFC 7504's 556; Gmail "The
    # domain ... doesn't receive email according to the administrator: returned Null MX".
    PhraseRule(
        Reason.NOT_ACCEPT,
        (
            r"null mx",
            r"(?:does not|doesn't|do not|don't) (?:receive|accept) (?:e-?mail|mail|messages)",
            r"accepts? no mail|no smtp service",
        ),
    ),
    # DNS answered with an error that may pass: the resolver's TRY_AGAIN ("Host not
    # found, try again"), SERVFAIL, a malformed reply (Postfix "Name service error ...
    # Malformed or unexpected name server reply", whatever the code it gives).
    PhraseRule(
        Reason.NETWORK_ERROR,
        (
            r"host not found, try again|servfail|name server (?:failure|timeout|error)",
            r"unexpected name server reply|dns (?:timeout|failure)|temporary (?:dns|lookup)",
        ),
        overrules=r"^\d\.4\.4$",
    ),
    # The domain does not exist or takes no mail: Postfix "Host or domain name not found.
    # Name service error", Exim "all relevant MX records point to non-existent hosts",
    # "Domain has no MX", Sendmail "Host unknown (Name server: ...: host not found)",
    # RFC 7505's null MX.
    PhraseRule(
        Reason.HOST_UNKNOWN,
        (
            r"no such (?:domain|host)",
            r"non-?existent (?:domain|host)",
            r"host (?:or domain name )?(?:unknown|not found)",
            r"unknown (?:host|domain)",
            r"(?:domain|host) (?:name )?(?:not found|does not exist|doesn't exist|lookup failed)",
            r"domain (?:is )?not reachable",
            r"(?:couldn'?t|could not|can'?t|cannot|unable to) find (?:any |the )?"
            r"(?:host|domain|mail server|mx)",
            r"name service error",
            r"name or service not known",
            r"unroutea?ble",
            r"no mx\b",
            r"nxdomain",
            r"invalid domain|domain (?:is )?(?:invalid|not valid)",
            r"(?:domain|host) [^.;]{0,40}(?:has no|no valid) (?:mx|mail|a record)",
        ),
    ),
    PhraseRule(
        Reason.HOST_UNKNOWN,
        (r"(?:account|address) or domain may not exist",),
        seen_in="bounces-more",
    ),
    # The address does not exist: Postfix "User unknown in local recipient table",
    # "Recipient address rejected", Exim "Unrouteable address", "No such user here",
    # Sendmail "User unknown", qmail "Sorry, no mailbox here by that name", Exchange
    # "RESOLVER.ADR.RecipNotFound; not found", Gmail "The email account that you tried to
    # reach does not exist", Yahoo "This user doesn't have a yahoo.com account", Domino
    # "User ... not listed in Domino Directory", Courier "Unknown user", and the same in
    # French, German, Spanish and Italian.
    PhraseRule(
        Reason.USER_UNKNOWN,
        (
            r"\b(?:user|recipient|addressee|mailbox|address|account|alias|destination|local part)s?"
            r" (?:is )?(?:unknown|not found|not known|not exist|does not exist|doesn't exist"
            r"|invalid|not valid|unavailable|not available|not listed|no longer|not local)",
            r"\bunknown (?:user|recipient|address|mailbox|local[- ]?part|alias|account|e-?mail)",
            r"no such (?:user|mailbox|recipient|address|account|person|local user)",
            r"unknown or illegal",
            r"illegal alias",
            r"invalid (?:recipient|mailbox|address|user|destination|e-?mail)",
            r"bad (?:destination|recipient)",
            r"not a valid (?:mailbox|recipient|user|address|e-?mail)",
            r"no valid recipient",
            r"no mailbox",
            r"mailbox name (?:not allowed|invalid)",
            r"(?:does not|doesn't|did not) exist",
            r"non-?existent (?:address|user|mailbox|recipient)",
            r"(?:does not|doesn't) have an? (?:[\w.-]+ )?account",
            r"not our customer",
            r"not listed in",
            r"wasn'?t found",
            r"couldn'?t be found",
            r"was not found",
            r"recip(?:ient)?notfound",
            r"no account",
            r"no longer (?:valid|available|active|exists|in use|accept)",
            r"recipient address rejected: access denied",
            r"address syntax",
            r"(?:recipient|user|address|name)\b[^.;]{0,20}not recognized",
            r"(?:utilisateur|destinataire|benutzer|empf[aä]nger|usuario|destinatario|utente)"
            r" (?:inconnu|unbekannt|desconocido|sconosciuto)",
            r"n'existe pas|existiert nicht|no existe|non esiste",
        ),
    ),
    # The message or the sending host was refused. Servers refuse a blocked sender at
    # RCPT TO with whatever address code comes to hand, so these overrule X.1.x codes.
    # Spam: Gmail "has been blocked ... unsolicited mail", SpamAssassin/Amavis "spam",
    # Exchange "5.7.1 Message rejected as spam by Content Filtering".
    PhraseRule(
        Reason.SPAM_DETECTED,
        (r"spam|unsolicited|\bjunk\b|bulk mail",),
        overrules=r"^\d\.1\.",
    ),
    # Malware: Amavis, ClamAV, Exchange "virus".
    PhraseRule(
        Reason.VIRUS_DETECTED,
        (r"virus|malware|infected|phishing",),
        overrules=r"^\d\.1\.",
    ),
    # Blocklists: Spamhaus, SpamCop, SORBS, Barracuda, UCEPROTECT, Cloudmark; Office 365
    # "5.7.606-649 Access denied, banned sending IP", Postfix "Client host rejected".
    PhraseRule(
        Reason.BLOCKED,
        (
            r"black ?list|block ?list|deny ?list|blocked|banned",
            r"\brbl\b|dnsbl|spamhaus|spamcop|sorbs|barracuda|uceprotect|cloudmark",
            r"listed (?:at|in|on|by)",
            r"refused to talk to me",
            r"connection refused by",
        ),
        overrules=r"^\d\.1\.",
    ),
    # Reputation and complaints: Gmail "low reputation", Microsoft "5.7.1 ... part of
    # their network is on our block list" is above; Yahoo "[TSS04] ... complaints".
    PhraseRule(
        Reason.BAD_REPUTATION,
        (r"reputation", r"complaints?\b"),
        overrules=r"^\d\.1\.",
    ),
    # Reverse DNS and HELO: Postfix "Client host rejected: cannot find your hostname",
    # "Helo command rejected", Gmail "The IP you're using to send mail is not authorized
    # ... PTR", Exim "no host name found for IP address".
    PhraseRule(
        Reason.REQUIRE_PTR,
        (
            r"\bptr\b|reverse (?:dns|lookup)|\brdns\b|your (?:host ?name|reverse)",
            r"no host ?name found|client host|hostname|\bhelo\b|\behlo\b",
        ),
        overrules=r"^\d\.1\.",
    ),
    # Sending rate: Gmail "4.7.28 ... unusual rate of unsolicited mail", Postfix anvil,
    # Office 365 "4.7.500 Server busy ... rate".
    PhraseRule(
        Reason.RATE_LIMITED,
        (
            r"rate limit|too many (?:messages|mails|e-?mails|recipients|requests)|throttl",
            r"unusual rate",
        ),
        overrules=r"^\d\.1\.",
    ),
    # Group and list rules: Google Groups "you may not have permission to post", Mailman
    # "non-member", "moderated".
    PhraseRule(
        Reason.REJECTED,
        (r"non-?member|not a member|members[- ]only|moderat|permission to post|google groups?",),
        overrules=r"^\d\.1\.",
    ),
    # Filters: Sendmail/Exim "content filter", a recipient's filter rules.
    PhraseRule(
        Reason.FILTERED,
        (r"content filter|filtered",),
        overrules=r"^\d\.1\.",
    ),
    # Message format (RFC 5322 and RFC 5321 limits): Gmail "5.7.1 ... not RFC 5322
    # compliant", Exchange "malformed", Postfix "header syntax".
    PhraseRule(
        Reason.NOT_COMPLIANT_RFC,
        (r"malformed|incorrectly constructed|not (?:rfc ?\d+ )?compliant|rfc ?5322",),
        overrules=r"^\d\.1\.",
    ),
    # Protocol: RFC 5321's 500, 501, 502, 503, 504.
    PhraseRule(
        Reason.SYNTAX_ERROR,
        (r"syntax|not implemented|command not recognized|bad sequence|unrecognized command",),
        overrules=r"^\d\.1\.",
    ),
    # Policy, in general: Postfix access maps, Exchange transport rules, "not allowed".
    PhraseRule(
        Reason.POLICY_VIOLATION,
        (
            r"\bpolic(?:y|ies)\b",
            r"suspicious|fraud",
            r"prohibited|forbidden|denied",
            r"not (?:allowed|authori[sz]ed|permitted|accepted)",
            r"(?:message|mail|content|e-?mail)s? (?:was |has been |is )?"
            r"(?:rejected|refused|blocked|declined)",
            r"(?:rejected|refused) (?:due to|because|for|by|as|per|under)",
            r"mismatch|does not match",
        ),
        overrules=r"^\d\.1\.",
    ),
    # Too big: RFC 1870's SIZE, Postfix "message size exceeds fixed limit", Exim "message
    # too big", Exchange "5.3.4 message size exceeds".
    PhraseRule(
        Reason.MESSAGE_TOO_BIG,
        (
            r"too (?:big|large)",
            r"size (?:limit|exceed)",
            r"exceed\w* (?:the )?(?:\w+ ){0,3}size",
            r"(?:message|mail) (?:size|length) exceed",
            r"line (?:length )?limit exceeded|line too long",
        ),
    ),
    # The queue gave up: Postfix "delivery temporarily suspended ... (expired)", Exim
    # "retry timeout exceeded", Sendmail "Message could not be delivered for 5 days",
    # qmail "I'm not going to try again; this message has been in the queue too long",
    # Exchange "message expired".
    PhraseRule(
        Reason.EXPIRED,
        (
            r"expired",
            r"retry (?:time|timeout|period)",
            r"not (?:been )?(?:delivered|collected) (?:within|for|after|in)",
            r"delivered for",
            r"unable to deliver in",
            r"(?:aborted|gave up|giving up) after|giving up|gave up",
            r"failed \d+ attempts|repeated attempts",
            r"maximum (?:number of )?(?:delivery )?(?:attempts|retries|time)",
            r"too long in (?:the )?queue|queued? too long|in the queue too long",
        ),
    ),
    # Exim: "all hosts have been failing for a long time and were last tried after this
    # message arrived", its retry rules' final verdict.
    PhraseRule(
        Reason.EXPIRED,
        (r"have been failing for a long time",),
        seen_in="bounces-more",
    ),
    # The network: Postfix "connect to ...: Connection refused", "Connection timed out",
    # "lost connection with", Exim "all hosts ... have been failing", routing loops.
    PhraseRule(
        Reason.NETWORK_ERROR,
        (
            r"timeout|time ?out|timed out",
            r"connection (?:refused|rejected|reset|lost|closed|dropped|failed|failure|error"
            r"|timed out)",
            r"(?:refus\w*|unable|failed|could ?n[o']t|cannot|can't) (?:\w+ ){0,3}connect",
            r"socket error|no route to host|unreachable|not responding|no answer",
            r"could not find a gateway",
            r"routing loop|mail loop|loops? back|loop detected|too many hops|hop count",
            r"lost connection|network (?:error|failure)",
            r"dns (?:error|failure|timeout)",
        ),
    ),
    PhraseRule(Reason.NETWORK_ERROR, (r"\blooping\b",), seen_in="bounces-more"),
    PhraseRule(Reason.MAILER_ERROR, (r"local delivery",)),
    # The receiving system's storage and its own errors.
    PhraseRule(
        Reason.SYSTEM_FULL,
        (r"insufficient (?:system )?(?:resources|storage)", r"(?:server|system|host) is full"),
    ),
    PhraseRule(
        Reason.SYSTEM_ERROR,
        (
            r"system error|internal (?:server |system )?error",
            r"(?:local|temporary|unexpected) (?:error|problem|failure)",
            r"(?:server|system|host) (?:is )?overloaded|\bbusy\b",
            r"resources? (?:temporarily )?unavailable",
            r"(?:service|currently|temporarily) (?:is )?unavailable",
            r"service (?:is )?(?:currently |temporarily )?unavailable",
            r"configuration error|misconfigur",
            r"write error|i/o error|queue file|out of memory",
            r"not accepting",
        ),
    ),
    # USA.NET's "encountered an error while being processed".
    PhraseRule(
        Reason.SYSTEM_ERROR,
        (r"error while (?:being )?process",),
        seen_in="bounces-more",
    ),
    # Only "later": the report says delivery failed for now, not why.
    PhraseRule(
        Reason.ON_HOLD,
        (r"deferred|temporar|try (?:again )?later|please try again",),
    ),
)

# What a queue says when it keeps trying or gives up (Gmail "Message will be retried for
# 2 more day(s)", Exim "has not yet been delivered ... after more than 24 hours on the
# queue", Postfix "delivery temporarily suspended", Sendmail "Warning: could not send
# message for past 4 hours", qmail "I'm not going to try again").
QUEUE = (
    r"will be retried|(?:has|have) not yet been delivered|on the queue|in the queue",
    r"could not send message for past|temporarily suspended|not going to try again",
    r"giving up|gave up|retry time|retry timeout",
)

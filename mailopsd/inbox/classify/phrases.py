"""The words of mail robots and people that the classifier recognises, as data.

Each table is a tuple of regular-expression alternatives (``AUTO_HEADERS``: header field
names; ``SES_SUBTYPES``: a mapping), compiled by the module that uses it and matched as
that module says: the word rules against a server's reply (``rules``), the others against
a subject, a From field or a report's lines (``decision``, ``freetext``). Keeping them
apart from the code lets a table grow by an entry without touching the logic. The order
of the word rules matters, the first that matches wins; within a table an entry matches
or not wherever it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailopsd.lifecycle import MailKind

__all__ = [
    "AUTO_HEADERS",
    "BOUNCE_BODY",
    "BOUNCE_FROM",
    "BOUNCE_SUBJECT",
    "LEAD_IN",
    "OUT_OF_OFFICE_SUBJECT",
    "REPLY_PREFIXES",
    "RETURNED_MARK",
    "RETURNED_MARK_WORDS",
    "ROBOT_FROM",
    "SENDER_CONTEXT",
    "SES_SUBTYPES",
    "SKIP_FIELDS",
    "TEMPORARY",
    "UNSUBSCRIBE_SUBJECT",
    "WORD_RULES",
    "PhraseRule",
]


@dataclass(frozen=True)
class PhraseRule:
    """Phrases that name a class, and the status codes they overrule.

    ``overrules`` is a pattern of the status codes the phrases win over (``""``: every
    code; ``None``: none, a specific code wins).
    """

    kind: MailKind
    phrases: tuple[str, ...]
    overrules: str | None = None


# --- A server's reply ---------------------------------------------------------------------

# Matched against the words lowercased, addresses removed and links cut to their host.
# The first rule that matches names the class, so the specific come before the general
# and the sender's trouble before the recipient's ("domain of sender address does not
# exist" is about the sender).
WORD_RULES = (
    # The sender's own volume: a sending quota is not the recipient's mailbox quota.
    PhraseRule(
        MailKind.BLOCK,
        (r"\b(?:daily|hourly|sending|outgoing|outbound) (?:message |e?mail )?(?:quota|limit)",),
        overrules=r"",
    ),
    # A full mailbox, in the many ways servers say it.
    PhraseRule(
        MailKind.SOFT,
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
    # The recipient's account exists but is closed, disabled or blocked.
    PhraseRule(
        MailKind.HARD,
        (
            r"(?<!your )(?<!sending )(?<!sender )\b(?:account|mailbox|mail box)\b[^.;:]{0,40}?"
            r"\b(?:disabled|suspended|deactivated|inactive|closed|locked|frozen|expired|blocked"
            r"|terminated|discontinued|deleted|removed|cancell?ed|bloqu[eé]e?|gesperrt)\b",
            r"\buser (?:is |has been )?(?:disabled|suspended|deactivated|inactive|terminated)",
        ),
    ),
    # The sender's address or domain, relaying, authentication.
    PhraseRule(
        MailKind.BLOCK,
        (
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
        ),
        overrules=r"",
    ),
    # The receiving server limits connections or greylists: come back later.
    PhraseRule(
        MailKind.SOFT,
        (
            r"too many (?:concurrent |simultaneous |open )?connections",
            r"connection (?:rate |count )?limit",
            r"(?:concurrent|simultaneous) connections",
            r"gr[ae]y-?list",
        ),
        overrules=r"^4\.",
    ),
    # The address or its domain does not exist.
    PhraseRule(
        MailKind.HARD,
        (
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
    ),
    # The message or the sending host was refused: spam, lists, reputation, policy.
    PhraseRule(
        MailKind.BLOCK,
        (
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
        ),
        overrules=r"^\d\.1\.",
    ),
    # Too big, expired in the queue, network, the receiving system's own trouble.
    PhraseRule(
        MailKind.SOFT,
        (
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
    ),
)

# --- Who wrote it, and what it says of itself -----------------------------------------------

# Reply and forward prefixes of a subject: English, German (AW, WG), Nordic (SV), Finnish
# (VS), Dutch (Antw), Polish (Odp), French (TR), Spanish (RV), Italian (R).
REPLY_PREFIXES = ("re", "aw", "sv", "vs", "antw", "odp", "fw", "fwd", "wg", "tr", "rv", "r")
# From fields of the systems that send delivery reports.
BOUNCE_FROM = (
    r"mailer-daemon",
    r"mailerdaemon",
    r"mail-daemon",
    r"postmaster",
    r"mail delivery",
    r"\bndr\b",
    r"\bmmsc\b",
)
# From fields of robots: no person wrote the message.
ROBOT_FROM = (
    r"no-?reply",
    r"do-?not-?reply",
    r"daemon",
    r"postmaster",
    r"admin",
    r"bounce",
    r"owner-",
    r"-owner",
    r"-request",
    r"listserv",
    r"majordomo",
    r"mailman",
    r"sympa",
    r"notification",
)
# Subjects of delivery reports.
BOUNCE_SUBJECT = (
    r"undeliver",
    r"delivery (?:status notification|failure|has failed|problem|notification"
    r"|failed|report|incomplete|delayed)",
    r"returned mail",
    r"return(?:ed)? to sender",
    r"failure notice",
    r"mail delivery failed",
    r"could not be delivered",
    r"non-?delivery",
    r"not delivered",
    r"delivery failed",
    r"mail failure",
    r"mail system error",
    r"failed delivery",
    r"nondeliverable",
    r"warning: (?:message|could)",
    r"delayed mail",
    r"error sending your mail",
    r"message delivery has been delayed",
)
# What a robot's report says in its text when its headers do not say it is one.
BOUNCE_BODY = (
    r"could not be delivered",
    r"couldn't be delivered",
    r"was not delivered",
    r"wasn't delivered",
    r"undeliverable",
    r"delivery (?:has )?failed",
    r"failed permanently",
    r"unable to deliver",
    r"not be delivered",
    r"permanent (?:fatal )?error",
    r"following (?:address|recipient)",
    r"delivery to the following",
    r"error delivering",
    r"rejected by",
    r"not a member of",
    r"held until the list moderator",
    r"delivery status notification",
)
# A report that says delivery is still being tried.
TEMPORARY = (
    r"temporar",
    r"delayed",
    r"will (?:continue to )?(?:retry|try)",
    r"still (?:trying|being retried)",
    r"warning:",
    r"has not yet been delivered",
    r"deferred",
)
# Out-of-office subjects: strong phrases anywhere, single words only at the start.
OUT_OF_OFFICE_SUBJECT = (
    r"out of (?:the )?office",
    r"\booo\b",
    r"auto(?:matic|mated)?[ -]?(?:reply|response|answer|respon)",
    r"autoreply",
    r"away from (?:the |my )?(?:office|desk)",
    r"(?:^|: )(?:away|vacation|holiday|absent|absence|on leave)\b",
    r"\bon (?:vacation|holiday|leave|annual leave)\b",
    # German
    r"abwesenheit",
    r"abwesend",
    r"automatische antwort",
    r"nicht im b(?:ü|ue)ro",
    r"au(?:ß|ss)er haus",
    r"(?:^|: )urlaub\b",
    r"autoantwort",
    # French
    r"r[ée]ponse automatique",
    r"message d'absence",
    r"absente? du bureau",
    r"hors du bureau",
    r"en cong[ée]s?\b",
    r"(?:^|: )cong[ée]s\b",
    # Spanish
    r"respuesta autom[áa]tica",
    r"fuera de (?:la )?oficina",
    r"(?:^|: )(?:ausente|ausencia)\b",
    r"de vacaciones",
    # Italian
    r"risposta automatica",
    r"fuori (?:sede|ufficio)",
    r"(?:^|: )(?:assente|assenza)\b",
    r"\bin ferie\b",
    # Portuguese
    r"resposta autom[áa]tica",
    r"fora do escrit[óo]rio",
    r"(?:^|: )aus[êe]ncia\b",
    r"de f[ée]rias",
    # Dutch
    r"automatisch (?:antwoord|beantwoord)",
    r"afwezig",
    r"niet (?:op kantoor|aanwezig)",
    r"buiten kantoor",
    r"met vakantie",
    # Nordic, Polish, Czech, Turkish, Finnish, Russian, Japanese, Chinese
    r"automatiskt svar",
    r"automatisk svar",
    r"frånvar",
    r"fraværende",
    r"automatyczna odpowied",
    r"poza biurem",
    r"nieobecno",
    r"automatick[áa] odpov",
    r"otomatik yan[\u0131i]t",
    r"automaattinen vastaus",
    r"автоответ",
    r"автоматический ответ",
    r"в отпуске",
    r"自動応答",
    r"自動返信",
    r"不在",
    r"自动回复",
    r"自動回覆",
)
# The older vendor headers of automatic replies, beside RFC 3834's Auto-Submitted.
AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated")
# A subject that is a request to unsubscribe, after any reply or forward prefixes.
UNSUBSCRIBE_SUBJECT = r"(?:(?:re|aw|sv|fw|fwd|wg|tr|rv)\s*:\s*)*\[?\s*unsubscribe\b.{0,200}"

# --- A text report ------------------------------------------------------------------------

# A line that opens the copy of the returned message in a text report (Exim, qmail,
# Sendmail, Gmail, Exchange, Domino...), once stripped of its dashes.
RETURNED_MARK = (
    r"(?:here is |this is )?(?:a )?copy of (?:the |your )(?:first part of the )?"
    r"(?:original )?message.*",
    r"below this line is a copy of the message.*",
    r"(?:the )?(?:original|returned|unsent|undelivered|rejected) (?:message|mail)"
    r"(?: (?:follows|headers?(?: follows?)?|text|below|is attached))?",
    r"(?:the )?headers? of (?:the |your )?original message(?: (?:is )?follows?| is following)?",
    r"start of returned message",
    r"message headers? follows?",
    r"the original message headers? (?:is|are) (?:attached|included|following)",
)
# The words one of those lines has: where to look for one.
RETURNED_MARK_WORDS = (
    r"copy",
    r"original",
    r"returned",
    r"unsent",
    r"undelivered",
    r"rejected",
    r"headers? f",
)
# Text just before an address that makes it the sender's or the reporter's, not a failed
# recipient: "MAIL From:<a@b>", "please contact <postmaster@b>", "(expanded from <a@b>)".
SENDER_CONTEXT = (
    r"\bfrom",
    r"sender",
    r"return-path",
    r"reply-to",
    r"errors-to",
    r"contact",
    r"write to",
    r"send mail to",
    r"mailto",
    r"\bby",
    r"message-id",
    r"\bid",
)
# Header fields whose addresses are never a failed recipient.
SKIP_FIELDS = (
    r"from",
    r"sender",
    r"reply-to",
    r"return-path",
    r"message-id",
    r"in-reply-to",
    r"references",
    r"subject",
    r"x-postfix-sender",
    r"original sender",
    r"received",
    r"errors-to",
)
# What a report writes before the list of failed recipients.
LEAD_IN = (
    r"following (?:\w+ ){0,2}(?:recipient|address|destination|user)",
    r"did not reach",
    r"(?:recipients?|address(?:es)?) (?:were|was|is|are) affected",
    r"delivery to the following",
    r"failed (?:to|for) (?:these|the following)",
    r"could not be delivered to",
)

# --- Amazon SES ---------------------------------------------------------------------------

# Amazon SES bounce subtypes, in the words the word rules know.
SES_SUBTYPES = {
    "MailboxFull": "mailbox full",
    "MessageTooLarge": "message too large",
    "ContentRejected": "content rejected",
    "AttachmentRejected": "content rejected",
    "NoEmail": "no such user",
    "Suppressed": "no such user",
    "OnAccountSuppressionList": "no such user",
}

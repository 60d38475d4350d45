"""The words of mail robots and people that the classifier recognises, as data.

Each table is a tuple of regular-expression alternatives (``AUTO_HEADERS``: header field
names; ``SES_SUBTYPES``: a mapping), compiled by the module that uses it and matched as
that module says: against a subject, a From field or a report's lines (``decision``,
``freetext``). Keeping them apart from the code lets a table grow by an entry without
touching the logic; within a table an entry matches or not wherever it stands. The
words of a server's reply, which name a reason, are ``mailopsd.diagnosis.phrases``.
"""

from __future__ import annotations

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
]


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
    r"anti-?virus",
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
    r"attempts will continue",
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

"""Reading a server's refusal: the reason, and the class that follows from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd.diagnosis import (
    BY_CLASS,
    CLASSES,
    Reason,
    class_of,
    diagnose,
    parse_reason,
    phrases,
    reply_diagnosis,
    rules,
)
from mailopsd.lifecycle import MailKind


def test_every_reason_has_one_class() -> None:
    """The class follows from the reason through one table; the three reasons that say
    only "refused" take the code's class."""
    by_code = {Reason.NOT_ACCEPT, Reason.ON_HOLD, Reason.UNDEFINED}
    assert set(CLASSES) | by_code == set(Reason)
    for reason in by_code:
        assert class_of(reason, permanent=True) == MailKind.HARD
        assert class_of(reason, permanent=False) == MailKind.SOFT
    assert set(BY_CLASS[MailKind.BLOCK]) >= {Reason.SPAM_DETECTED, Reason.BLOCKED}
    assert parse_reason(" SpamDetected ") == Reason.SPAM_DETECTED
    assert parse_reason("spam") is None


@pytest.mark.parametrize(
    ("status", "words", "reason", "kind"),
    [
        ("5.1.1", "550 5.1.1 <a@b.example>: Recipient address rejected", "userunknown", "hard"),
        # The words refine a code that names only a class.
        ("5.7.1", "550 5.7.1 Message rejected as spam", "spamdetected", "block"),
        (
            "5.7.1",
            "550 5.7.1 Service unavailable; client host blocked using zen",
            "blocked",
            "block",
        ),
        # A user unknown with a transient code is still a gone address.
        ("4.1.1", "450 4.1.1 <a@b.example>: User unknown", "userunknown", "hard"),
        # RFC 4954's "user account disabled"; a transient "mailbox disabled" waits.
        ("5.7.13", "525 5.7.13 account disabled", "suspend", "hard"),
        ("4.2.1", "450 4.2.1 mailbox temporarily disabled", "onhold", "soft"),
        # "Mailbox disabled" is what some servers answer for an address they never had.
        ("5.2.1", "550 5.2.1 <a@b.example>... User Unknown", "userunknown", "hard"),
        # RFC 7505: a null MX takes no mail; its class is the code's.
        ("5.1.10", "556 5.1.10 recipient domain has null MX", "notaccept", "hard"),
        (
            "4.0.0",
            "DNS Error: lookup of b.example responded NOERROR: returned Null MX",
            "notaccept",
            "soft",
        ),
        # A failed lookup with a transient code is tried again: not a verdict yet.
        (
            "4.0.0",
            "DNS Error: lookup of b.example responded with code NXDOMAIN",
            "networkerror",
            "soft",
        ),
        (
            "5.4.4",
            "Name service error for name=b.example type=MX: Host not found",
            "hostunknown",
            "hard",
        ),
        (
            "5.4.4",
            "Name service error: Malformed or unexpected name server reply",
            "networkerror",
            "soft",
        ),
        # The sender's quota is not the recipient's.
        ("5.4.5", "550 5.4.5 Daily user sending quota exceeded", "ratelimited", "block"),
        ("5.2.2", "552 5.2.2 Mailbox full", "mailboxfull", "soft"),
        (None, "host b.example said: 554 5.7.1 relay access denied", "norelaying", "block"),
        # No code and no words: permanent unless the report says it is still trying.
        (None, "the message could not be delivered", "undefined", "hard"),
        ("2.0.0", "250 2.0.0 OK", "delivered", "delivered"),
    ],
)
def test_diagnose(status: str | None, words: str, reason: str, kind: str) -> None:
    assert diagnose(status, words) == (reason, kind)


def test_a_report_of_waiting_makes_a_transient_reason_expired() -> None:
    """The network trouble a queue quotes when it gives up, or keeps trying, is why it
    waited: the reason is the expiry."""
    words = "connect to b.example[192.0.2.1]:25: Connection timed out"
    assert diagnose("4.4.1", words) == (Reason.NETWORK_ERROR, MailKind.SOFT)
    assert diagnose("4.4.1", words, temporary=lambda: True) == (Reason.EXPIRED, MailKind.SOFT)
    gave_up = f"{words}. Message will be retried for 2 more day(s)"
    assert diagnose(None, gave_up).reason == Reason.EXPIRED


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        ("said: 550 Sender rejected (in reply to MAIL FROM command)", "rejected"),
        ("said: 554 no (in reply to end of DATA command)", "policyviolation"),
        ("said: 550 no (in reply to HELO command)", "requireptr"),
        # "following mail" is English, not the MAIL command.
        ("The following mail has been returned. 550 failed", "undefined"),
    ],
)
def test_the_command_refused_names_the_senders_reason(words: str, reason: str) -> None:
    assert diagnose(None, words).reason == reason


def test_a_send_time_reply_reads_as_a_report_does() -> None:
    assert reply_diagnosis(550, "5.7.1 Message rejected as spam") == ("spamdetected", "block")
    assert reply_diagnosis(550, "5.1.1 <a@b.example>: User unknown") == ("userunknown", "hard")
    assert reply_diagnosis(552, "Requested mail action aborted: exceeded storage") == (
        "mailboxfull",
        "soft",
    )


def test_held_out_drops_only_the_phrases_a_corpus_taught() -> None:
    """The corpus test measures each corpus without the phrases added after reading it."""
    taught = [rule for rule in phrases.WORD_RULES if rule.seen_in == "bounces-more"]
    assert taught, "the held-out measure would equal the full one"
    words = "kijitora@b.example all hosts have been failing for a long time"
    assert diagnose(None, words).reason == Reason.EXPIRED
    with rules.held_out("bounces-more"):
        assert diagnose(None, words) == (Reason.UNDEFINED, MailKind.HARD)
    assert diagnose(None, words).reason == Reason.EXPIRED


def test_the_guide_explains_every_reason() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deliverability.md").read_text()
    assert [reason for reason in Reason if f"| `{reason}` |" not in guide] == []


def test_a_queue_that_stopped_trying_expired() -> None:
    """RFC 3464's "failed" with a transient status: the network trouble it quotes is why
    the message waited until the queue gave up."""
    said = diagnose("4.4.1", "connect to b.example[192.0.2.1]:25: Connection timed out")
    assert rules.gave_up(said) == (Reason.EXPIRED, MailKind.SOFT)
    hard = diagnose("5.1.1", "550 5.1.1 User unknown")
    assert rules.gave_up(hard) == hard

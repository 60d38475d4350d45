"""The inbox against a real IMAP server (dovecot) and a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd import cli
from mailopsd.diagnosis import CLASSES, Reason
from mailopsd.state.inbox import Cursor
from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.commands import status_json
from tests.dispatch_setup import (
    ADA,
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    run_once,
    sent_ids,
    write_campaign,
    write_config,
    write_leads,
)
from tests.ledger_setup import read_ledger
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = "2026-11-23T10:00:00Z"
DAY1_LATER = "2026-11-23T12:00:00Z"
DAY2 = "2026-11-24T10:00:01Z"


def _status(state: Path, capsys: pytest.CaptureFixture[str], now: str) -> dict[str, Any]:
    return status_json(capsys, state, now)


def _ada(report: dict[str, Any]) -> dict[str, Any]:
    return report["campaigns"][0]["smtp_credentials"][0]  # type: ignore[no-any-return]


def _bounces(state: Path) -> list[tuple[str, str, str]]:
    """(credential, address, kind) of each bounce recorded, in the order they came."""
    with read_ledger(state) as ledger:
        return [(b.credential_id, b.email, b.kind) for b in ledger.sends.bounces()]


def _replies(state: Path) -> list[tuple[str, str]]:
    """(address, kind) of each reply recorded, in the order they came."""
    with read_ledger(state) as ledger:
        return [(reply.email, reply.kind) for reply in ledger.inbox.replies()]


def _suppressed(state: Path) -> dict[str, str]:
    with read_ledger(state) as ledger:
        return ledger.suppressions.entries()


def _cursors(state: Path) -> list[Cursor]:
    with read_ledger(state) as ledger:
        return ledger.inbox.polls()


def test_replies_auto_replies_and_unsubscribes(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reply (threaded or not) and an unsubscribe stop the lead; an auto-reply does not;
    mail stays unread; a second poll with no new mail reads nothing."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))}, leads=6
    )
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    ids = sent_ids(smtp_server)
    assert len(ids) == 6
    lead = [f"lead{i:04d}@example.net" for i in range(6)]
    dovecot.append(user, inbox_mail.reply(lead[0], ADA, ids[lead[0]]))
    dovecot.append(user, inbox_mail.auto_reply(lead[1], ADA, ids[lead[1]]))
    dovecot.append(user, inbox_mail.unsubscribe(lead[2], ADA))
    dovecot.append(user, inbox_mail.reply(lead[3], ADA, None, subject="your note"))
    dovecot.append(user, inbox_mail.stranger(ADA))
    smtp_server.handler.messages.clear()

    assert run_once(path, state, DAY2) == 0
    followed = sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages)
    assert followed == [lead[1], lead[4], lead[5]]  # the auto-reply does not stop lead 1
    assert all("\\Seen" not in flags for flags in dovecot.flags(user).values())
    assert dict(_replies(state)) == {
        lead[0]: "reply",
        lead[1]: "auto_reply",
        lead[2]: "unsubscribe",
        lead[3]: "reply",
    }
    with read_ledger(state) as ledger:
        leads = [ledger.leads.get("camp", address) for address in lead]
    stopped = {p.email: p.stop_reason for p in leads if p is not None and p.state == "stopped"}
    assert stopped == {lead[0]: "replied", lead[2]: "unsubscribed", lead[3]: "replied"}
    assert _suppressed(state) == {lead[2]: "unsubscribed"}
    assert _ada(_status(state, capsys, DAY2))["last_poll_result"] == "ok: 5 new"

    smtp_server.handler.messages.clear()
    assert run_once(path, state, "2026-11-25T10:00:01Z") == 0
    assert _ada(_status(state, capsys, DAY2))["last_poll_result"] == "ok: 0 new"
    with read_ledger(state) as ledger:
        assert ledger.inbox.messages_read("camp") == 5
    assert smtp_server.handler.messages == []  # two-step campaign: all done or stopped


def _one_lead_answers(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    answer: Callable[[str, str, str], bytes],
    **campaign: Any,
) -> Path:
    """Two leads get step 1; lead 0 sends ``answer``; the next day only lead 1 may get
    step 2 (asserted). Returns the state directory."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user)
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", **imap)}, leads=2, **campaign
    )
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    ids = sent_ids(smtp_server)
    dovecot.append(user, answer("lead0000@example.net", ADA, ids["lead0000@example.net"]))
    smtp_server.handler.messages.clear()
    run_once(path, state, DAY2)
    assert [m.rcpt_tos[0] for m in smtp_server.handler.messages] == ["lead0001@example.net"]
    return state


def test_stop_on_auto_reply(tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot) -> None:
    """With stop_on_auto_reply the out-of-office answer ends the sequence too."""
    _one_lead_answers(
        tmp_path, smtp_server, dovecot, inbox_mail.auto_reply, stop_on_auto_reply=True
    )


def test_bounce_reports_disable_then_reenable(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Hard bounces in four real formats push the mailbox over its threshold: disabled_at
    in state.yaml and status; a soft bounce and a block count as such; a reenabled_at edit
    brings it back with a fresh window."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))},
        leads=12,
        bounce_threshold="20%",
        bounce_min_sends=10,
    )
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    ids = sent_ids(smtp_server)
    lead = sorted(ids)
    formats = [
        inbox_mail.postfix_dsn,
        inbox_mail.exim_bounce,
        inbox_mail.exchange_ndr,
        inbox_mail.gmail_bounce,
    ]
    for address, make in zip(lead[:4], formats, strict=True):
        dovecot.append(user, make(address, ADA, ids[address]))
    dovecot.append(user, inbox_mail.postfix_dsn(lead[4], ADA, ids[lead[4]], status="4.2.2"))
    dovecot.append(user, inbox_mail.block_dsn(lead[5], ADA, ids[lead[5]]))

    run_once(path, state, DAY1_LATER)
    with read_ledger(state) as ledger:
        recorded = ledger.sends.bounces()
    bounces = sorted((b.email, b.kind, b.source) for b in recorded)
    assert bounces == sorted(
        [(a, "hard", "imap") for a in lead[:4]]
        + [(lead[4], "soft", "imap"), (lead[5], "block", "imap")]
    )
    # each with the reason the classifier found, whose class is the bounce's kind
    assert all(CLASSES.get(Reason(b.reason), b.kind) == b.kind for b in recorded)
    assert sorted(_suppressed(state)) == lead[:4]
    entry = load_state(state).credentials["camp/a"]
    assert entry.disabled_at is not None
    assert entry.disabled_reason is not None
    assert "bounce rate 33.3% (4/12) > 20%" in entry.disabled_reason
    assert "disabled_at:" in (state / "state.yaml").read_text()
    report = _ada(_status(state, capsys, DAY1_LATER))
    assert report["state"] == "disabled"
    assert (report["bounces_in_window"], report["blocks_in_window"]) == (4, 1)

    smtp_server.handler.messages.clear()
    run_once(path, state, DAY2)
    assert smtp_server.handler.messages == []  # disabled: its follow-ups wait

    config = yaml.safe_load(path.read_text())
    config["campaigns"]["camp"]["smtp_credentials"]["a"]["reenabled_at"] = "2026-11-24T11:00:00Z"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_once(path, state, "2026-11-24T11:00:01Z")
    report = _ada(_status(state, capsys, "2026-11-24T11:00:01Z"))
    assert report["state"] == "active"
    assert report["bounces_in_window"] == 0
    assert report["bounce_window_start"] == "2026-11-24T11:00:00Z"
    followed = sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages)
    assert followed == lead[4:]  # the soft-bounced and blocked leads were not stopped


def test_unmatched_and_duplicate_reports(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """A report about an address this mailbox never wrote to changes nothing; the same
    report twice (a copy in another folder) counts once."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path,
        {
            "a": credential(
                smtp_server, "ada", **imap_fields(dovecot, user, imap_folders=["INBOX", "Junk"])
            )
        },
        leads=2,
    )
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    ids = sent_ids(smtp_server)
    report = inbox_mail.postfix_dsn("lead0000@example.net", ADA, ids["lead0000@example.net"])
    dovecot.append(user, report)
    dovecot.append(user, report, folder="Junk")
    dovecot.append(user, inbox_mail.postfix_dsn("nobody@example.org", ADA, "<x@elsewhere>"))
    run_once(path, state, DAY1_LATER)
    assert _bounces(state) == [("a", "lead0000@example.net", "hard")]
    assert [cursor.folder for cursor in _cursors(state)] == ["INBOX", "Junk"]


def test_uidvalidity_change_rescans_without_double_counting(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """When the server changes UIDVALIDITY the folder is read again from the first send,
    and what was recorded before is not counted again."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))}, leads=3
    )
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    ids = sent_ids(smtp_server)
    lead = sorted(ids)
    dovecot.append(user, inbox_mail.postfix_dsn(lead[0], ADA, ids[lead[0]]))
    run_once(path, state, DAY1_LATER)
    (before,) = _cursors(state)
    dovecot.doveadm("mailbox", "update", "-u", user, "--uid-validity", "4242", "INBOX")
    dovecot.append(user, inbox_mail.reply(lead[1], ADA, ids[lead[1]]))
    run_once(path, state, DAY1_LATER)
    (after,) = _cursors(state)
    assert after.uidvalidity == 4242 != before.uidvalidity
    assert after.last_result == "ok: 1 new, 1 seen before"
    assert _bounces(state) == [("a", lead[0], "hard")]
    assert _replies(state) == [(lead[1], "reply")]


def test_complaint_suppresses_at_once(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """An ARF complaint stops the lead and suppresses the address for the account."""
    state = _one_lead_answers(tmp_path, smtp_server, dovecot, inbox_mail.arf_complaint)
    assert _suppressed(state) == {"lead0000@example.net": "complaint"}
    assert _replies(state) == [("lead0000@example.net", "feedback")]


def test_reports_quoting_none_of_our_messages_do_not_disable(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two hard-bounce reports that quote none of the mailbox's messages, about 2 of its 20
    leads, do not disable it at the default thresholds: status shows them as unconfirmed,
    nothing is suppressed and both leads still get their follow-up."""
    user, _ = dovecot.add_user()
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))}, leads=20
    )
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    lead = sorted(sent_ids(smtp_server))
    assert len(lead) == 20
    for address in lead[:2]:
        dovecot.append(user, inbox_mail.unquoting_dsn(address, ADA))

    run_once(path, state, DAY1_LATER)
    assert load_state(state).credential("camp/a").disabled_at is None
    report = _ada(_status(state, capsys, DAY1_LATER))
    assert report["state"] == "active"
    assert (report["bounces_in_window"], report["unconfirmed_bounces_in_window"]) == (0, 2)
    assert _suppressed(state) == {}
    assert cli.main(["status", "--state-dir", str(state), "--now", DAY1_LATER]) == 0
    assert "unconfirmed bounce reports: 2 (" in capsys.readouterr().out

    smtp_server.handler.messages.clear()
    run_once(path, state, DAY2)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages) == lead


def _two_accounts(tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot) -> tuple[Path, str]:
    """Campaign ``camp`` of account ``a`` reads ada's mailbox; campaign ``other`` of account
    ``b`` sends as box2 to 20 other leads. Returns the config path and ada's IMAP user."""
    user, _ = dovecot.add_user()
    write_leads(tmp_path / "leads.csv", 20)
    write_leads(tmp_path / "leads-b.csv", [f"b{i:04d}@example.org,B{i}" for i in range(20)])
    ada = {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))}
    box2 = {"b": credential(smtp_server, "box2")}
    path = write_config(
        tmp_path,
        {
            "camp": campaign_tree(ada, account="a"),
            "other": campaign_tree(box2, account="b", leads="leads-b.csv"),
        },
    )
    return path, user


def test_a_report_in_one_account_never_charges_another(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """Reports in account a's mailbox that quote Message-IDs account b's credential sent
    charge nothing to b: it stays enabled, nothing is suppressed, its leads go on."""
    path, user = _two_accounts(tmp_path, smtp_server, dovecot)
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    theirs = {
        m.rcpt_tos[0]: str(parsed(m)["Message-ID"])
        for m in smtp_server.handler.messages
        if m.login == "box2"
    }
    assert len(theirs) == 20
    for address in sorted(theirs)[:2]:
        dovecot.append(user, inbox_mail.postfix_dsn(address, ADA, theirs[address]))

    run_once(path, state, DAY1_LATER)
    assert load_state(state).credential("other/b").disabled_at is None
    assert _bounces(state) == []
    assert _suppressed(state) == {}
    smtp_server.handler.messages.clear()
    run_once(path, state, DAY2)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages if m.login == "box2") == (
        sorted(theirs)
    )


def test_a_mailbox_speaks_of_the_sends_from_its_address(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """In ada's mailbox, a report quoting a message sent from ada's address by a credential
    that reads no mailbox counts against that credential; one quoting a message another
    credential sent from its own address counts against nobody."""
    user, _ = dovecot.add_user()
    credentials = {
        "a": credential(smtp_server, "ada", **imap_fields(dovecot, user)),
        "b": credential(smtp_server, "box2", from_email=ADA),
        "c": credential(smtp_server, "box3"),
    }
    path = write_campaign(tmp_path, credentials, leads=6)
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    by_login = {
        m.login: (m.rcpt_tos[0], str(parsed(m)["Message-ID"])) for m in smtp_server.handler.messages
    }
    for login in ("box2", "box3"):
        address, message_id = by_login[login]
        dovecot.append(user, inbox_mail.postfix_dsn(address, ADA, message_id))

    run_once(path, state, DAY1_LATER)
    assert _bounces(state) == [("b", by_login["box2"][0], "hard")]
    assert list(_suppressed(state)) == [by_login["box2"][0]]

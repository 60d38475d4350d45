"""A mailbox shared by campaigns, read by one poll, against real dovecot and SMTP servers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.commands import status_json
from tests.daemons import in_process
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

DAY1 = "2026-11-23T10:00:00Z"
DAY1_LATER = "2026-11-23T12:00:00Z"
DAY2 = "2026-11-24T10:00:01Z"
FORWARD_TO = "postmaster@sender.example.com"


# Each campaign's leads: the first name they all have (so its subjects are "Hello One",
# "Hello Two"), and their addresses' local parts (at example.net).
LEADS = {"c1": ("One", ["shared", "only1"]), "c2": ("Two", ["shared", "only2", "gone2"])}


def _shared(tmp_path: Path, smtp_server: SmtpServer, mailbox: dict[str, Any]) -> Path:
    """Campaigns c1 and c2 (``LEADS``) name the one mailbox ``ada``, as ``main``; the
    mailbox has the fields of ``credential(smtp_server, "ada")`` and ``mailbox``."""
    trees = {}
    for campaign_id, (name, locals_) in LEADS.items():
        leads = f"leads-{campaign_id}.csv"
        write_leads(tmp_path / leads, [f"{local}@example.net,{name}" for local in locals_])
        trees[campaign_id] = campaign_tree({"main": {"mailbox": "ada"}}, leads=leads)
    ada = credential(smtp_server, "ada", **mailbox)
    return write_config(tmp_path, trees, mailboxes={"ada": ada})


def _sent(smtp_server: SmtpServer) -> dict[tuple[str, str], str]:
    """The Message-ID of each message received, by (subject, recipient)."""
    return {
        (str(parsed(m)["Subject"]), m.rcpt_tos[0]): str(parsed(m)["Message-ID"])
        for m in smtp_server.handler.messages
    }


def _cursors(state: Path) -> list[tuple[str, str, str | None]]:
    """(campaign, credential, last result) of each folder's cursor."""
    with read_ledger(state) as ledger:
        return [(c.campaign_id, c.credential_id, c.last_result) for c in ledger.inbox.polls()]


def _recorded(state: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The replies (campaign, credential, address, kind) and the bounces, as recorded."""
    with read_ledger(state) as ledger:
        replies = [
            (r.campaign_id, r.credential_id or "", r.email, r.kind) for r in ledger.inbox.replies()
        ]
        bounces = [
            (b.campaign_id, b.credential_id, b.email, b.kind) for b in ledger.sends.bounces()
        ]
    return replies, bounces


def test_one_poll_answers_each_campaign_for_its_own_messages(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two campaigns name one mailbox: it is polled once; a reply stops the lead in the
    campaign whose message it answers (an unthreaded one: the campaign that wrote to it),
    a bounce counts for that campaign's credential, the report is forwarded once, and the
    next poll records nothing new."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user, bounce_notifications=FORWARD_TO)
    path = _shared(tmp_path, smtp_server, imap)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    ids = _sent(smtp_server)
    assert len(ids) == 5
    shared, only2, gone2 = "shared@example.net", "only2@example.net", "gone2@example.net"
    dovecot.append(user, inbox_mail.reply(shared, ADA, ids["Hello One", shared]))
    dovecot.append(user, inbox_mail.reply(only2, ADA, None, subject="your note"))
    dovecot.append(user, inbox_mail.postfix_dsn(gone2, ADA, ids["Hello Two", gone2]))

    assert run_once(path, state, DAY1_LATER) == 0
    assert _cursors(state) == [("", "ada", "ok: 3 new")]
    replies, bounces = _recorded(state)
    assert replies == [("c1", "main", shared, "reply"), ("c2", "main", only2, "reply")]
    assert bounces == [("c2", "main", gone2, "hard")]
    assert len(smtp_server.handler.received_by(FORWARD_TO)) == 1

    assert run_once(path, state, DAY1_LATER) == 0
    assert _cursors(state) == [("", "ada", "ok: 0 new")]
    assert _recorded(state) == (replies, bounces)
    rows = [
        (campaign["id"], row["last_poll_at"], row["last_poll_result"])
        for campaign in status_json(capsys, state, DAY1_LATER)["campaigns"]
        for row in campaign["smtp_credentials"]
    ]
    assert rows == [("c1", DAY1_LATER, "ok: 0 new"), ("c2", DAY1_LATER, "ok: 0 new")]
    smtp_server.handler.messages.clear()
    assert run_once(path, state, DAY2) == 0
    followed = sorted(
        (m.rcpt_tos[0], str(parsed(m)["Subject"])) for m in smtp_server.handler.messages
    )
    assert followed == [("only1@example.net", "Re: Hello One"), (shared, "Re: Hello Two")]


def test_an_unreadable_shared_mailbox_is_reported_on_every_campaign(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused login: one log line naming the mailbox, and the error in the state entry
    of each campaign's credential that names it."""
    user, _ = dovecot.add_user()
    imap = imap_fields(dovecot, user, imap_password="wrong-password")  # noqa: S106
    path = _shared(tmp_path, smtp_server, imap)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    capsys.readouterr()
    assert run_once(path, state, DAY1_LATER) == 0
    logged = [line for line in capsys.readouterr().err.splitlines() if "imap unavailable" in line]
    assert len(logged) == 1
    assert " imap unavailable mailbox=ada error=login: " in logged[0]
    errors = {key: entry.inbox_error for key, entry in load_state(state).credentials.items()}
    assert sorted(errors) == ["c1/main", "c2/main"]
    assert all(error is not None and error.startswith("login: ") for error in errors.values())


def test_a_campaign_that_stops_naming_the_mailbox_leaves_its_reading_where_it_was(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """c1 stops naming the shared mailbox (a reload): the daemon reads on from where the
    poll was, nothing is read again, and c2's replies still count."""
    user, _ = dovecot.add_user()
    path = _shared(tmp_path, smtp_server, imap_fields(dovecot, user))
    state = tmp_path / "state"
    clock = [datetime(2026, 11, 23, 10, 0, tzinfo=UTC)]
    with in_process(path, state, clock, imap_timeout_s=5.0) as running:
        running.dispatch()
        ids = _sent(smtp_server)
        dovecot.append(
            user, inbox_mail.reply("only2@example.net", ADA, ids["Hello Two", "only2@example.net"])
        )
        running.poll_inbox()
        assert _cursors(state) == [("", "ada", "ok: 1 new")]

        config = yaml.safe_load(path.read_text())
        config["campaigns"]["c1"]["smtp_credentials"] = {"own": credential(smtp_server, "box2")}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        running._reload_now(notify=False)  # what the main loop does on a config change
        dovecot.append(
            user, inbox_mail.reply("gone2@example.net", ADA, ids["Hello Two", "gone2@example.net"])
        )
        running.poll_inbox()
    assert _cursors(state) == [("", "ada", "ok: 1 new")]
    replies, _ = _recorded(state)
    assert [(campaign, email) for campaign, _, email, _ in replies] == [
        ("c2", "only2@example.net"),
        ("c2", "gone2@example.net"),
    ]


def test_moving_a_campaigns_mailbox_under_mailboxes_counts_nothing_twice(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """A campaign's own mailbox declared instead under mailboxes: and named from it: the
    shared poll reads the mailbox from the start, and what was recorded counts once."""
    user, _ = dovecot.add_user()
    ada = credential(smtp_server, "ada", **imap_fields(dovecot, user))
    path = write_campaign(tmp_path, {"a": ada}, leads=2)
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    lead = "lead0000@example.net"
    dovecot.append(user, inbox_mail.postfix_dsn(lead, ADA, sent_ids(smtp_server)[lead]))
    run_once(path, state, DAY1_LATER)
    assert _recorded(state)[1] == [("camp", "a", lead, "hard")]

    config = yaml.safe_load(path.read_text())
    config["mailboxes"] = {"ada": ada}
    config["campaigns"]["camp"]["smtp_credentials"]["a"] = {"mailbox": "ada"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_once(path, state, DAY1_LATER)
    assert _recorded(state)[1] == [("camp", "a", lead, "hard")]
    assert ("", "ada", "ok: 0 new, 1 seen before") in _cursors(state)

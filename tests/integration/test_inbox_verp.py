"""VERP: reports matched to the exact send by its token, against real SMTP and dovecot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailopsd import sendtokens
from mailopsd.state.sendkey import SEND_KEY_FILE
from tests import inbox_mail
from tests.commands import status_json
from tests.dispatch_setup import (
    ADA,
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    run_once,
    write_campaign,
    write_config,
    write_leads,
)
from tests.ledger_setup import read_ledger
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = "2026-11-23T10:00:00Z"
DAY2 = "2026-11-24T10:00:01Z"
DAY2_LATER = "2026-11-24T12:00:00Z"
DAY3 = "2026-11-25T10:00:02Z"
VERP = "bounces.sender.example.com"
SHARED, ONLY1, ONLY2 = "shared@example.net", "only1@example.net", "only2@example.net"


def _config(tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, user: str) -> Path:
    """Campaigns c1 (shared, only1) and c2 (shared, only2), three steps each, both sending
    from the one mailbox ``ada`` (as ``main``), which has ``verp_domain``."""
    leads = {"c1": ("One", [SHARED, ONLY1]), "c2": ("Two", [SHARED, ONLY2])}
    trees = {}
    for campaign_id, (name, addresses) in leads.items():
        write_leads(tmp_path / f"{campaign_id}.csv", [f"{a},{name}" for a in addresses])
        trees[campaign_id] = campaign_tree(
            {"main": {"mailbox": "ada"}}, leads=f"{campaign_id}.csv", steps=3
        )
    ada = credential(smtp_server, "ada", verp_domain=VERP, **imap_fields(dovecot, user))
    return write_config(tmp_path, trees, mailboxes={"ada": ada})


def _sends(state: Path) -> dict[tuple[str, str, int], tuple[int, str]]:
    """Each send's (id, Message-ID), by (campaign, lead, step), as the ledger has it."""
    with read_ledger(state) as ledger:
        rows = ledger._database.connection.execute(
            "SELECT id, campaign_id, email, step, message_id FROM sends"
        ).fetchall()
    return {(c, e, s): (i, m) for i, c, e, s, m in rows}


def _bounces(state: Path) -> list[tuple[str, str, str, int, str]]:
    """Each bounce recorded: (campaign, credential, lead, step, kind), in order."""
    with read_ledger(state) as ledger:
        rows = ledger._database.connection.execute(
            "SELECT campaign_id, credential_id, email, step, kind FROM bounces ORDER BY id"
        ).fetchall()
    return [tuple(row) for row in rows]


def _polls(state: Path) -> list[str | None]:
    """The last result of each folder's poll."""
    with read_ledger(state) as ledger:
        return [cursor.last_result for cursor in ledger.inbox.polls()]


def _credential(report: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    campaign = next(c for c in report["campaigns"] if c["id"] == campaign_id)
    return campaign["smtp_credentials"][0]  # type: ignore[no-any-return]


def _check_envelopes(smtp_server: SmtpServer, state: Path) -> dict[str, str]:
    """Every message went out with MAIL FROM bounces+<token>@VERP and the token in its
    X-Mailopsd-Send header, the token naming its own send; returns tokens by Message-ID."""
    key = bytes.fromhex((state / SEND_KEY_FILE).read_text())
    ids = {message_id: send_id for send_id, message_id in _sends(state).values()}
    tokens: dict[str, str] = {}
    for message in smtp_server.handler.messages:
        headers = parsed(message)
        token = str(headers[sendtokens.HEADER])
        message_id = str(headers["Message-ID"])
        assert message.mail_from == f"bounces+{token}@{VERP}"
        assert str(headers["From"]) == f"Ada <{ADA}>"  # the From: header is unchanged
        assert sendtokens.verify(key, token, message_id) == ids[message_id]
        tokens[message_id] = token
    assert len(set(tokens.values())) == len(tokens)
    return tokens


def test_reports_name_the_exact_send(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same address gets two campaigns' two steps; reports to the VERP address, even
    ones quoting nothing of the message, count for the very send they name, in whatever
    case they name the lead; a report with a forged token counts for nothing."""
    user, _ = dovecot.add_user()
    path = _config(tmp_path, smtp_server, dovecot, user)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    assert run_once(path, state, DAY2) == 0
    assert len(smtp_server.handler.messages) == 8  # 4 leads x 2 steps
    tokens = _check_envelopes(smtp_server, state)
    sends = _sends(state)

    def sender(campaign_id: str, lead: str, step: int) -> str:
        return sendtokens.envelope_sender(tokens[sends[campaign_id, lead, step][1]], VERP)

    # c1's step 1 to shared: the report quotes nothing and names the lead in capitals.
    dovecot.append(user, inbox_mail.token_only_dsn(SHARED.upper(), sender("c1", SHARED, 1)))
    # c2's step 1 to only2: a block, its token only in Delivered-To.
    only2 = sender("c2", ONLY2, 1)
    dovecot.append(user, inbox_mail.token_only_dsn(ONLY2, only2, status="5.7.1", to=ADA))
    # c2's step 2 to shared: a standard report, the returned headers quoted.
    mid = sends["c2", SHARED, 2][1]
    dovecot.append(
        user, inbox_mail.postfix_dsn(SHARED, sender("c2", SHARED, 2), mid, status="4.2.2")
    )
    # c1's step 2 to only1: its token with the MAC changed; the report even quotes the
    # message's real Message-ID, which alone would confirm it.
    local, _, domain = sender("c1", ONLY1, 2).partition("@")
    forged = f"{local[:-1]}{'b' if local[-1] != 'b' else 'c'}@{domain}"
    dovecot.append(user, inbox_mail.postfix_dsn(ONLY1, forged, sends["c1", ONLY1, 2][1]))
    assert sendtokens.candidates(inbox_mail.postfix_dsn(ONLY1, forged, "<x@y>")) != ()

    assert run_once(path, state, DAY2_LATER) == 0
    assert _polls(state) == ["ok: 4 new"]
    assert _bounces(state) == [
        ("c1", "main", SHARED, 1, "hard"),
        ("c2", "main", ONLY2, 1, "block"),
        ("c2", "main", SHARED, 2, "soft"),
    ]
    with read_ledger(state) as ledger:
        c1_shared = ledger.leads.get("c1", SHARED)
        c1_only1 = ledger.leads.get("c1", ONLY1)
        suppressed = ledger.suppressions.entries()
    assert c1_shared is not None
    assert (c1_shared.state, c1_shared.stop_reason) == (
        "stopped",
        "bounced",
    )
    assert c1_only1 is not None
    assert c1_only1.state != "stopped"
    assert suppressed == {SHARED: "hard bounce"}  # never only1
    report = status_json(capsys, state, DAY2_LATER)
    c1, c2 = _credential(report, "c1"), _credential(report, "c2")
    assert (c1["bounces_in_window"], c1["blocks_in_window"]) == (1, 0)
    assert (c2["bounces_in_window"], c2["blocks_in_window"]) == (0, 1)
    assert c1["unconfirmed_bounces_in_window"] == c2["unconfirmed_bounces_in_window"] == 0

    smtp_server.handler.messages.clear()
    assert run_once(path, state, DAY3) == 0  # every report was recorded as read
    assert _polls(state) == ["ok: 0 new"]
    assert len(_bounces(state)) == 3
    # Step 3: only1 (the forged report did nothing) and only2 (a block stops no lead);
    # shared neither in c1 (it bounced) nor in c2 (its address is suppressed).
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages) == [ONLY1, ONLY2]


def test_bcc_copy_report_is_not_the_leads(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """A report of the BCC copy, with the send's token, bounces nothing of the lead; one
    for the lead in another spelling does."""
    user, _ = dovecot.add_user()
    archive = "archive@sender.example.com"
    fields = {"verp_domain": VERP, "bcc": archive, **imap_fields(dovecot, user)}
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **fields)}, leads=2)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    tokens = _check_envelopes(smtp_server, state)
    sends = _sends(state)
    lead0, lead1 = "lead0000@example.net", "lead0001@example.net"
    for lead in (lead0, lead1):
        envelope = sendtokens.envelope_sender(tokens[sends["camp", lead, 1][1]], VERP)
        dovecot.append(user, inbox_mail.token_only_dsn(archive, envelope, to=ADA))
    envelope = sendtokens.envelope_sender(tokens[sends["camp", lead1, 1][1]], VERP)
    dovecot.append(user, inbox_mail.token_only_dsn("Lead0001@Example.NET", envelope))

    assert run_once(path, state, DAY2) == 0
    assert _bounces(state) == [("camp", "a", lead1, 1, "hard")]
    with read_ledger(state) as ledger:
        assert ledger.suppressions.entries() == {lead1: "hard bounce"}

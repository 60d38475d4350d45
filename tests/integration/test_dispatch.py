"""Sending against a real SMTP server on loopback (aiosmtpd with STARTTLS and AUTH)."""

from __future__ import annotations

import mailbox
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd import cli, tokens
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.dispatch.dispatcher import HEARTBEAT_S
from mailopsd.notify import Notifier
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import CredentialState, load_state, save_state
from tests.commands import status_json
from tests.dispatch_setup import bouncing_mailbox, credential, parsed, run_once, write_campaign
from tests.e2e.test_daemon import NotifySocket
from tests.servers.imap import HungServer
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")


def _logins(server: SmtpServer) -> Counter[str | None]:
    return Counter(m.login for m in server.handler.messages)


def _status(state: Path, capsys: pytest.CaptureFixture[str], now: str) -> dict[str, object]:
    return status_json(capsys, state, now)


def test_rotation_caps_and_followups_over_days(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Three mailboxes with caps 2/3/5 share new leads by least use; follow-ups go from the
    step-1 mailbox, threaded, and do not count against the cap; caps reset at 00:00 UTC."""
    path = write_campaign(
        tmp_path,
        {
            "a": credential(smtp_server, "ada", daily_limit=2),
            "b": credential(smtp_server, "box2", daily_limit=3),
            "c": credential(smtp_server, "box3", daily_limit=5),
        },
        leads=25,
    )
    state = tmp_path / "state"
    assert run_once(path, state, "2026-11-23T10:00:00Z") == 0
    assert _logins(smtp_server) == {"ada": 2, "box2": 3, "box3": 5}
    assert run_once(path, state, "2026-11-23T23:59:59Z") == 0
    assert len(smtp_server.handler.messages) == 10  # the cap holds until the UTC day ends
    first = {m.rcpt_tos[0]: m for m in smtp_server.handler.messages}
    smtp_server.handler.messages.clear()
    assert run_once(path, state, "2026-11-24T10:00:01Z") == 0
    day2 = smtp_server.handler.messages
    followups = [m for m in day2 if m.rcpt_tos[0] in first]
    assert len(followups) == 10
    for message in followups:
        step1 = first[message.rcpt_tos[0]]
        assert message.login == step1.login
        mail, original = parsed(message), parsed(step1)
        assert mail["Subject"] == f"Re: {original['Subject']}"
        assert mail["In-Reply-To"] == original["Message-ID"]
        assert mail["References"] == original["Message-ID"]
    new = Counter(m.login for m in day2 if m.rcpt_tos[0] not in first)
    assert new == {"ada": 2, "box2": 3, "box3": 5}
    assert len({m.rcpt_tos[0] for m in day2}) == 20


def test_rate_limit_and_min_interval(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """rate_limit counts every send in its period; min_interval paces one mailbox."""
    path = write_campaign(
        tmp_path,
        {
            "a": credential(smtp_server, "ada", rate_limit={"value": 2, "period": "1 hour"}),
            "b": credential(smtp_server, "box2", min_interval="10 minutes"),
        },
        leads=20,
        steps=1,
    )
    state = tmp_path / "state"
    run_once(path, state, "2026-11-23T10:00:00Z")
    assert _logins(smtp_server) == {"ada": 2, "box2": 1}
    run_once(path, state, "2026-11-23T10:05:00Z")
    assert _logins(smtp_server) == {"ada": 2, "box2": 1}
    run_once(path, state, "2026-11-23T10:10:00Z")
    assert _logins(smtp_server) == {"ada": 2, "box2": 2}
    run_once(path, state, "2026-11-23T11:00:01Z")
    assert _logins(smtp_server) == {"ada": 4, "box2": 3}


def test_window_across_dst(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """09:00-17:00 New York time holds across the March DST change."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=3,
        steps=1,
        timezone="America/New_York",
        send_window={"start": "09:00", "end": "17:00"},
    )
    state = tmp_path / "state"
    run_once(path, state, "2026-03-07T13:30:00Z")  # 08:30 EST: closed
    assert smtp_server.handler.messages == []
    run_once(path, state, "2026-03-09T12:30:00Z")  # 08:30 EDT: closed
    assert smtp_server.handler.messages == []
    run_once(path, state, "2026-03-09T13:30:00Z")  # 09:30 EDT: open
    assert len(smtp_server.handler.messages) == 3


def test_deferred_then_accepted(tmp_path: Path, test_ca: TestCA) -> None:
    """A 4xx is retried later and then accepted: the lead gets the message once."""
    server = start_smtp(
        test_ca,
        {"ada": "pw-ada"},
        rules={"lead0000@example.net": ("DATA_ONCE", "451 4.3.0 Try later")},
    )
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=1, steps=1)
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        assert server.handler.messages == []
        run_once(path, state, "2026-11-23T10:00:30Z")  # backoff not over
        assert server.handler.messages == []
        run_once(path, state, "2026-11-23T10:05:00Z")
        assert [m.rcpt_tos for m in server.handler.messages] == [["lead0000@example.net"]]
    finally:
        server.controller.stop()


def test_rejected_at_rcpt_is_a_bounce(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 5xx at RCPT stops and suppresses the lead and counts as a bounce for the mailbox."""
    server = start_smtp(
        test_ca,
        {"ada": "pw-ada"},
        rules={"lead0001@example.net": ("RCPT", "550 5.1.1 No such user")},
    )
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=3, steps=2)
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == [
            "lead0000@example.net",
            "lead0002@example.net",
        ]
        report = _status(state, capsys, "2026-11-23T10:00:00Z")
        box = report["campaigns"][0]["smtp_credentials"][0]  # type: ignore[index]
        assert (box["bounces_in_window"], box["sends_in_window"]) == (1, 3)
        ledger = Ledger.open(state)
        lead = ledger.leads.get("camp", "lead0001@example.net")
        ledger.close()
        assert lead is not None
        assert (lead.state, lead.stop_reason) == ("stopped", "bounced")
        run_once(path, state, "2026-11-24T10:00:00Z")  # follow-ups: not to the bounced lead
        assert sum(m.rcpt_tos[0] == "lead0001@example.net" for m in server.handler.messages) == 0
    finally:
        server.controller.stop()


def test_auth_failure_is_not_a_bounce(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong passwords never count as bounces; after repeated failures the mailbox is
    marked auth_failed in status until its config changes."""
    wrong = credential(smtp_server, "ada", smtp_password="not-" + "the-password")
    path = write_campaign(tmp_path, {"a": wrong}, leads=2, steps=1)
    state = tmp_path / "state"
    for minute in range(3):
        run_once(path, state, f"2026-11-23T10:{minute * 10:02d}:00Z")
    assert smtp_server.handler.messages == []
    box = _status(state, capsys, "2026-11-23T10:30:00Z")["campaigns"][0]["smtp_credentials"][0]  # type: ignore[index]
    assert box["state"] == "auth_failed"
    assert box["auth_failed_reason"].startswith("535")
    assert (box["bounces_in_window"], box["sends_in_window"]) == (0, 0)
    write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2, steps=1)
    run_once(path, state, "2026-11-23T10:40:00Z")
    assert len(smtp_server.handler.messages) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_missing_starttls_refused(tmp_path: Path, test_ca: TestCA) -> None:
    """A server that offers no STARTTLS gets neither the password nor any message."""
    server = start_smtp(test_ca, {"ada": "pw-ada"}, starttls=False)
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=2, steps=1)
        state = tmp_path / "state"
        assert run_once(path, state, "2026-11-23T10:00:00Z") == 0
        assert server.handler.messages == []
        ledger = Ledger.open(state)
        lead = ledger.leads.get("camp", "lead0000@example.net")
        ledger.close()
        assert lead is not None
        assert lead.state == "new"
    finally:
        server.controller.stop()


def test_sandbox_writes_maildir(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """A sandbox mailbox does everything but the network: Maildir files in the state dir."""
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", status="sandbox")}, leads=3, steps=1
    )
    state = tmp_path / "state"
    run_once(path, state, "2026-11-23T10:00:00Z")
    assert smtp_server.handler.messages == []
    box = mailbox.Maildir(state / "sandbox" / "camp" / "a", create=False)
    assert sorted(message["To"] for message in box) == [f"lead000{i}@example.net" for i in range(3)]


def test_blocked_and_disabled_never_used(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Blocked or disabled mailboxes send nothing; their follow-ups wait, never moved."""
    creds = {
        "a": credential(smtp_server, "ada", daily_limit=1),
        "b": credential(smtp_server, "box2", daily_limit=1),
    }
    path = write_campaign(tmp_path, creds, leads=4, steps=2)
    state = tmp_path / "state"
    run_once(path, state, "2026-11-23T10:00:00Z")
    assert _logins(smtp_server) == {"ada": 1, "box2": 1}
    step1_of = {m.rcpt_tos[0]: m.login for m in smtp_server.handler.messages}
    saved = load_state(state)
    disabled = CredentialState(disabled_at="2026-11-23T11:00:00Z", disabled_reason="test")  # type: ignore[arg-type]
    save_state(state, saved.model_copy(update={"credentials": {"camp/a": disabled}}))
    write_campaign(
        tmp_path,
        {**creds, "b": credential(smtp_server, "box2", daily_limit=1, status="blocked")},
        leads=4,
        steps=2,
    )
    smtp_server.handler.messages.clear()
    run_once(path, state, "2026-11-24T10:00:01Z")
    assert smtp_server.handler.messages == []
    write_campaign(tmp_path, creds, leads=4, steps=2)
    run_once(path, state, "2026-11-24T10:00:02Z")
    assert {m.rcpt_tos[0]: m.login for m in smtp_server.handler.messages if m.login == "box2"}
    for message in smtp_server.handler.messages:
        assert message.login != "ada"
        if message.rcpt_tos[0] in step1_of:
            assert step1_of[message.rcpt_tos[0]] == message.login


def test_message_headers_bcc_and_footers(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """BCC is an envelope recipient only; List-Unsubscribe and footers are set."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada", bcc="archive@sender.example.com")},
        leads=["jo@example.net,Jo"],
        steps=1,
        unsubscribe={
            "url": "https://unsub.example/u/%%EMAIL%%",
            "footer_text": "Stop: %%UNSUBSCRIBE%% (%%EMAIL%%)",
            "footer_html": '<p><a href="%%UNSUBSCRIBE%%">Unsubscribe</a></p>',
        },
    )
    run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    (received,) = smtp_server.handler.messages
    assert received.rcpt_tos == ["jo@example.net", "archive@sender.example.com"]
    mail = parsed(received)
    assert "Bcc" not in mail
    assert mail["From"] == "Ada <ada@sender.example.com>"
    assert mail["Message-ID"].endswith("@sender.example.com>")
    assert mail["List-Unsubscribe"] == (
        "<mailto:ada@sender.example.com?subject=unsubscribe>, <https://unsub.example/u/jo@example.net>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert (
        text == "Hi Jo, step 1.\n\nStop: https://unsub.example/u/jo@example.net (jo@example.net)\n"
    )
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert '<a href="https://unsub.example/u/jo@example.net">Unsubscribe</a>' in html


def test_http_links_and_tracking(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """With http, List-Unsubscribe and the footers carry the signed one-click link, the
    HTML part gets the open image and its web links go through the click redirect."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=["Jo@Example.net,Jo"],
        steps=1,
        tracking={"open": True, "click": True},
        unsubscribe={
            "url": "https://unsub.example/u/%%EMAIL%%",
            "footer_text": "Stop: %%UNSUBSCRIBE%%",
            "footer_html": '<a href="https://example.com/?a=1&amp;b=2">Us</a> '
            '<a href="%%UNSUBSCRIBE%%">Unsubscribe</a>',
        },
    )
    key = "demo-signing-key-0123456789abcdef"
    with path.open("a") as stream:
        stream.write(
            "http:\n  listen: 127.0.0.1:8025\n  public_base_url: https://mail.example.com/\n"
            f"  signing_key: {key}\n"
        )
    run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    (received,) = smtp_server.handler.messages
    mail = parsed(received)
    mailto, link = mail["List-Unsubscribe"].split(", ")
    assert mailto == "<mailto:ada@sender.example.com?subject=unsubscribe>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = link.strip("<>")
    token = unsubscribe.removeprefix("https://mail.example.com/u/")
    assert tokens.verify(key.encode(), "u", token) == tokens.Claims("camp", "jo@example.net")
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n").endswith(f"Stop: {unsubscribe}\n")
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'<a href="{unsubscribe}">Unsubscribe</a>' in html
    click = re.search(r'<a href="https://mail\.example\.com/c/([\w-]+)">Us</a>', html)
    assert click is not None
    claims = tokens.verify(key.encode(), "c", click.group(1))
    assert claims is not None
    assert claims.url == "https://example.com/?a=1&b=2"
    image = re.search(r'<img src="https://mail\.example\.com/o/([\w-]+)\.gif"', html)
    assert image is not None
    assert tokens.verify(key.encode(), "o", image.group(1)) == tokens.Claims(
        "camp", "jo@example.net"
    )


def test_header_injection_rows_skipped(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows with a line break or a bad address are skipped and reported; the rest run."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=[
            "ok@example.net,Ok",
            '"evil@example.net","X\r\nBcc: victim@example.org"',
            "not-an-address,Bad",
        ],
        steps=1,
    )
    capsys.readouterr()
    assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 0
    leads = tmp_path / "leads.csv"
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {leads}:3: has a line break in a value (header injection); skipped",
        f"warning: {leads}:5: has no valid email ('not-an-address': "
        "an email address must have an @-sign); skipped",
    ]
    run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["ok@example.net"]]
    report = _status(tmp_path / "state", capsys, "2026-11-23T10:00:00Z")
    assert report["campaigns"][0]["lead_problems"] == [  # type: ignore[index]
        "leads.csv:3: has a line break in a value (header injection); skipped",
        "leads.csv:5: has no valid email ('not-an-address': "
        "an email address must have an @-sign); skipped",
    ]


def test_archive_keeps_a_copy(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """archive: true keeps a copy of each sent message in a Maildir in the state dir."""
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", archive=True)}, leads=2, steps=1
    )
    run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    assert len(smtp_server.handler.messages) == 2
    box = mailbox.Maildir(tmp_path / "state" / "archive" / "camp" / "a", create=False)
    assert sorted(message["Message-ID"] for message in box) == sorted(
        parsed(m)["Message-ID"] for m in smtp_server.handler.messages
    )


def test_waiting_followups_do_not_crowd_out(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Many follow-ups waiting on a disabled mailbox do not hold back another's."""
    creds = {
        "a": credential(smtp_server, "ada", daily_limit=60),
        "b": credential(smtp_server, "box2", daily_limit=1),
    }
    path = write_campaign(tmp_path, creds, leads=61, steps=2)
    state = tmp_path / "state"
    run_once(path, state, "2026-11-23T10:00:00Z")
    assert _logins(smtp_server) == {"ada": 60, "box2": 1}
    saved = load_state(state)
    disabled = CredentialState(disabled_at="2026-11-23T11:00:00Z", disabled_reason="test")  # type: ignore[arg-type]
    save_state(state, saved.model_copy(update={"credentials": {"camp/a": disabled}}))
    smtp_server.handler.messages.clear()
    run_once(path, state, "2026-11-24T10:00:01Z")
    assert [m.login for m in smtp_server.handler.messages] == ["box2"]


def test_bounce_rate_disables_then_reenable_restarts_window(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hard bounces over the threshold write disabled_at; the mailbox stops at once; a
    reenabled_at edit brings it back with a fresh window."""
    rules = {f"lead000{i}@example.net": ("RCPT", "550 5.1.1 No such user") for i in (1, 2, 3)}
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules=rules)
    try:
        settings = {"bounce_threshold": "50%", "bounce_min_sends": 4}
        path = write_campaign(
            tmp_path, {"a": credential(server, "ada")}, leads=4, steps=1, **settings
        )
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        entry = load_state(state).credential("camp/a")
        assert entry.disabled_reason == "bounce rate 75.0% (3/4) > 50% since 2026-11-16T10:00:00Z"
        assert "disabled_at: '2026-11-23T10:00:00Z'" in (state / "state.yaml").read_text()
        box = _status(state, capsys, "2026-11-23T10:00:00Z")["campaigns"][0]["smtp_credentials"][0]  # type: ignore[index]
        assert (box["state"], box["disabled_at"]) == ("disabled", "2026-11-23T10:00:00Z")
        write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=12, steps=1, **settings)
        run_once(path, state, "2026-11-23T11:00:00Z")
        assert len(server.handler.messages) == 1  # disabled: the new leads wait
        write_campaign(
            tmp_path,
            {"a": credential(server, "ada", reenabled_at="2026-11-23T12:00:00Z")},
            leads=12,
            steps=1,
            **settings,
        )
        run_once(path, state, "2026-11-23T12:30:00Z")
        entry = load_state(state).credential("camp/a")
        assert entry.disabled_at is None
        assert entry.bounce_window_start is not None
        assert entry.bounce_window_start.isoformat() == "2026-11-23T12:00:00+00:00"
        assert len(server.handler.messages) == 9  # old bounces no longer count: 8 new leads went
    finally:
        server.controller.stop()


def test_bounce_threshold_stops_the_batch_at_once(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once 5xx replies push the rate over the threshold, the rest of the batch is not
    attempted: the mailbox is disabled mid-batch and its untried leads stay new."""
    leads = [f"lead{i:04d}@example.net" for i in range(20)]
    with bouncing_mailbox(tmp_path, test_ca) as (path, server):
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        # lead 5 is the third 5xx in six sends (50% > 20%): nothing after it is tried
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == leads[0:6:2]
        entry = load_state(state).credentials["camp/a"]
        assert entry.disabled_reason is not None
        assert entry.disabled_reason.startswith("bounce rate 50.0% (3/6) > 20%")
        states, _ = _leads_and_outcomes(state)
        assert states == {"done": 3, "bounced": 3, "new": 14}


def _leads_and_outcomes(state: Path) -> tuple[dict[str, int], Counter[str]]:
    """The campaign's leads by state (stopped ones by reason), and its sends by outcome."""
    ledger = Ledger.open_readonly(state)
    assert ledger is not None
    try:
        tally = ledger.leads.tally("camp", "default", steps=1)
        outcomes: Counter[str] = Counter()
        for (_, _, outcome), count in ledger.totals.read().sends.items():
            outcomes[outcome] += count
    finally:
        ledger.close()
    return {name: count for name, count in tally.by_state.items() if count}, outcomes


def _offer_pipelining(server: SmtpServer) -> None:
    """Make the aiosmtpd server announce PIPELINING (it reads pipelined commands in order)."""

    async def ehlo(
        smtp: object, session: Any, envelope: object, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    server.handler.handle_EHLO = ehlo  # type: ignore[attr-defined]


def test_pipelining_sends_each_message_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """With PIPELINING (envelopes sent ahead with the previous body), two mailboxes send
    every lead's message once, from the mailbox rotation gave it."""
    _offer_pipelining(smtp_server)
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada"), "b": credential(smtp_server, "box2")},
        leads=30,
        steps=1,
    )
    run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    received = sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages)
    assert received == [f"lead{i:04d}@example.net" for i in range(30)]
    assert _logins(smtp_server) == {"ada": 15, "box2": 15}


@pytest.mark.parametrize("pipelining", [False, True])
def test_bounce_threshold_stops_the_batch_with_envelopes_ahead(
    tmp_path: Path, test_ca: TestCA, pipelining: bool
) -> None:
    """The bounce threshold stops the batch at once, also when the next envelope already
    went ahead: that message is never delivered, its lead stays new."""
    leads = [f"lead{i:04d}@example.net" for i in range(12)]
    rules: dict[str, tuple[str, str | None]] = {
        address: ("DATA", "554 5.1.1 Recipient address rejected: user unknown")
        for address in leads[1:6:2]
    }
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules=rules)
    if pipelining:
        _offer_pipelining(server)
    try:
        path = write_campaign(
            tmp_path,
            {"a": credential(server, "ada")},
            leads=12,
            steps=1,
            bounce_threshold="20%",
            bounce_min_sends=5,
        )
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        # lead 5 is the third 5xx in six sends: nothing after it is delivered
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == leads[0:6:2]
        states, outcomes = _leads_and_outcomes(state)
        assert states == {"done": 3, "bounced": 3, "new": 6}
        assert outcomes == {"sent": 3, "bounced": 3, "not_sent": 6}
    finally:
        server.controller.stop()


def test_server_trouble_shows_in_status_until_mail_goes_again(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 421 is the server's trouble: status names it on the credential until a send
    succeeds, and the lead gets its message once."""
    server = start_smtp(
        test_ca,
        {"ada": "pw-ada"},
        rules={"lead0000@example.net": ("DATA_ONCE", "421 4.7.0 Too busy, try later")},
    )
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=1, steps=1)
        state = tmp_path / "state"
        run_once(path, state, "2026-11-23T10:00:00Z")
        capsys.readouterr()
        assert cli.main(["status", "--state-dir", str(state)]) == 0
        shown = capsys.readouterr().out
        assert (
            "    smtp: smtp unavailable: 421 4.7.0 Too busy, try later "
            "(since 2026-11-23T10:00:00Z)" in shown
        )
        run_once(path, state, "2026-11-23T10:05:00Z")
        assert [m.rcpt_tos for m in server.handler.messages] == [["lead0000@example.net"]]
        assert load_state(state).credential("camp/a").smtp_error is None
    finally:
        server.controller.stop()


@pytest.mark.parametrize("state_ledger", ["sqlite"], indirect=True)  # the watchdog only
def test_a_silent_server_never_starves_the_watchdog(tmp_path: Path, hung_imap: HungServer) -> None:
    """While a tick waits on a server that never answers, the service manager still
    hears the daemon is alive; the wait ends at the SMTP timeout, and nothing is sent."""
    box = {
        "smtp_host": "127.0.0.1",
        "smtp_port": hung_imap.port,
        "smtp_username": "ada",
        "smtp_password": "pw-ada",
        "from_name": "Ada",
        "from_email": "ada@sender.example.com",
        "daily_limit": 10,
        "tls": "none",
    }
    path = write_campaign(tmp_path, {"a": box}, leads=3, steps=1)
    notify = NotifySocket()
    settings = DaemonSettings(
        config_path=path,
        state_dir=tmp_path / "state",
        load_options=LoadOptions(allow_plaintext_secrets=True),
        clock=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        smtp_timeout_s=HEARTBEAT_S * 1.6,
    )
    daemon = Daemon(settings, Notifier({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}))
    try:
        daemon.start()
        before = len(notify.messages)
        assert daemon.dispatch() == 3
        pings = [m for m in notify.messages[before:] if m == "WATCHDOG=1"]
        assert pings, notify.messages[before:]
        assert daemon.state.credential("camp/a").smtp_error is not None
    finally:
        daemon.close()
        notify.close()


def _edit_config(path: Path, edit: Any) -> None:
    """Load the YAML at ``path``, let ``edit`` change it, write it back."""
    data = yaml.safe_load(path.read_text())
    edit(data["campaigns"]["camp"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_body_file_out_of_the_tree_sends_nothing(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body_file leading out of the config directory (the age key) stops run with a
    located config error; nothing is sent and nothing of the file is shown."""
    config = tmp_path / "config"
    config.mkdir()
    (tmp_path / "age-key.txt").write_text("AGE-SECRET-KEY-1NEVERSHOWNNORSENT\n")
    path = write_campaign(config, {"a": credential(smtp_server, "ada")}, steps=1)
    _edit_config(
        path, lambda camp: camp.update(sequence=[{"subject": "Hi", "body_file": "../age-key.txt"}])
    )
    code = run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z")
    err = capsys.readouterr().err
    assert code == 1
    assert smtp_server.handler.messages == []
    assert (
        f"campaigns.camp.sequence.0.body_file: template file {config}/../age-key.txt is "
        f"outside the config directory {config.resolve()}"
    ) in err
    assert "AGE-SECRET-KEY" not in err


def test_template_over_the_limit_fails_only_its_lead(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A template that makes a text over the limit for one lead fails that lead alone; the
    other leads are sent in the same run."""
    leads = ["bomb@example.net,Bomb", "ok1@example.net,Ok", "ok2@example.net,Ok"]
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=leads, steps=1)
    bomb = "{{ 'x' * (10000000 if first_name == 'Bomb' else 1) }}"
    _edit_config(path, lambda camp: camp["sequence"][0].update(body=bomb))
    state = tmp_path / "state"
    assert run_once(path, state, "2026-11-23T10:00:00Z") == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages) == [
        "ok1@example.net",
        "ok2@example.net",
    ]
    ledger = Ledger.open(state)
    try:
        lead = ledger.leads.get("camp", "bomb@example.net")
    finally:
        ledger.close()
    assert lead is not None
    assert lead.state == "failed"
    assert lead.last_error == (
        "step 1 body: the template would make a text of 10,000,000 characters, over the "
        "limit of 2,097,152 characters: make the template or what it repeats shorter"
    )

"""How long the dispatcher waits after a failure, against a real SMTP server on loopback.

These pin the delays a person sees (in the ledger, the log and the server's traffic), so
that moving the formulas cannot change them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from tests.daemons import in_process
from tests.dispatch_setup import credential, run_once, write_campaign
from tests.integration.test_log_lines import _closed_port
from tests.logs import LogLines, captured
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LEAD = "lead0000@example.net"


def _lead(state: Path) -> LeadProgress:
    ledger = Ledger.open(state)
    try:
        lead = ledger.leads.get("camp", LEAD)
    finally:
        ledger.close()
    assert lead is not None
    return lead


def _retries_s(log: LogLines) -> list[int]:
    found = (re.search(r" retry_in_s=(\d+)", line) for line in log.lines)
    return [int(match.group(1)) for match in found if match]


def _auth_failures(log: LogLines) -> int:
    return sum("smtp auth failed" in line for line in log.lines)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_deferred_lead_waits_two_then_four_then_eight_minutes(
    tmp_path: Path, test_ca: TestCA
) -> None:
    """A lead whose message gets a 4xx is tried again 2, then 4, then 8 minutes later."""
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules={LEAD: ("DATA", "451 4.3.0 Try later")})
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=1, steps=1)
        state = tmp_path / "state"
        at = START
        for attempt, wait in ((1, 2), (2, 4), (3, 8)):
            run_once(path, state, _stamp(at))
            lead = _lead(state)
            assert (lead.attempts, lead.state) == (attempt, "new")
            assert lead.next_due_at is not None
            assert unstamp(lead.next_due_at) == at + timedelta(minutes=wait)
            run_once(path, state, _stamp(at + timedelta(minutes=wait, seconds=-1)))
            assert _lead(state).attempts == attempt  # not tried before its time
            at += timedelta(minutes=wait)
    finally:
        server.controller.stop()


def test_server_trouble_backs_off_30_seconds_then_doubling(tmp_path: Path, test_ca: TestCA) -> None:
    """A server answering 421 is left alone 30 s, then 60, 120, 240 s, as the log says."""
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules={LEAD: ("DATA", "421 4.7.0 Too busy")})
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=1, steps=1)
        clock = [START]
        with captured("mailopsd") as log, in_process(path, tmp_path / "state", clock) as daemon:
            # The lead itself is due again a minute after each try; the credential's
            # backoff decides from the third try on.
            for seconds, retries in (
                (0, [30]),
                (60, [30, 60]),
                (120, [30, 60, 120]),
                (239, [30, 60, 120]),
                (240, [30, 60, 120, 240]),
            ):
                clock[0] = START + timedelta(seconds=seconds)
                daemon.dispatch()
                assert _retries_s(log) == retries
        assert server.handler.messages == []
    finally:
        server.controller.stop()


def test_refused_login_backs_off_one_then_two_minutes(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A refused login is tried again after 60 s, then after 120 s (not a second before)."""
    wrong = credential(smtp_server, "ada", smtp_password="not-" + "the-password")
    path = write_campaign(tmp_path, {"a": wrong}, leads=1, steps=1)
    clock = [START]
    with captured("mailopsd") as log, in_process(path, tmp_path / "state", clock) as daemon:
        for seconds, failures in ((0, 1), (59, 1), (60, 2), (179, 2), (180, 3)):
            clock[0] = START + timedelta(seconds=seconds)
            daemon.dispatch()
            assert _auth_failures(log) == failures
    assert smtp_server.handler.messages == []


def test_a_mailbox_down_for_over_a_thousand_polls_is_still_retried(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A mailbox that cannot be read poll after poll, more than a thousand times in a
    row, keeps being tried and reported: the wait stays at its cap."""
    imap = {
        "imap_host": "127.0.0.1",
        "imap_port": _closed_port(),
        "imap_username": "ada",
        "imap_password": "pw-ada",
        "imap_tls": "starttls",
        "imap_tls_ca_file": str(smtp_server.ca.ca_file),
    }
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada", **imap)}, leads=1)
    clock = [START]
    with in_process(path, tmp_path / "state", clock, imap_retry_s=0.2) as daemon:
        daemon.dispatch()  # a mailbox is read once something was sent from it
        for _ in range(1100):
            daemon.poll_inbox()
        assert daemon.state.credential("camp/a").inbox_error == "connect: Connection refused"
    assert len(smtp_server.handler.messages) == 1

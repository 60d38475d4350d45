"""A 5xx at send time read for its reason, against a real SMTP server on loopback (aiosmtpd):
a gone address is a hard bounce and suppressed, a spam refusal is a block of the mailbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailopsd.state.statefile import load_state
from tests.commands import run_cli, status_json
from tests.dispatch_setup import credential, run_once, write_campaign
from tests.ledger_setup import read_ledger
from tests.servers.smtp import start_smtp
from tests.servers.tlsca import TestCA

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

NOW = "2026-11-23T10:00:00Z"
SPAM = "550 5.7.1 Message rejected as spam by the content filter"


def _box(state: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    box: dict[str, Any] = status_json(capsys, state, NOW)["campaigns"][0]["smtp_credentials"][0]
    return box


def test_unknown_user_at_send_time_is_a_suppressed_bounce(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 550 5.1.1 at RCPT is a hard bounce of reason userunknown: the address is
    suppressed, the bounce counts for the mailbox, and status shows it by reason."""
    server = start_smtp(
        test_ca,
        {"ada": "pw-ada"},
        rules={"lead0001@example.net": ("RCPT", "550 5.1.1 <lead0001@example.net>: no such user")},
    )
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=3, steps=2)
        state = tmp_path / "state"
        run_once(path, state, NOW)
        with read_ledger(state) as ledger:
            bounces = [(b.email, b.kind, b.reason, b.source) for b in ledger.sends.bounces()]
            suppressed = ledger.suppressions.entries()
        assert bounces == [("lead0001@example.net", "hard", "userunknown", "smtp")]
        assert suppressed == {"lead0001@example.net": "hard bounce"}
        box = _box(state, capsys)
        assert (box["bounces_in_window"], box["blocks_in_window"]) == (1, 0)
        assert box["bounces_by_reason"] == [
            {"reason": "userunknown", "kind": "hard", "addresses": 1}
        ]
        code, out, _ = run_cli(capsys, "status", "--state-dir", str(state), "--now", NOW)
        assert code == 0
        assert "    bounces by reason since 2026-11-16T10:00:00Z: userunknown 1\n" in out
    finally:
        server.controller.stop()


def test_spam_refusal_at_send_time_is_a_block(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 550 5.7.1 spam refusal is a block of reason spamdetected: the lead stops, its
    address is not suppressed, the refusal counts toward the block rate, and over
    block_threshold the mailbox is disabled at once, mid-batch; not as a bounce."""
    leads = [f"lead{i:04d}@example.net" for i in range(12)]
    rules: dict[str, tuple[str, str | None]] = {address: ("DATA", SPAM) for address in leads[1:6:2]}
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules=rules)
    try:
        path = write_campaign(
            tmp_path,
            {"a": credential(server, "ada")},
            leads=12,
            steps=2,
            bounce_threshold="20%",
            block_threshold="20%",
            bounce_min_sends=5,
        )
        state = tmp_path / "state"
        run_once(path, state, NOW)
        # lead 5 is the third block in six sends (50% > 20%): nothing after it is tried
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == leads[0:6:2]
        entry = load_state(state).credential("camp/a")
        assert entry.disabled_reason is not None
        assert entry.disabled_reason.startswith("block rate 50.0% (3/6) > 20% since ")
        with read_ledger(state) as ledger:
            bounces = {(b.email, b.kind, b.reason) for b in ledger.sends.bounces()}
            suppressed = ledger.suppressions.entries()
            stopped = ledger.leads.get("camp", leads[1])
        assert bounces == {(address, "block", "spamdetected") for address in leads[1:6:2]}
        assert suppressed == {}
        assert stopped is not None
        assert (stopped.state, stopped.stop_reason) == ("stopped", "bounced")
        box = _box(state, capsys)
        assert (box["state"], box["bounces_in_window"], box["blocks_in_window"]) == (
            "disabled",
            0,
            3,
        )
        assert box["bounces_by_reason"] == [
            {"reason": "spamdetected", "kind": "block", "addresses": 3}
        ]
    finally:
        server.controller.stop()


def test_named_reasons_decide_what_disables(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """With bounce_reasons naming spamdetected, spam refusals count toward the bounce
    rate, the disable names what was counted, and the address is still not suppressed."""
    rules: dict[str, tuple[str, str | None]] = {
        f"lead000{i}@example.net": ("RCPT", SPAM) for i in (1, 2, 3)
    }
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules=rules)
    try:
        path = write_campaign(
            tmp_path,
            {"a": credential(server, "ada")},
            leads=4,
            steps=1,
            bounce_threshold="50%",
            bounce_min_sends=4,
            bounce_reasons=["userunknown", "spamdetected"],
        )
        state = tmp_path / "state"
        run_once(path, state, NOW)
        entry = load_state(state).credential("camp/a")
        assert entry.disabled_reason == (
            "bounce rate 75.0% (3/4) > 50% since 2026-11-16T10:00:00Z; "
            "counted: userunknown, spamdetected"
        )
        box = _box(state, capsys)
        assert (box["bounces_in_window"], box["blocks_in_window"]) == (3, 0)
        with read_ledger(state) as ledger:
            assert ledger.suppressions.entries() == {}
    finally:
        server.controller.stop()

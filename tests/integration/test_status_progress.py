"""status as an operator reads it: where it looked for the state, and each campaign's progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from tests.commands import run_cli
from tests.configs import BASE, Writer

PLAIN = "--allow-plaintext-secrets"

# Three steps, three step-1 sends a day, into the sandbox.
THREE_STEPS = BASE.replace(
    '        body: "Following up"\n',
    '        body: "Following up"\n      - delay: 4 days\n        body: "Last note"\n',
).replace("daily_limit: 100", "daily_limit: 3") + ("        status: sandbox\n")
# lead2's name puts a control character into its subject: that lead fails, the rest go.
NINE_LEADS = "email,first_name,company\n" + "".join(
    f"lead{n}@example.com,{'Bell' + chr(7) if n == 2 else f'Lead{n}'},Co\n" for n in range(1, 10)
)


class TestNoState:
    """status where there is no daemon state."""

    @pytest.mark.parametrize("json_form", [False, True])
    def test_missing_directory(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        json_form: bool,
    ) -> None:
        """A state directory that does not exist: one line naming where it looked, exit 1."""
        monkeypatch.chdir(tmp_path)
        extra = ["--json"] if json_form else []
        code, out, err = run_cli(capsys, "status", "--state-dir", "nope", *extra)
        assert (code, out) == (1, "")
        assert err == (
            f"error: no daemon state in {tmp_path / 'nope'} (that directory does not exist): "
            "give the daemon's state directory with --state-dir (the service's is "
            "/var/lib/mailopsd; the default is $MAILOPSD_STATE_DIR, then $STATE_DIRECTORY, "
            "then ./state), or run 'mailopsd run' first to create it\n"
        )

    def test_directory_without_state(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A directory that holds no state file or ledger (the default ./state, from the
        environment) is named with what it lacks."""
        monkeypatch.chdir(tmp_path)
        Path("elsewhere").mkdir()
        monkeypatch.setenv("MAILOPSD_STATE_DIR", "elsewhere")
        code, out, err = run_cli(capsys, "status")
        assert (code, out) == (1, "")
        assert err.startswith(
            f"error: no daemon state in {tmp_path / 'elsewhere'} "
            "(it has no state.yaml or ledger.sqlite3): "
        )
        assert len(err.splitlines()) == 1

    def test_file_instead_of_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file given as the state directory is refused as not a directory."""
        monkeypatch.chdir(tmp_path)
        Path("state.txt").write_text("")
        code, _, err = run_cli(capsys, "status", "--state-dir", "state.txt")
        assert code == 1
        assert f"no daemon state in {tmp_path / 'state.txt'} (that is not a directory)" in err


def _stop(state_dir: str, reasons: dict[str, str], *, suppress: str | None = None) -> None:
    """Record what the mailbox or the HTTP server would: replies, bounces, unsubscribes."""
    ledger = Ledger.open(Path(state_dir))
    try:
        with ledger.transaction():
            for email, reason in reasons.items():
                assert ledger.leads.stop("acme-q4", email, reason)
            if suppress is not None:
                at = unstamp("2026-11-26T11:00:00.000000Z")
                ledger.suppressions.add("default", suppress, "hard bounce", at)
    finally:
        ledger.close()


def test_campaign_progress(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """status counts leads by where they stand, sends today and in all, shows the next steps
    and when the campaign ends at today's pace, in text and JSON."""
    path = write_config(THREE_STEPS)
    Path("leads.csv").write_text(NINE_LEADS)
    run = ["run", "--config", str(path), "--state-dir", "st", "--once", PLAIN, "--now"]
    code, out, _ = run_cli(capsys, *run, "2026-11-23T10:00:00Z")
    assert (code, out.splitlines()[1]) == (0, "campaign acme-q4: sent 3, failed 1")
    _stop("st", {"lead1@example.com": "replied", "lead3@example.com": "unsubscribed"})
    assert run_cli(capsys, *run, "2026-11-26T10:00:00Z")[0] == 0
    _stop(
        "st",
        {"lead5@example.com": "bounced", "lead6@example.com": "complained"},
        suppress="lead9@example.com",
    )
    code, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-26T12:00:00Z")
    assert code == 0
    assert out.splitlines()[3:10] == [
        "campaign acme-q4 'ACME Q4 outreach' (account default, 9 leads)",
        "  send window: any time (UTC)",
        "  leads: 1 new, 2 in sequence (after step 1: 1, after step 2: 1), 0 finished, "
        "1 replied, 1 bounced, 1 unsubscribed, 1 stopped; 1 failed, 1 suppressed "
        "(address suppressed for the account: never sent)",
        "  sends: 4 today (UTC day), 7 in total",
        "  next: step 1 for 1 new lead from Fri 2026-11-27 00:00 UTC (2026-11-27T00:00:00Z), "
        "when the daily limits reset (00:00 UTC)",
        "  next: step 2 for 1 lead, from Sun 2026-11-29 10:00 UTC (2026-11-29T10:00:00Z)",
        "  finish: about Fri 2026-12-04 00:00 UTC (2026-12-04T00:00:00Z), at today's pace of "
        "3 new leads a day",
    ]
    _, out, _ = run_cli(
        capsys, "status", "--state-dir", "st", "--json", "--now", "2026-11-26T12:00Z"
    )
    campaign = json.loads(out)["campaigns"][0]
    assert campaign["leads"] == 9
    assert campaign["progress"] == {
        "new": 1,
        "in_sequence": 2,
        "in_sequence_by_step": {"1": 1, "2": 1},
        "sending": 0,
        "finished": 0,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 1,
        "domain_replied": 0,
        "stopped": 1,
        "failed": 1,
        "suppressed": 1,
        "held_by_lists": 0,
    }
    assert campaign["sends"] == {"today": 4, "step1_today": 3, "total": 7}
    assert campaign["next"] == {
        "followup": {
            "step": 2,
            "leads": 1,
            "due_now": False,
            "at": "2026-11-29T10:00:00Z",
            "at_local": "2026-11-29T10:00:00+00:00",
        },
        "new_leads": {
            "leads": 1,
            "held_by": "daily_limits",
            "at": "2026-11-27T00:00:00Z",
            "at_local": "2026-11-27T00:00:00+00:00",
        },
    }
    assert campaign["finish"] == {
        "finished": False,
        "step1_per_day": 3,
        "note": None,
        "at": "2026-12-04T00:00:00Z",
        "at_local": "2026-12-04T00:00:00+00:00",
    }


def test_campaign_progress_to_the_end(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leads that sent their last step count as finished; with no new lead left the finish
    is the last lead's last step, and once every lead is through, status says so."""
    path = write_config(THREE_STEPS)
    run = ["run", "--config", str(path), "--state-dir", "st", "--once", PLAIN, "--now"]
    for now in ("2026-11-23T10:00:00Z", "2026-11-26T10:00:00Z"):
        assert run_cli(capsys, *run, now)[0] == 0
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-26T12:00:00Z")
    assert out.splitlines()[5:9] == [
        "  leads: 0 new, 1 in sequence (after step 2: 1), 0 finished, 0 replied, 0 bounced, "
        "0 unsubscribed, 0 stopped",
        "  sends: 1 today (UTC day), 2 in total",
        "  next: step 3 for 1 lead, from Mon 2026-11-30 10:00 UTC (2026-11-30T10:00:00Z)",
        "  finish: about Mon 2026-11-30 10:00 UTC (2026-11-30T10:00:00Z), when the last "
        "lead's last step is due",
    ]
    code, out, _ = run_cli(capsys, *run, "2026-11-30T10:00:00Z")
    assert code == 0
    assert out.splitlines()[1:4] == [
        "campaign acme-q4: sent 1, failed 0",
        "  sandbox copies (delivered nowhere): st/sandbox/acme-q4/primary/new/ (1)",
        "  next: nothing is due; no lead has a step left to send",
    ]
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-30T12:00:00Z")
    assert out.splitlines()[5] == (
        "  leads: 0 new, 0 in sequence, 1 finished, 0 replied, 0 bounced, 0 unsubscribed, 0 stopped"
    )
    assert out.splitlines()[8] == "  finish: every lead has finished its sequence or stopped"


def test_no_mailbox_can_send(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """With every mailbox paused, status says the new leads wait for a mailbox, and gives
    no finish time without a pace."""
    path = write_config(THREE_STEPS + "        enabled: false\n")
    run = ["run", "--config", str(path), "--state-dir", "st", "--once", PLAIN]
    code, out, _ = run_cli(capsys, *run, "--now", "2026-11-23T10:00:00Z")
    assert code == 0
    assert out.splitlines()[1:3] == [
        "campaign acme-q4: sent 0, failed 0",
        "  next: step 1 for 1 new lead: no mailbox can send (each is disabled, paused, "
        "blocked or failing AUTH)",
    ]
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-23T10:00:00Z")
    assert "  finish: no estimate yet (no step-1 sends today, so no pace to go by)" in out

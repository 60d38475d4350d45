"""run --once, plan, status and reenable as an operator uses them."""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path

import pytest

from mailopsd.state.statefile import CredentialState, load_state, save_state
from tests.commands import run_cli
from tests.configs import BASE, Writer
from tests.sops_tools import make_key, run_sops

PLAIN = "--allow-plaintext-secrets"
COMMENTED = (
    BASE.replace(
        "    name: ACME Q4 outreach\n", "    name: ACME Q4 outreach  # shown in status\n"
    ).replace(
        "        daily_limit: 100\n",
        "        daily_limit: 100   # step 1 only\n        # IMAP later\n",
    )
    + "# end of file\n"
)


def _reenable(
    capsys: pytest.CaptureFixture[str], path: Path, now: str, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys, "reenable", "acme-q4", "primary", "--config", str(path), "--now", now, *extra
    )


def _changed(before: str, path: Path) -> list[str]:
    """The lines that differ between ``before`` and the file now, as ndiff shows them."""
    ndiff = difflib.ndiff(before.splitlines(), path.read_text().splitlines())
    return [line for line in ndiff if line[:1] in "+-"]


def test_once_then_status(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """run --once reconciles and exits 0; status shows the campaign and its counters."""
    path = write_config()
    code, _, err = run_cli(
        capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN
    )
    assert code == 0, err
    assert "applied + campaign acme-q4 (ACME Q4 outreach)" in err
    code, out, _ = run_cli(
        capsys, "status", "--state-dir", "st", "--json", "--now", "2026-11-23T12:00:00Z"
    )
    report = json.loads(out)
    assert set(report) == {
        "revision",
        "applied_at",
        "last_reload",
        "git",
        "state_dir",
        "ledger",
        "conditions",
        "suppression_lists",
        "campaigns",
    }
    assert report["ledger"] == {"engine": "sqlite", "address": "st/ledger.sqlite3"}
    assert report["suppression_lists"] == []
    assert report["state_dir"]["path"] == "st"
    assert report["state_dir"]["writable"] is True
    assert report["state_dir"]["problem"] is None
    (campaign,) = report["campaigns"]
    assert (campaign["id"], campaign["name"], campaign["account"], campaign["leads"]) == (
        "acme-q4",
        "ACME Q4 outreach",
        "default",
        1,
    )
    (credential,) = campaign["smtp_credentials"]
    assert credential["state"] == "active"
    assert credential["from_email"] == "ada@example.com"
    assert (credential["sent_today"], credential["daily_limit"], credential["bounce_rate"]) == (
        0,
        100,
        None,
    )
    assert "smtp_password" not in json.dumps(report)
    code, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-23T12:00:00Z")
    assert "campaign acme-q4 'ACME Q4 outreach' (account default, 1 leads)" in out
    assert "  primary: active; ada@example.com via smtp.example.com:587; sent today 0/100" in out


@pytest.mark.parametrize(
    ("edit", "state_entry", "expected"),
    [
        (
            "",
            CredentialState(
                disabled_at="2026-11-20T08:30:00Z", disabled_reason="bounce rate 7.1% (10/140) > 5%"
            ),
            "disabled",
        ),  # type: ignore[arg-type]
        ("        enabled: false\n", None, "paused"),
        ("        status: blocked\n", None, "blocked"),
        ("        status: sandbox\n", None, "sandbox"),
    ],
)
def test_status_states(
    write_config: Writer,
    capsys: pytest.CaptureFixture[str],
    edit: str,
    state_entry: CredentialState | None,
    expected: str,
) -> None:
    """Each credential state shows in status."""
    path = write_config(add=edit)
    assert (
        run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN)[0] == 0
    )
    if state_entry is not None:
        state = load_state(Path("st"))
        save_state(
            Path("st"), state.model_copy(update={"credentials": {"acme-q4/primary": state_entry}})
        )
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--json")
    credential = json.loads(out)["campaigns"][0]["smtp_credentials"][0]
    assert credential["state"] == expected
    if expected == "disabled":
        assert credential["disabled_at"] == "2026-11-20T08:30:00Z"
        assert credential["disabled_reason"] == "bounce rate 7.1% (10/140) > 5%"


def test_outside_window(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """Outside the campaign's sending window (in its time zone) status says so."""
    path = write_config(
        replace=(
            "    name: ACME Q4 outreach\n",
            "    name: x\n    timezone: America/New_York\n"
            '    send_window: {start: "09:00", end: "17:00"}\n',
        )
    )
    assert (
        run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN)[0] == 0
    )
    states = {}
    for now in ("2026-11-23T15:00:00Z", "2026-11-23T23:00:00Z", "2026-11-22T15:00:00Z"):
        _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--json", "--now", now)
        states[now] = json.loads(out)["campaigns"][0]["smtp_credentials"][0]["state"]
    assert states == {
        "2026-11-23T15:00:00Z": "active",
        "2026-11-23T23:00:00Z": "outside_window",
        "2026-11-22T15:00:00Z": "active",
    }


def test_plan_exit_codes(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """plan: 2 and one line per action when something would change, 0 when nothing, 1 on errors."""
    path = write_config()
    code, out, _ = run_cli(capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN)
    assert code == 2
    assert out.splitlines()[1:] == [
        "  + campaign acme-q4 (ACME Q4 outreach)",
        "  + credential acme-q4/primary (ada@example.com via smtp.example.com:587)",
        "  ~ leads acme-q4: +1 added, ~0 changed, -0 removed (leads.csv)",
    ]
    assert not Path("st").exists() or not (Path("st") / "state.yaml").exists()
    run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN)
    code, out, _ = run_cli(capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN)
    assert (code, out.startswith("no changes (revision ")) == (0, True)
    write_config(
        BASE.replace("canary-Pw-9f3e2d1c", "rotated-pw").replace(
            "smtp.example.com", "smtp.evil.example"
        )
    )
    code, out, _ = run_cli(capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN)
    assert code == 2
    assert out.splitlines()[1] == (
        "  ~ credential acme-q4/primary: smtp_host smtp.example.com -> smtp.evil.example, "
        "smtp_password (changed) [!] the password now goes to a different host"
    )
    assert "rotated-pw" not in out
    write_config(BASE.replace("daily_limit: 100", "daily_limit: 0"))
    assert run_cli(capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN)[0] == 1


def test_plan_json(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """plan --json gives the revision and each action as an object, secrets only named;
    exit codes as for the text form."""
    path = write_config()
    code, out, _ = run_cli(
        capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN, "--json"
    )
    plan = json.loads(out)
    assert code == 2
    assert set(plan) == {"revision", "content_hash", "changes", "actions"}
    assert plan["revision"].startswith("sha256:")
    assert plan["changes"] is True
    assert plan["actions"] == [
        {
            "action": "add",
            "kind": "campaign",
            "campaign": "acme-q4",
            "name": "ACME Q4 outreach",
            "text": "+ campaign acme-q4 (ACME Q4 outreach)",
        },
        {
            "action": "add",
            "kind": "credential",
            "campaign": "acme-q4",
            "credential": "primary",
            "from_email": "ada@example.com",
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
            "text": "+ credential acme-q4/primary (ada@example.com via smtp.example.com:587)",
        },
        {
            "action": "change",
            "kind": "leads",
            "campaign": "acme-q4",
            "file": "leads.csv",
            "added": 1,
            "changed": 0,
            "removed": 0,
            "skipped": 0,
            "problems": [],
            "text": "~ leads acme-q4: +1 added, ~0 changed, -0 removed (leads.csv)",
        },
    ]
    run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN)
    code, out, _ = run_cli(
        capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN, "--json"
    )
    assert (code, json.loads(out)["changes"], json.loads(out)["actions"]) == (0, False, [])
    state = load_state(Path("st"))
    disabled = CredentialState(disabled_at="2026-11-20T08:30:00Z", disabled_reason="bounces")  # type: ignore[arg-type]
    save_state(Path("st"), state.model_copy(update={"credentials": {"acme-q4/primary": disabled}}))
    write_config(
        BASE.replace("canary-Pw-9f3e2d1c", "rotated-pw").replace(
            "smtp.example.com", "smtp.evil.example"
        ),
        add="        reenabled_at: 2026-11-21T00:00:00Z\n",
    )
    code, out, _ = run_cli(
        capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN, "--json"
    )
    assert code == 2
    assert "rotated-pw" not in out
    changed, reenabled = json.loads(out)["actions"]
    assert changed["changes"] == [
        {"field": "smtp_host", "before": "smtp.example.com", "after": "smtp.evil.example"},
        {"field": "smtp_password", "secret": True},
    ]
    assert changed["moves_delivery"] is True
    assert {key: reenabled[key] for key in ("action", "kind", "credential")} == {
        "action": "reenable",
        "kind": "credential",
        "credential": "primary",
    }
    assert (reenabled["reenabled_at"], reenabled["disabled_at"]) == (
        "2026-11-21T00:00:00+00:00",
        "2026-11-20T08:30:00+00:00",
    )


def test_reenable_changes_one_line(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """reenable adds one line, then changes only that line; comments stay byte for byte."""
    path = write_config(COMMENTED)
    code, out, _ = _reenable(capsys, path, "2026-11-23T12:00:00Z")
    assert code == 0
    assert out == "c.yaml: set reenabled_at for acme-q4/primary; commit this change\n"
    diff = _changed(COMMENTED, path)
    assert diff == ["+         reenabled_at: 2026-11-23T12:00:00Z"]
    first = path.read_text()
    _reenable(capsys, path, "2026-11-24T08:00:00+02:00")
    diff = _changed(first, path)
    assert diff == [
        "-         reenabled_at: 2026-11-23T12:00:00Z",
        "+         reenabled_at: 2026-11-24T06:00:00Z",
    ]
    assert run_cli(capsys, "validate", str(path), PLAIN)[0] == 0


def test_reenable_unknown_credential(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown credential is an error and nothing is written."""
    path = write_config()
    code, _, err = run_cli(capsys, "reenable", "acme-q4", "nope", "--config", str(path))
    assert (code, err) == (
        1,
        "error: no credential acme-q4/nope in the config (credentials of acme-q4: primary)\n",
    )
    assert path.read_text() == BASE


def test_reenable_keeps_sops_file_valid(
    write_config: Writer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """On a SOPS file (default rule: plain fields outside the MAC) one line changes and the
    file still opens with mailopsd and with sops."""
    key = make_key(tmp_path)
    path = write_config(COMMENTED)
    assert (
        run_cli(capsys, "secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))[0]
        == 0
    )
    before = path.read_text()
    assert _reenable(capsys, path, "2026-11-23T12:00:00Z")[0] == 0
    diff = _changed(before, path)
    assert diff == ["+         reenabled_at: 2026-11-23T12:00:00Z"]
    assert run_cli(capsys, "validate", str(path), "--age-key-file", str(key.path))[0] == 0
    assert run_sops(["decrypt", str(path)], key.path).returncode == 0


def test_reenable_full_mac_file_uses_key(
    write_config: Writer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A SOPS file whose MAC covers every value is re-sealed with its key, so it stays valid."""
    key = make_key(tmp_path)
    Path(".sops.yaml").write_text(
        f"creation_rules:\n  - age: {key.recipient}\n"
        "    encrypted_regex: ^smtp_(username|password)$\n"
    )
    path = write_config(COMMENTED)
    assert run_cli(capsys, "secrets", "encrypt", "--in-place", str(path))[0] == 0
    code, _, err = _reenable(capsys, path, "2026-11-23T12:00:00Z", "--age-key-file", str(key.path))
    assert code == 0, err
    assert "reenabled_at: 2026-11-23T12:00:00Z" in path.read_text()
    assert "# step 1 only" in path.read_text()
    assert run_cli(capsys, "validate", str(path), "--age-key-file", str(key.path))[0] == 0
    assert run_sops(["decrypt", str(path)], key.path).returncode == 0


def test_log_formats(
    write_config: Writer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--log-format json gives one JSON object per line; under journald, <N> prefixes."""
    path = write_config()
    _, _, err = run_cli(
        capsys,
        "run",
        "--config",
        str(path),
        "--state-dir",
        "st",
        "--once",
        PLAIN,
        "--log-format",
        "json",
    )
    records = [json.loads(line) for line in err.splitlines()]
    assert records[0]["level"] == "info"
    assert records[0]["message"].startswith("applied + campaign acme-q4")
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    write_config(BASE.replace("daily_limit: 100", "daily_limit: 90"))
    _, _, err = run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN)
    assert (
        err.splitlines()[0]
        == "<6>mailopsd.state.apply: applied ~ credential acme-q4/primary: daily_limit 100 -> 90"
    )
    # The bounce parser's narration of its detectors stays out of the daemon's log.
    assert logging.getLogger("flufl.bounce").getEffectiveLevel() == logging.CRITICAL


def test_now_needs_once(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """--now only makes sense for a --once run."""
    code, _, err = run_cli(
        capsys, "run", "--config", str(write_config()), "--now", "2026-11-23T12:00:00Z"
    )
    assert (code, err) == (1, "error: --now is only for --once runs\n")


def test_no_progress_bar_off_a_terminal(
    write_config: Writer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Captured stderr is no terminal: validate, plan and run --once of a large leads file
    put nothing of a progress bar on stderr or in a log line."""
    path = write_config()
    rows = "".join(f"lead{i}@example.net,Lead,Co\n" for i in range(20_000))
    Path("leads.csv").write_text(f"email,first_name,company\n{rows}")
    caplog.set_level(logging.DEBUG)
    runs = [
        run_cli(capsys, "validate", str(path), PLAIN),
        run_cli(capsys, "plan", "--config", str(path), "--state-dir", "st", PLAIN),
        run_cli(capsys, "run", "--config", str(path), "--state-dir", "st", "--once", PLAIN),
    ]
    assert [code for code, _, _ in runs] == [0, 2, 0], runs
    shown = "".join(err for _, _, err in runs) + caplog.text
    for mark in ("reading leads.csv", "rows", "%|", "B/s", "\r"):
        assert mark not in shown

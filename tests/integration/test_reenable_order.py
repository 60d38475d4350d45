"""A reenabled_at before the credential's disabled_at has no effect, and every command that
can see the state says so; reenable checks the state it is given."""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path

import pytest

from mailopsd.state.statefile import CredentialState, load_state, save_state
from tests.commands import run_cli
from tests.configs import BASE, Writer
from tests.daemons import in_process
from tests.logs import captured

PLAIN = "--allow-plaintext-secrets"
DISABLED_AT = "2026-11-22T08:30:00Z"
REENABLE = ["reenable", "acme-q4", "primary", "--config", "c.yaml", "--state-dir", "st"]
EARLY = BASE + "        reenabled_at: 2026-11-21T12:00:00Z\n"
WARNING = (
    "warning: c.yaml:19:23: campaigns.acme-q4.smtp_credentials.primary.reenabled_at: "
    "2026-11-21T12:00:00Z is before the credential's disabled_at 2026-11-22T08:30:00Z (it was "
    "auto-disabled after that time), so it has no effect and the credential stays disabled; "
    "to re-enable it, run: mailopsd reenable acme-q4 primary --config c.yaml --state-dir st"
)


@pytest.fixture
def disabled(write_config: Writer, capsys: pytest.CaptureFixture[str]) -> Path:
    """A config whose credential the daemon auto-disabled (state in ./st), as c.yaml."""
    path = write_config()
    run = ["run", "--config", str(path), "--state-dir", "st", "--once", PLAIN]
    assert run_cli(capsys, *run, "--now", "2026-11-22T08:00:00Z")[0] == 0
    state = load_state(Path("st"))
    entry = CredentialState(
        disabled_at=datetime.fromisoformat(DISABLED_AT),
        disabled_reason="bounce rate 7.1% (10/140) > 5%",
    )
    save_state(Path("st"), state.model_copy(update={"credentials": {"acme-q4/primary": entry}}))
    return path


def test_plan_says_it_has_no_effect(
    disabled: Path, write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan: no changes, and a warning at the field with why and a command that, run as
    printed, writes a reenabled_at that counts."""
    write_config(EARLY)
    code, out, err = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert code == 0
    assert out.startswith("no changes (revision ")
    assert err == WARNING + "\n"
    suggested = shlex.split(err.split("run: ")[1])
    assert run_cli(capsys, *suggested[1:])[0] == 0
    code, out, err = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert (code, err) == (2, "")
    assert "  ^ re-enable acme-q4/primary" in out


def test_validate_with_state_dir_says_it(
    disabled: Path, write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate --state-dir warns the same way; without it, validate reads no state."""
    write_config(EARLY)
    code, out, err = run_cli(capsys, "validate", "c.yaml", "--state-dir", "st", PLAIN)
    assert (code, out, err) == (
        0,
        "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        WARNING + "\n",
    )
    assert run_cli(capsys, "validate", "c.yaml", PLAIN) == (
        0,
        "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        "",
    )


def test_validate_with_a_wrong_state_dir(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate --state-dir where there is no state says where it looked, exit 1."""
    write_config()
    code, _, err = run_cli(capsys, "validate", "c.yaml", "--state-dir", "nope", PLAIN)
    assert code == 1
    assert err.startswith(f"error: no daemon state in {Path.cwd() / 'nope'} (that directory")


def test_daemon_log_says_it(
    disabled: Path, write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon logs the warning when it applies such a config; the credential stays off."""
    write_config(EARLY)
    run = ["run", "--config", "c.yaml", "--state-dir", "st", "--once", PLAIN]
    code, out, err = run_cli(capsys, *run, "--now", "2026-11-23T10:00:00Z")
    assert code == 0
    assert f"reenabled_at has no effect: {WARNING.removeprefix('warning: ')}" in err
    assert "campaign acme-q4: sent 0, failed 0" in out
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-23T10:00:00Z")
    assert f"  primary: disabled since {DISABLED_AT}" in out


def test_reenable_refuses_a_time_before_the_disable(
    disabled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reenable --state-dir with --now before disabled_at writes nothing and says why."""
    before = disabled.read_text()
    code, out, err = run_cli(capsys, *REENABLE, "--now", "2026-11-22T08:00:00Z")
    assert (code, out) == (1, "")
    assert err == (
        "error: 2026-11-22T08:00:00Z is before acme-q4/primary's disabled_at "
        "2026-11-22T08:30:00Z: a reenabled_at before it would have no effect; give --now at "
        "or after it, or leave --now out; nothing written\n"
    )
    assert disabled.read_text() == before


def test_reenable_with_state_dir_then_plan(
    disabled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reenable --state-dir writes a time after the disable, and plan then re-enables."""
    code, out, _ = run_cli(capsys, *REENABLE, "--now", "2026-11-23T09:00:00Z")
    assert (code, out) == (
        0,
        "c.yaml: set reenabled_at for acme-q4/primary (disabled since 2026-11-22T08:30:00Z); "
        "commit this change\n",
    )
    code, out, err = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert (code, err) == (2, "")
    assert "  ^ re-enable acme-q4/primary (reenabled_at 2026-11-23T09:00:00+00:00" in out


def test_reenable_a_credential_not_disabled(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """reenable --state-dir on a credential that is not disabled writes nothing."""
    path = write_config()
    run = ["run", "--config", str(path), "--state-dir", "st", "--once", PLAIN]
    assert run_cli(capsys, *run, "--now", "2026-11-22T08:00:00Z")[0] == 0
    code, out, _ = run_cli(capsys, *REENABLE)
    assert (code, out) == (
        0,
        "acme-q4/primary is not disabled in the daemon state in st: nothing to re-enable, "
        "nothing written\n",
    )
    assert path.read_text() == BASE


def test_reenable_with_a_wrong_state_dir(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """reenable --state-dir where there is no state says where it looked, writes nothing."""
    path = write_config()
    code, _, err = run_cli(
        capsys, "reenable", "acme-q4", "primary", "--config", "c.yaml", "--state-dir", "nope"
    )
    assert code == 1
    assert err.startswith(f"error: no daemon state in {Path.cwd() / 'nope'} (that directory")
    assert path.read_text() == BASE


def test_running_daemon_logs_it_once(disabled: Path, write_config: Writer) -> None:
    """A running daemon logs the warning once, not at every reconcile, and not after a
    reenabled_at that counts is pushed."""
    write_config(EARLY)
    clock = [datetime.fromisoformat("2026-11-23T10:00:00+00:00")]
    with captured("mailopsd") as log, in_process(disabled, Path("st"), clock) as daemon:
        daemon._reload_now(notify=False)
        daemon._reload_now(notify=False)
        write_config(BASE + "        reenabled_at: 2026-11-23T09:00:00Z\n")
        daemon._reload_now(notify=False)
    warnings = [line for line in log.lines if "reenabled_at has no effect" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "mailopsd.daemon WARNING reenabled_at has no effect: c.yaml:19:23"
    )
    assert any("applied ^ re-enable acme-q4/primary" in line for line in log.lines)

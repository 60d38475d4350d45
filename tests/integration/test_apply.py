"""Reconcile and apply against a real ledger and state file: idempotence, history,
incremental leads, re-enabling by YAML with the bounce window restarted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.config.loader import LoadOptions, load_config
from mailopsd.reconcile import CredentialReenabled, LeadsChanged
from mailopsd.state.apply import Reconciler
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import CredentialState, StateFile, load_state, save_state
from tests.configs import BASE, LEADS, Writer

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DISABLED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
PLAIN = LoadOptions(allow_plaintext_secrets=True)
SECOND = """\
      backup:
        smtp_host: smtp.example.org
        smtp_port: 465
        smtp_username: backup@example.org
        smtp_password: another-secret
        from_name: Bea
        from_email: bea@example.org
        daily_limit: 50
"""


@pytest.fixture
def reconciler(tmp_path: Path) -> Reconciler:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ledger = Ledger.open(state_dir)
    yield Reconciler(state_dir, ledger, {})  # type: ignore[misc]
    ledger.close()


def _cycle(reconciler: Reconciler, path: Path, state: StateFile) -> tuple[list[str], StateFile]:
    plan = reconciler.plan(load_config(path, PLAIN), state)
    return plan.lines(), reconciler.apply(plan, state, NOW)


def test_apply_then_nothing_left(write_config: Writer, reconciler: Reconciler) -> None:
    """After applying a plan, planning again from the same files gives nothing."""
    path = write_config(add=SECOND)
    lines, state = _cycle(reconciler, path, StateFile())
    assert len(lines) == 4
    assert reconciler.plan(load_config(path, PLAIN), state).is_empty
    assert state.daemon.applied_content_hash == load_config(path, PLAIN).revision


def test_secret_change_seen_not_stored(
    write_config: Writer, reconciler: Reconciler, tmp_path: Path
) -> None:
    """A changed password is planned as changed; no password is stored in the state dir."""
    path = write_config(add=SECOND)
    _, state = _cycle(reconciler, path, StateFile())
    write_config(BASE.replace("canary-Pw-9f3e2d1c", "new-password-42") + SECOND)
    lines, state = _cycle(reconciler, path, state)
    assert lines == ["~ credential acme-q4/primary: smtp_password (changed)"]
    assert reconciler.plan(load_config(path, PLAIN), state).is_empty  # the ledger took it
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())
    assert b"new-password-42" not in stored
    assert b"canary-Pw-9f3e2d1c" not in stored


def test_removal_keeps_history(write_config: Writer, reconciler: Reconciler) -> None:
    """A removed credential stops (no longer active) but its rows stay in the ledger."""
    path = write_config(add=SECOND)
    _, state = _cycle(reconciler, path, StateFile())
    write_config()
    lines, state = _cycle(reconciler, path, state)
    assert lines == ["- credential acme-q4/backup (stops; its history is kept)"]
    assert ("acme-q4", "backup") not in reconciler.ledger.campaigns.active_credentials()  # type: ignore[union-attr]
    write_config(add=SECOND)
    lines, _ = _cycle(reconciler, path, state)
    assert lines == ["+ credential acme-q4/backup (bea@example.org via smtp.example.org:465)"]


def test_leads_incremental(write_config: Writer, reconciler: Reconciler) -> None:
    """An unchanged leads file is not read again; a changed one imports only the difference."""
    path = write_config()
    _, state = _cycle(reconciler, path, StateFile())
    unchanged = reconciler.plan(load_config(path, PLAIN), state)
    assert unchanged.is_empty
    Path("leads.csv").write_text(
        "email,first_name,company\ngrace@example.com,Grace,Navy Labs\nalan@example.org,Alan,X\n"
    )
    plan = reconciler.plan(load_config(path, PLAIN), state)
    (action,) = plan.actions
    assert isinstance(action, LeadsChanged)
    assert ([r.email for r in action.added], [r.email for r in action.updated]) == (
        ["alan@example.org"],
        ["grace@example.com"],
    )
    state = reconciler.apply(plan, state, NOW)
    assert reconciler.ledger.leads.count("acme-q4") == 2  # type: ignore[union-attr]
    Path("leads.csv").write_text(LEADS)
    lines, _ = _cycle(reconciler, path, state)
    assert lines == ["~ leads acme-q4: +0 added, ~1 changed, -1 removed (leads.csv)"]


def test_reenable_by_yaml_restarts_window(
    write_config: Writer, reconciler: Reconciler, tmp_path: Path
) -> None:
    """reenabled_at >= disabled_at clears the disable and restarts the bounce window."""
    path = write_config()
    _, state = _cycle(reconciler, path, StateFile())
    disabled = CredentialState(
        disabled_at=DISABLED,
        disabled_reason="bounce rate 7.1% (10/140) > 5% since 2026-11-16T00:00:00Z",
        bounce_window_start=datetime(2026, 11, 16, tzinfo=UTC),
    )
    state = state.model_copy(update={"credentials": {"acme-q4/primary": disabled}})
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    write_config(add=f"        reenabled_at: {at.isoformat()}\n")
    plan = reconciler.plan(load_config(path, PLAIN), state)
    assert plan.actions == (CredentialReenabled("acme-q4", "primary", at, DISABLED),)
    state = reconciler.apply(plan, state, NOW)
    assert state.credential("acme-q4/primary") == CredentialState(
        bounce_window_start=at, reenabled_at=at
    )
    save_state(tmp_path / "state", state)
    assert load_state(tmp_path / "state") == state
    assert reconciler.plan(load_config(path, PLAIN), state).is_empty


def test_stale_reenable_keeps_disabled(write_config: Writer, reconciler: Reconciler) -> None:
    """A reenabled_at older than a later auto-disable changes nothing."""
    path = write_config(add="        reenabled_at: 2026-11-18T00:00:00Z\n")
    _, state = _cycle(reconciler, path, StateFile())
    disabled = CredentialState(
        disabled_at=DISABLED, reenabled_at=datetime(2026, 11, 18, tzinfo=UTC)
    )
    state = state.model_copy(update={"credentials": {"acme-q4/primary": disabled}})
    assert reconciler.plan(load_config(path, PLAIN), state).is_empty
    assert state.credential("acme-q4/primary").is_disabled(datetime(2026, 11, 18, tzinfo=UTC))

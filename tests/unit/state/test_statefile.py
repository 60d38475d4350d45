"""The state file: atomic 0600 writes, schema version, and corrupt files left alone."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.errors import StateError
from mailopsd.state.statefile import (
    Condition,
    CredentialState,
    StateFile,
    load_state,
    save_state,
)

AT = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def test_round_trip_private(tmp_path: Path) -> None:
    """What is saved is read back the same, from a 0600 file with a schema version."""
    state = StateFile(
        credentials={
            "acme/primary": CredentialState(
                disabled_at=AT,
                disabled_reason="bounce rate 7.1% (10/140) > 5% since 2026-11-16T00:00:00Z",
                bounce_window_start=AT,
            )
        },
    ).with_condition(
        Condition(type="Ready", status="True", reason="Reconciled", last_transition=AT)
    )
    save_state(tmp_path, state)
    path = tmp_path / "state.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "schema_version: 1" in path.read_text()
    assert "disabled_at: '2026-11-20T08:30:00Z'" in path.read_text()
    assert load_state(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["state.yaml"]


def test_missing_is_empty(tmp_path: Path) -> None:
    """No file yet is an empty state."""
    assert load_state(tmp_path) == StateFile()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("schema_version: 1\ncredentials: [\n", "is not valid YAML (line 3: invalid YAML:"),
        ("schema_version: 7\n", "has schema version 7, not 1"),
        (
            "schema_version: 1\ncredentials:\n  a/b: {disabled_at: soon}\n",
            "is corrupt at credentials.a/b.disabled_at",
        ),
        ("\xff", "cannot be read"),
    ],
)
def test_corrupt_file_refused_never_overwritten(tmp_path: Path, content: str, reason: str) -> None:
    """A corrupt state file stops with a clear message and stays byte for byte."""
    path = tmp_path / "state.yaml"
    raw = content.encode("latin-1")
    path.write_bytes(raw)
    with pytest.raises(StateError) as caught:
        load_state(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"state file {path} {reason}")
    assert message.endswith(
        "mailopsd will not overwrite it: fix it, or move it away to start from an empty "
        "state (auto-disabled credentials are then forgotten)"
    )
    assert path.read_bytes() == raw


def test_condition_keeps_transition_time(tmp_path: Path) -> None:
    """Setting a condition to the same status keeps its last transition time."""
    later = datetime(2026, 11, 21, tzinfo=UTC)
    first = StateFile().with_condition(
        Condition(type="Ready", status="True", reason="Reconciled", last_transition=AT)
    )
    again = first.with_condition(
        Condition(type="Ready", status="True", reason="Reconciled", last_transition=later)
    )
    assert again.condition("Ready") == first.condition("Ready")
    flipped = again.with_condition(
        Condition(type="Ready", status="False", reason="Stopping", last_transition=later)
    )
    assert flipped.condition("Ready").last_transition == later  # type: ignore[union-attr]

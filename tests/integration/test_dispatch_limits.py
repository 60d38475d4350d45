"""What bounds one dispatcher tick when a daemon runs many campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mailopsd.config.loader import LoadOptions, load_config
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.dispatch.dispatcher import Dispatcher
from mailopsd.notify import Notifier
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import load_state

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OPTIONS = LoadOptions(allow_plaintext_secrets=True)


def _campaign(name: str) -> dict[str, object]:
    return {
        "name": f"Campaign {name}",
        "leads": f"{name}.csv",
        "sequence": [{"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}."}],
        "smtp_credentials": {
            "box": {
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
                "smtp_username": "user",
                "smtp_password": "password",
                "from_name": "Box",
                "from_email": f"box.{name}@sender.example.com",
                "daily_limit": 100,
                "status": "sandbox",
            }
        },
    }


def _two_campaigns(directory: Path, leads: int) -> Path:
    """Campaigns ``a`` and ``b`` of ``leads`` leads each, one sandbox credential each."""
    for name in ("a", "b"):
        rows = "".join(f"{name}{i}@example.net,Lead{i}\n" for i in range(leads))
        (directory / f"{name}.csv").write_text("email,first_name\n" + rows)
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump({"campaigns": {n: _campaign(n) for n in ("a", "b")}}))
    return path


def _delivered(state_dir: Path) -> dict[str, int]:
    """Messages in each campaign's sandbox Maildir."""
    return {
        name: len(list((state_dir / "sandbox" / name / "box" / "new").glob("*")))
        for name in ("a", "b")
    }


def test_a_tick_sends_at_most_sends_per_tick_and_campaigns_take_turns(tmp_path: Path) -> None:
    """The cap on one tick holds for all campaigns together, and the next tick starts with
    the campaign after the last one served, so none waits for the others to finish."""
    path = _two_campaigns(tmp_path, leads=5)
    state_dir = tmp_path / "state"
    settings = DaemonSettings(path, state_dir, OPTIONS, clock=lambda: NOW)
    importer = Daemon(settings, Notifier({}))
    importer.start()  # imports the leads; sends nothing
    importer.close()
    loaded = load_config(path, OPTIONS)
    state = load_state(state_dir)
    ledger = Ledger.open(state_dir)
    dispatcher = Dispatcher(ledger, state_dir, sends_per_tick=3)
    seen = []
    try:
        for _ in range(4):
            state, report = dispatcher.tick(loaded, state, NOW)
            seen.append((report.assigned, _delivered(state_dir)))
    finally:
        dispatcher.close()
        ledger.close()
    assert seen == [
        (3, {"a": 3, "b": 0}),
        (3, {"a": 3, "b": 3}),
        (3, {"a": 5, "b": 4}),
        (1, {"a": 5, "b": 5}),
    ]

"""A forecast of a campaign's sends: the daemon's own ticks, run on a copy of its state.

``preview`` copies the state directory's ledger and state file into a private temporary
directory, starts a daemon there on the same config with nothing sent (each send is
recorded as sent and goes nowhere), and runs its dispatch at every ``every`` from
``start`` for ``days`` days, as ``run --once --now`` would at each of those times. What
the copy's ledger then counts per UTC day and mailbox, less what it counted before the
first tick, is the forecast: the same code
decides what goes, under the same daily caps and ramps, gaps, windows, rate limits and
per-domain caps; there is no second model of the rules. Nobody answers and nothing
bounces in a forecast: every send succeeds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mailopsd.config.loader import LoadOptions
from mailopsd.daemon.loop import Daemon
from mailopsd.daemon.settings import DaemonSettings
from mailopsd.notify import Notifier
from mailopsd.progress import Progress
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import STATE_FILE
from mailopsd.state.stats import DaySends

__all__ = ["Forecast", "forecast"]


@dataclass(frozen=True)
class Forecast:
    """What would be sent, per UTC day and mailbox, from ``start`` for ``days`` days."""

    campaign_id: str
    start: datetime
    days: int
    every: timedelta
    sends: list[DaySends]


def _copy_state(state_dir: Path, into: Path) -> None:
    """Copy the daemon's state file and ledger (a consistent copy) into ``into``."""
    if (state_dir / STATE_FILE).is_file():
        shutil.copyfile(state_dir / STATE_FILE, into / STATE_FILE)
    ledger = Ledger.open_readonly(state_dir) if state_dir.is_dir() else None
    if ledger is not None:
        try:
            ledger.copy_into(into)
        finally:
            ledger.close()


def forecast(
    config_path: Path,
    state_dir: Path,
    load_options: LoadOptions,
    *,
    campaign_id: str,
    start: datetime,
    days: int,
    every: timedelta,
    progress: Progress | None = None,
) -> Forecast:
    """Run the daemon's dispatch on a copy of its state, every ``every``, and count.

    Args:
        config_path: The config to forecast (applied to the copy first, as a reload
            would apply it).
        state_dir: The daemon's state directory (only read; it may not exist yet).
        load_options: How to load the config.
        campaign_id: The campaign whose sends are counted.
        start: The first tick.
        days: How many days of ticks.
        every: The time between two ticks.
        progress: Told how far reading the leads files into the copy is.

    Raises:
        ConfigError: The config is invalid.
        StateError: The state cannot be read or copied.
    """
    with tempfile.TemporaryDirectory(prefix="mailopsd-preview-") as tmp:
        scratch = Path(tmp)
        _copy_state(state_dir, scratch)
        moment = [start]
        settings = DaemonSettings(
            config_path=config_path,
            state_dir=scratch,
            load_options=load_options,
            clock=lambda: moment[0],
            progress=progress,
            dry_run=True,
        )
        first_day = start.strftime("%Y-%m-%d")
        before = _days(scratch, campaign_id, first_day)
        daemon = Daemon(settings, Notifier({}))
        try:
            daemon.start()
            end = start + timedelta(days=days)
            while moment[0] < end:
                daemon.dispatch()
                moment[0] += every
        finally:
            daemon.close()
        after = _days(scratch, campaign_id, first_day)
    sends = []
    for key, (step1, followups) in sorted(after.items()):
        done = before.get(key, (0, 0))
        if (step1, followups) != done:
            sends.append(DaySends(*key, step1 - done[0], followups - done[1]))
    return Forecast(campaign_id, start, days, every, sends)


def _days(
    directory: Path, campaign_id: str, first_day: str
) -> dict[tuple[str, str], tuple[int, int]]:
    """Sends counted in a ledger per (day, mailbox) from a day on: (step 1, follow-ups)."""
    ledger = Ledger.open(directory)
    try:
        rows = ledger.stats.days(campaign_id, first_day)
    finally:
        ledger.close()
    return {(row.day, row.credential_id): (row.step1, row.followups) for row in rows}

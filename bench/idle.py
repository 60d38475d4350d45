"""CPU used by an idle daemon: ``mailopsd run`` with nothing due, for 60 seconds.

    python -m bench idle [--quick]

The fleet of ``bench memory`` (one campaign, 5,000 sandbox credentials, 1,000,000 leads),
with a send window open only on the weekday three days from now, so nothing is due. A
real ``python -m mailopsd run`` starts with ``$NOTIFY_SOCKET`` pointing at a datagram
socket of the benchmark, which waits for ``READY=1`` (the import done), lets it settle,
then reads the process's ``utime + stime`` from ``/proc/PID/stat`` before and after 60
seconds of wall time. Then a ``SIGHUP`` reload (what the daemon does by itself every 300
seconds to catch drift) is timed in CPU seconds from the signal to its ``READY=1``, and
spread over those 300 seconds to give the idle cost with drift checks included. The
daemon is stopped with ``SIGTERM`` and waited for.
"""

from __future__ import annotations

import signal
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.daemon import WatchedDaemon, watched_daemon
from bench.memory import QUICK_NOTE, write_fleet
from bench.report import Row

TARGET_PERCENT = 1.0
DRIFT_INTERVAL_S = 300  # DaemonSettings.drift_interval_s
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _ready(daemon: WatchedDaemon, since: float) -> None:
    """Wait for ``READY=1`` (the import done, or a reload)."""
    if daemon.wait_for("READY=1", timeout_s=3600, since=since) is None:
        raise RuntimeError("no READY=1 from mailopsd run within an hour")


def run(quick: bool) -> list[Row]:
    """Measure an idle daemon's CPU over a minute, and the CPU of one drift reload."""
    credentials, leads = (50, 10_000) if quick else (5_000, 1_000_000)
    settle_s, measure_s = (0.5, 1.0) if quick else (5.0, 60.0)
    open_day = _DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]
    size = f"{credentials:,} credentials, {leads:,} leads"
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        directory = Path(tmp)
        config = write_fleet(
            directory / "config", credentials=credentials, leads=leads, days=(open_day,)
        )
        arguments = ["run", "--config", str(config), "--state-dir", str(directory / "state")]
        with watched_daemon([*arguments, "--allow-plaintext-secrets"], directory) as daemon:
            _ready(daemon, daemon.started)
            startup = time.monotonic() - daemon.started
            time.sleep(settle_s)
            cpu_before, wall_before = daemon.cpu_seconds(), time.perf_counter()
            time.sleep(measure_s)
            cpu_after, wall_after = daemon.cpu_seconds(), time.perf_counter()
            rss = daemon.rss_mb()
            percent = (cpu_after - cpu_before) / (wall_after - wall_before) * 100
            reload_before, reload_start = daemon.cpu_seconds(), time.monotonic()
            daemon.process.send_signal(signal.SIGHUP)
            _ready(daemon, reload_start)
            reload_wall = time.monotonic() - reload_start
            time.sleep(1.0)  # the dispatch that follows a reload
            reload_cpu = daemon.cpu_seconds() - reload_before
            if daemon.process.poll() is not None:
                raise RuntimeError(f"mailopsd run exited {daemon.process.returncode} while idle")
    with_drift = percent + reload_cpu / DRIFT_INTERVAL_S * 100
    quick_note = QUICK_NOTE if quick else ""
    return [
        Row(
            benchmark="idle",
            metric=f"CPU of an idle daemon over {measure_s:g} s",
            value=percent,
            unit="%",
            target=f"< {TARGET_PERCENT:g}% of one core",
            met=None if quick else percent < TARGET_PERCENT,
            note=f"{size}; window closed; {startup:.1f} s from start to READY=1{quick_note}",
        ),
        Row(
            benchmark="idle",
            metric="CPU of one drift reload (SIGHUP)",
            value=reload_cpu,
            unit="s",
            note=f"{size}; {reload_wall:.2f} s from SIGHUP to READY=1{quick_note}",
        ),
        Row(
            benchmark="idle",
            metric=f"idle CPU with a drift reload every {DRIFT_INTERVAL_S} s",
            value=with_drift,
            unit="%",
            target=f"< {TARGET_PERCENT:g}% of one core",
            met=None if quick else with_drift < TARGET_PERCENT,
            note=f"the {measure_s:g}-s idle rate plus one reload's CPU spread over "
            f"{DRIFT_INTERVAL_S} s{quick_note}",
        ),
        Row(
            benchmark="idle",
            metric="RSS of the idle daemon",
            value=rss,
            unit="MB",
            note=size + quick_note,
        ),
    ]

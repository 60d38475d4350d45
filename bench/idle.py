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

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.memory import QUICK_NOTE, mailopsd_command, write_fleet
from bench.report import Row

TARGET_PERCENT = 1.0
DRIFT_INTERVAL_S = 300  # DaemonSettings.drift_interval_s
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_for(sock: socket.socket, word: str, daemon: subprocess.Popen[bytes], log: Path) -> None:
    """Read notify datagrams until one holds ``word`` (the daemon must stay alive)."""
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise RuntimeError(f"mailopsd run exited {daemon.returncode}:\n{tail}")
        try:
            message = sock.recv(65536).decode()
        except TimeoutError:
            continue
        if re.search(rf"^{word}$", message, re.MULTILINE):
            return
    raise RuntimeError(f"no {word} from mailopsd run within an hour")


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM the daemon and wait; SIGKILL its process group if it hangs."""
    if daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def run(quick: bool) -> list[Row]:
    """Measure an idle daemon's CPU over a minute, and the CPU of one drift reload."""
    credentials, leads = (50, 10_000) if quick else (5_000, 1_000_000)
    settle_s, measure_s = (1.0, 5.0) if quick else (5.0, 60.0)
    open_day = _DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]
    size = f"{credentials:,} credentials, {leads:,} leads"
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        directory = Path(tmp)
        config = write_fleet(
            directory / "config", credentials=credentials, leads=leads, days=(open_day,)
        )
        notify_path = directory / "notify.sock"
        log = directory / "daemon.log"
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
            log.open("w") as stderr,
        ):
            sock.bind(str(notify_path))
            sock.settimeout(1.0)
            command = mailopsd_command(
                "run",
                "--config",
                str(config),
                "--state-dir",
                str(directory / "state"),
                "--allow-plaintext-secrets",
            )
            environ = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
            environ.pop("WATCHDOG_USEC", None)
            started = time.perf_counter()
            daemon = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                command,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=environ,
                start_new_session=True,
            )
            try:
                _wait_for(sock, "READY=1", daemon, log)
                startup = time.perf_counter() - started
                time.sleep(settle_s)
                cpu_before, wall_before = _cpu_seconds(daemon.pid), time.perf_counter()
                time.sleep(measure_s)
                cpu_after, wall_after = _cpu_seconds(daemon.pid), time.perf_counter()
                rss = _rss_mb(daemon.pid)
                percent = (cpu_after - cpu_before) / (wall_after - wall_before) * 100
                reload_before, reload_start = _cpu_seconds(daemon.pid), time.perf_counter()
                daemon.send_signal(signal.SIGHUP)
                _wait_for(sock, "READY=1", daemon, log)
                reload_wall = time.perf_counter() - reload_start
                time.sleep(1.0)  # the dispatch that follows a reload
                reload_cpu = _cpu_seconds(daemon.pid) - reload_before
                if daemon.poll() is not None:
                    raise RuntimeError(f"mailopsd run exited {daemon.returncode} while idle")
            finally:
                _stop(daemon)
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

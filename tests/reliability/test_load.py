"""Load: one daemon with many campaigns, credentials and leads, sending to a real sink.

One ``mailopsd run`` process runs on generated campaigns (``bench.generate.generate_fleet``:
one file and one leads file per campaign, every credential sending to Postfix's
``smtp-sink`` on 127.0.0.1, which serves 256 connections at once). The run is done twice,
with the same campaigns and credentials: with every lead, then with a tenth of them.
Each run: start, ``READY=1``, send half the leads, edit one campaign file while sending,
wait for the reload's ``READY=1``, read the peak RSS (``VmHWM``), stop with ``SIGTERM``.
A naive ``smtplib`` loop (``bench.smtp.naive_rate``, a connection per message) drives
the same sink before and after each run.

Nothing is compared with a fixed time: memory against the run with a tenth of the
leads, the reload against the daemon's own start, the send rate against the naive loop,
pauses in sending against the sending window, all measured in the same run. The one
absolute is the watchdog interval, systemd's own contract. ``MAILOPSD_RELIABILITY=full``
runs 100 campaigns, 5,000 credentials and 1,000,000 leads (several minutes); the numbers
are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.daemon import WatchedDaemon, watched_daemon
from bench.generate import generate_fleet
from bench.smtp import SinkCount, counting_smtp_sink, naive_rate
from tests.reliability.counts import count

CAMPAIGNS = count(10, 100)
CREDENTIALS = count(500, 5_000)
LEADS = count(100_000, 1_000_000)
FEWER = 10  # the baseline run has a tenth of the leads, the same campaigns and credentials
NAIVE_MESSAGES = count(1_000, 3_000)

MEMORY_GROWTH = 1.5  # peak RSS with every lead, over the peak with a tenth of them
RELOAD_SHARE = 0.75  # file saved -> reload applied, over the daemon's start to READY=1
NAIVE_SHARE = 1.0  # the daemon's messages per second, over the naive loop's
PAUSE_SHARE = 0.25  # the longest pause in arrivals, over the sending window
GIVE_UP = 3.0  # stop waiting for a reload after this many times the daemon's start
WATCHDOG_S = 5.0  # WATCHDOG_USEC given to the daemon (the unit has WatchdogSec=60)
START_TIMEOUT_S = 1800.0  # only so that a hung start fails instead of hanging the suite


@dataclass(frozen=True)
class LoadRun:
    """What one run measured; times in seconds, memory in MB, rates in messages/s."""

    leads: int
    cold_start_s: float
    rss_at_ready_mb: float
    peak_rss_mb: float
    send_rate: float
    window_s: float
    longest_pause_s: float
    reload_s: float | None  # None: not applied within GIVE_UP x cold_start_s
    resumed_after_reload: bool
    longest_watchdog_gap_s: float
    watchdogs_while_sending: int
    naive_rates: tuple[float, float]
    exit_code: int
    stop_s: float

    def lines(self) -> list[str]:
        """The numbers, as the report prints them."""
        reload = f"{self.reload_s:.2f} s" if self.reload_s is not None else "not applied"
        return [
            f"{self.leads:,} leads, {CAMPAIGNS} campaigns, {CREDENTIALS:,} credentials:",
            f"  start to READY=1 {self.cold_start_s:.2f} s; RSS at READY {self.rss_at_ready_mb:.0f}"
            f" MB; peak RSS {self.peak_rss_mb:.0f} MB",
            f"  sends {self.send_rate:,.0f} msg/s over {self.window_s:.1f} s (naive loop "
            f"{self.naive_rates[0]:,.0f} / {self.naive_rates[1]:,.0f} msg/s before / after); "
            f"longest pause {self.longest_pause_s:.2f} s",
            f"  file saved to reload applied: {reload} (waited up to {GIVE_UP:g}x the start);"
            f" sends resumed: {self.resumed_after_reload}",
            f"  longest gap between WATCHDOG=1: {self.longest_watchdog_gap_s:.1f} s "
            f"(interval {WATCHDOG_S:g} s), {self.watchdogs_while_sending} while sending half the"
            f" leads; stopped in {self.stop_s:.2f} s, exit {self.exit_code}",
        ]


def _longest_pause(timeline: list[tuple[float, int]]) -> float:
    """The longest time between two reads of the sink's count."""
    return max((b[0] - a[0] for a, b in itertools.pairwise(timeline)), default=0.0)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest interval between ``start``, each of ``times`` and ``end``."""
    edges = [start, *(t for t in times if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(edges))


def _edit(path: Path) -> float:
    """Raise the first credential's daily limit by one; when the file was saved."""
    text = path.read_text()
    limit = re.search(r"daily_limit: (\d+)\n", text)
    assert limit is not None, f"no daily_limit in {path}"
    edited = text.replace(limit.group(0), f"daily_limit: {int(limit.group(1)) + 1}\n", 1)
    path.write_text(edited)
    return time.monotonic()


@dataclass(frozen=True)
class _Sending:
    """The sending window: its rate, length, longest pause, and when it ended."""

    rate: float
    window_s: float
    longest_pause_s: float
    end: float


def _send_half(daemon: WatchedDaemon, sink: SinkCount, base: int, leads: int) -> _Sending:
    """Wait until half the leads arrived; the rate from the first arrival on."""
    first = sink.wait_for(base + 1, START_TIMEOUT_S)
    assert first is not None, f"nothing arrived at the sink:\n{daemon.tail()}"
    half = sink.wait_for(base + leads // 2, START_TIMEOUT_S)
    assert half is not None, f"half the leads never arrived:\n{daemon.tail()}"
    timeline = sink.between(first, half)
    sent = timeline[-1][1] - timeline[0][1]
    window = half - first
    return _Sending(sent / window, window, _longest_pause(timeline), half)


def _reload(
    daemon: WatchedDaemon, sink: SinkCount, path: Path, *, cold: float, last: int
) -> tuple[float | None, bool]:
    """Edit ``path`` while sending: the time to the reload's ``READY=1`` (None: not within
    GIVE_UP x ``cold``), and whether sends went on after it (until message ``last``)."""
    saved = _edit(path)
    applied = daemon.wait_for("READY=1", timeout_s=GIVE_UP * cold, since=saved)
    if applied is None:
        return None, False
    now = sink.count()
    resumed = now >= last or sink.wait_for(now + 1, GIVE_UP * cold) is not None
    return applied - saved, resumed


def _run(directory: Path, leads: int) -> LoadRun:
    """One daemon on ``leads`` leads: start, send, reload, measure, stop."""
    with counting_smtp_sink() as sink:
        files = generate_fleet(
            directory / "config",
            campaigns=CAMPAIGNS,
            credentials=CREDENTIALS,
            leads=leads,
            smtp_port=sink.port,
        )
        naive_before = naive_rate(sink.port, NAIVE_MESSAGES)
        base = sink.count()
        arguments = [
            *("run", "--config", str(directory / "config")),
            *("--state-dir", str(directory / "state"), "--allow-plaintext-secrets"),
        ]
        environ = {"WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000))}
        with watched_daemon(arguments, directory, environ=environ) as daemon:
            ready = daemon.wait_for("READY=1", timeout_s=START_TIMEOUT_S)
            assert ready is not None, f"no READY=1:\n{daemon.tail()}"
            cold = ready - daemon.started
            rss_at_ready = daemon.rss_mb()
            sending = _send_half(daemon, sink, base, leads)
            reload_s, resumed = _reload(daemon, sink, files[0], cold=cold, last=base + leads)
            peak = daemon.peak_rss_mb()
            end = time.monotonic()
            pets = daemon.times("WATCHDOG=1", since=ready)
            watchdog = _longest_gap(pets, ready, end)
            exit_code = daemon.stop()
            stop_s = time.monotonic() - end
        naive_after = naive_rate(sink.port, NAIVE_MESSAGES)
    return LoadRun(
        leads=leads,
        cold_start_s=cold,
        rss_at_ready_mb=rss_at_ready,
        peak_rss_mb=peak,
        send_rate=sending.rate,
        window_s=sending.window_s,
        longest_pause_s=sending.longest_pause_s,
        reload_s=reload_s,
        resumed_after_reload=resumed,
        longest_watchdog_gap_s=watchdog,
        watchdogs_while_sending=sum(1 for at in pets if at <= sending.end),
        naive_rates=(naive_before, naive_after),
        exit_code=exit_code,
        stop_s=stop_s,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadRun, LoadRun]:
    """The run with a tenth of the leads, then the run with all of them."""
    fewer = _run(tmp_path_factory.mktemp("fewer"), LEADS // FEWER)
    every = _run(tmp_path_factory.mktemp("every"), LEADS)
    print("\n".join(["", "load:", *fewer.lines(), *every.lines()]))
    return fewer, every


def test_the_daemon_runs_and_stops_cleanly(runs: tuple[LoadRun, LoadRun]) -> None:
    """Under load the daemon starts, sends, and exits 0 on SIGTERM."""
    for run in runs:
        assert run.exit_code == 0, run.lines()
        assert run.send_rate > 0, run.lines()


def test_peak_memory_does_not_grow_with_the_leads(runs: tuple[LoadRun, LoadRun]) -> None:
    """Ten times the leads, the same campaigns and credentials: the peak RSS of a daemon
    that imports them, sends and reloads stays within MEMORY_GROWTH of the smaller run's."""
    fewer, every = runs
    growth = every.peak_rss_mb / fewer.peak_rss_mb
    print(f"peak RSS {fewer.peak_rss_mb:.0f} MB -> {every.peak_rss_mb:.0f} MB ({growth:.2f}x)")
    assert growth <= MEMORY_GROWTH, [*fewer.lines(), *every.lines()]


def test_sends_keep_the_pace_of_a_naive_sender(runs: tuple[LoadRun, LoadRun]) -> None:
    """With every lead, the daemon sends to the sink at least as fast as a naive loop (a
    connection per message) does in the same run."""
    _, every = runs
    naive = statistics.median([rate for run in runs for rate in run.naive_rates])
    print(f"send rate {every.send_rate:,.0f} msg/s, naive loop {naive:,.0f} msg/s")
    assert every.send_rate >= NAIVE_SHARE * naive, every.lines()


def test_sends_flow_without_long_pauses(runs: tuple[LoadRun, LoadRun]) -> None:
    """Messages reach the sink steadily: no pause longer than PAUSE_SHARE of the window."""
    _, every = runs
    assert every.longest_pause_s <= PAUSE_SHARE * every.window_s, every.lines()


def test_a_reload_while_sending_is_applied_fast(runs: tuple[LoadRun, LoadRun]) -> None:
    """A campaign file edited while the daemon sends is applied in less than RELOAD_SHARE
    of the daemon's start, and sends go on afterwards."""
    _, every = runs
    assert every.reload_s is not None, every.lines()
    assert every.reload_s <= RELOAD_SHARE * every.cold_start_s, every.lines()
    assert every.resumed_after_reload, every.lines()


def test_the_watchdog_is_fed_while_sending(runs: tuple[LoadRun, LoadRun]) -> None:
    """While it sends, the daemon sends WATCHDOG=1, more often than the interval the
    service manager would kill it after."""
    _, every = runs
    assert every.watchdogs_while_sending > 0, every.lines()
    assert every.longest_watchdog_gap_s < WATCHDOG_S, every.lines()

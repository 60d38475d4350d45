"""The HTTP server under load while the daemon sends: does dispatching keep its pace?

    python -m bench http [--quick]

One real ``python -m mailopsd run`` (started as :mod:`bench.daemon` starts it) sends a
one-step campaign to Postfix's ``smtp-sink -c`` on 127.0.0.1 from four credentials, a
backlog large enough to keep it sending flat out for the whole run: that is its
schedule, the pace it keeps with nothing else to do. Its HTTP server listens on another
loopback port. The run has three phases of the same process: quiet, under load, quiet.
During the load phase Debian's ``wrk`` (C, its own processes) hammers the server with
64 connections in all, split over three paths: the open pixel ``GET /o/<token>.gif``
(each one a ledger write), the unsubscribe page ``GET /u/<token>`` (a ledger read) and
``GET /healthz``. Quick: 1 s each; full: 10 s, 20 s, 10 s.

Reported: the HTTP requests per second and latency percentiles (from ``wrk
--latency``); the send rate under load against the quiet phases' (ratio, same run); the
longest gap between two sends the sink saw, under load against quiet. Needs Debian's
``wrk`` and postfix.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.daemon import watched_daemon
from bench.report import Row
from bench.smtp import SinkCount, counting_smtp_sink, free_port, plain_credentials, wait_for_port
from bench.smtp import write_campaign as write_smtp_campaign
from mailopsd import tokens

KEY = "bench-signing-key-0123456789abcdefghijklmnop"
CONNECTIONS = 64
TARGET_RATE = 0.8
TARGET_GAP_S = 1.0
_PATHS = ("open", "unsubscribe", "healthz")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_LATENCY = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")


@dataclass(frozen=True)
class Wrk:
    """What one ``wrk`` run reported: requests/s and latency percentiles in ms."""

    path: str
    rate: float
    percentiles: dict[str, float]


def _wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is missing: apt-get install wrk")
    return found


def _parse(path: str, output: str) -> Wrk:
    rate = _RATE.search(output)
    errors = _ERRORS.search(output)
    if rate is None or errors is not None:
        raise RuntimeError(f"wrk on {path} failed or saw errors:\n{output[-2000:]}")
    found = {f"p{p}": float(value) * _UNITS[unit] for p, value, unit in _LATENCY.findall(output)}
    return Wrk(path, float(rate[1]), found)


def _config(directory: Path, sink: int, http: int, leads: int) -> Path:
    path = write_smtp_campaign(directory, leads, plain_credentials(sink, leads))
    config = yaml.safe_load(path.read_text())
    config["http"] = {
        "listen": f"127.0.0.1:{http}",
        "public_base_url": "https://mail.example.com",
        "signing_key": KEY,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _urls(port: int) -> dict[str, str]:
    base = f"http://127.0.0.1:{port}"
    lead = "lead1@sink.example.com"
    return {
        "open": f"{base}/o/{tokens.sign(KEY.encode(), tokens.OPEN, 'bench', lead)}.gif",
        "unsubscribe": f"{base}/u/{tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, 'bench', lead)}",
        "healthz": f"{base}/healthz",
    }


def _load(urls: dict[str, str], seconds: float) -> list[Wrk]:
    """Run one ``wrk`` per path at once, 64 connections in all, for ``seconds``."""
    share = CONNECTIONS // len(urls)
    processes = {
        name: subprocess.Popen(  # noqa: S603 - a fixed tool on loopback
            [_wrk_binary(), "-t1", f"-c{share}", f"-d{seconds:g}s", "--latency", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, url in urls.items()
    }
    outputs = {
        name: process.communicate(timeout=seconds + 60)[0] for name, process in processes.items()
    }
    return [_parse(name, outputs[name]) for name in urls]


def _phase(sink: SinkCount, start: float, end: float) -> tuple[float, float]:
    """Sends per second and the longest gap between two sends (s) from ``start`` to ``end``."""
    timeline = sink.between(start, end)
    if len(timeline) < 2 or timeline[-1][1] == timeline[0][1]:
        raise RuntimeError("the daemon sent nothing in a phase: the backlog ran out or it stalled")
    times = [start, *(at for at, _ in timeline), end]
    gap = max(later - earlier for earlier, later in itertools.pairwise(times))
    return (timeline[-1][1] - timeline[0][1]) / (timeline[-1][0] - timeline[0][0]), gap


def _wait_sending(sink: SinkCount, timeout_s: float) -> None:
    """Wait until the daemon has started sending (its leads imported, dispatch on)."""
    if sink.wait_for(1, timeout_s) is None:
        raise RuntimeError(f"mailopsd run sent nothing within {timeout_s:g} s")
    time.sleep(0.5)  # past the first connections


def run(quick: bool) -> list[Row]:
    """Measure HTTP throughput and the daemon's send pace with and without HTTP load."""
    quiet_s, load_s = (1.0, 1.0) if quick else (10.0, 20.0)
    leads = 60_000 if quick else 400_000
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        counting_smtp_sink() as sink,
    ):
        directory = Path(tmp)
        (directory / "config").mkdir()
        port = free_port()
        config = _config(directory / "config", sink.port, port, leads)
        arguments = ["run", "--config", str(config), "--state-dir", str(directory / "state")]
        with watched_daemon([*arguments, "--allow-plaintext-secrets"], directory) as daemon:
            if daemon.wait_for("READY=1", timeout_s=600) is None:
                raise RuntimeError("no READY=1 from mailopsd run within 10 minutes")
            wait_for_port(port, daemon.process)
            _wait_sending(sink, 600)
            marks = [time.monotonic()]
            time.sleep(quiet_s)
            marks.append(time.monotonic())
            results = _load(_urls(port), load_s)
            marks.append(time.monotonic())
            time.sleep(quiet_s)
            marks.append(time.monotonic())
            if daemon.process.poll() is not None:
                raise RuntimeError(f"mailopsd run exited {daemon.process.returncode}")
    before, loaded, after = (_phase(sink, a, b) for a, b in itertools.pairwise(marks))
    quiet_rate = (before[0] + after[0]) / 2
    quiet_gap = max(before[1], after[1])
    note = (
        f"{CONNECTIONS} wrk connections over 3 paths for {load_s:g} s; quiet phases "
        f"{quiet_s:g} s before and after; 4 credentials to smtp-sink, flat out"
    )
    quick_note = "; quick size, not a measurement" if quick else ""
    rows = [
        Row(
            benchmark="http",
            metric="send rate under HTTP load",
            value=loaded[0],
            unit="msg/s",
            reference="quiet phases",
            reference_value=quiet_rate,
            ratio=loaded[0] / quiet_rate,
            target=f"≥ {TARGET_RATE:g} of quiet",
            met=None if quick else loaded[0] / quiet_rate >= TARGET_RATE,
            note=note + quick_note,
        ),
        Row(
            benchmark="http",
            metric="longest gap between sends under load",
            value=loaded[1] * 1000,
            unit="ms",
            reference="quiet phases",
            reference_value=quiet_gap * 1000,
            ratio=loaded[1] / quiet_gap,
            target=f"≤ {TARGET_GAP_S * 1000:g} ms",
            met=None if quick else loaded[1] <= TARGET_GAP_S,
            note=note + quick_note,
        ),
        Row(
            benchmark="http",
            metric="HTTP requests/s, all paths",
            value=sum(result.rate for result in results),
            unit="req/s",
            note=", ".join(f"{r.path} {r.rate:,.0f}" for r in results) + quick_note,
        ),
    ]
    for result in results:
        rows.append(
            Row(
                benchmark="http",
                metric=f"latency p50, {result.path}",
                value=result.percentiles.get("p50", -1.0),
                unit="ms",
                note=f"p90 {result.percentiles.get('p90', -1.0):.1f} ms, "
                f"p99 {result.percentiles.get('p99', -1.0):.1f} ms{quick_note}",
            )
        )
    return rows

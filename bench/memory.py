"""Peak memory of ``mailopsd run --once``: 5,000 credentials and 1,000,000 leads.

    python -m bench memory [--quick]

One campaign with 5,000 sandbox credentials (nothing is ever sent over the network) and a
leads file of 1,000,000 rows; ``--now`` is a Sunday and the send window is Monday to
Friday, so the runs load, reconcile and import but send nothing. Each run is a real
``python -m mailopsd run --once`` in a child of a fresh helper process, which reports the
child's peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). Runs, on the same state
directory: the first (the import of every lead), a second with nothing changed (the
file's digest matches: no row read), and a third after one row was appended (the file is
read again and compared with the ledger). The reference is ``mailopsd --version``: the
interpreter and mailopsd's imports, the floor of any run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.daemon import mailopsd_command
from bench.generate import write_leads
from bench.report import Row

TARGET_MB = 150.0
QUICK_NOTE = "; quick run: shows it works, measures nothing"
NOW = "2026-11-22T12:00:00Z"  # a Sunday: the Monday-Friday window is closed
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")

_HELPER = """\
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=sys.stderr)
print(json.dumps({
    "returncode": done.returncode,
    "seconds": time.perf_counter() - start,
    "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""

_CAMPAIGN = """\
campaigns:
  fleet:
    name: Fleet of {credentials} mailboxes
    timezone: UTC
    send_window: {{days: [{days}], start: "08:00", end: "18:00"}}
    leads: leads.csv
    sequence:
      - subject: "Quick question, {{{{ first_name }}}}"
        body: "Hi {{{{ first_name }}}}, is {{{{ company }}}} hiring?"
      - delay: 3 days
        body: "Following up, {{{{ first_name }}}}."
    smtp_credentials:
"""
_CREDENTIAL = """\
      box-{n:05d}:
        smtp_host: 127.0.0.1
        smtp_port: 2525
        smtp_username: user{n}
        smtp_password: password-{n}-bench
        from_name: Box {n}
        from_email: box{n}@sender.example.com
        daily_limit: 50
        status: sandbox
        rate_limit: {{value: 20, period: "1 hour"}}
        min_interval: 90 seconds
"""


def write_fleet(
    directory: Path, *, credentials: int, leads: int, days: tuple[str, ...] = WORKDAYS
) -> Path:
    """Write ``c.yaml`` (one campaign, sandbox credentials) and ``leads.csv``; return the config."""
    directory.mkdir(parents=True, exist_ok=True)
    write_leads(directory / "leads.csv", leads)
    parts = [_CAMPAIGN.format(credentials=credentials, days=", ".join(days))]
    parts.extend(_CREDENTIAL.format(n=n) for n in range(credentials))
    path = directory / "c.yaml"
    path.write_text("".join(parts))
    return path


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop a helper and its child (its own process group), if still running."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def peak_rss(command: list[str], log: Path, timeout_s: float = 1800) -> tuple[float, float]:
    """Run ``command`` in a fresh helper; return its peak RSS in MB and its wall seconds.

    Raises:
        RuntimeError: The command failed (its log is quoted).
    """
    with log.open("w") as stderr:
        helper = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-c", _HELPER, *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = helper.communicate(timeout=timeout_s)
        finally:
            _stop(helper)
    result = json.loads(out.strip().splitlines()[-1])
    if result["returncode"] != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} exited {result['returncode']}:\n{tail}")
    return result["maxrss_kb"] / 1024, float(result["seconds"])


def run(quick: bool) -> list[Row]:
    """Measure the peak RSS of three ``run --once`` on the same state directory."""
    credentials, leads = (50, 10_000) if quick else (5_000, 1_000_000)
    size = f"{credentials:,} credentials, {leads:,} leads"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        config = write_fleet(directory / "config", credentials=credentials, leads=leads)
        generated = time.perf_counter() - started
        state = directory / "state"
        once = mailopsd_command(
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "--once",
            "--now",
            NOW,
            "--allow-plaintext-secrets",
        )
        floor, _ = peak_rss(mailopsd_command("--version"), directory / "version.log")
        runs = (
            ("first run --once (imports every lead)", None),
            ("second run --once (nothing changed)", None),
            ("run --once after one row appended", leads),
        )
        for number, (metric, append_at) in enumerate(runs):
            if append_at is not None:
                write_leads(directory / "config" / "leads.csv", 1, start=append_at, append=True)
            peak, seconds = peak_rss(once, directory / f"run{number}.log")
            rows.append(
                Row(
                    benchmark="memory",
                    metric=f"peak RSS, {metric}",
                    value=peak,
                    unit="MB",
                    reference="mailopsd --version",
                    reference_value=floor,
                    ratio=peak / floor,
                    target=f"≤ {TARGET_MB:g} MB",
                    met=None if quick else peak <= TARGET_MB,
                    note=f"{size}; wall {seconds:.1f} s (config written in {generated:.1f} s)"
                    + (QUICK_NOTE if quick else ""),
                )
            )
    return rows

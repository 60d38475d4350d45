"""Sending throughput through mailopsd, against a naive loop and smtp-source, and pick cost.

    python -m bench.send [--messages 5000] [--rounds 3]

A Postfix ``smtp-sink`` on loopback receives. Each round runs, in alternation: mailopsd
(``run --once`` work: four credentials, one kept-open connection each, a bounded pool),
a naive ``smtplib`` loop opening one connection per message, and ``smtp-source`` with
four sessions reusing their connections (the machine's ceiling). Medians in messages per
second, and ratios. Then the time to pick the credential of a step-1 send among 10, 1,000
and 10,000 eligible credentials. Needs Debian's postfix (for smtp-sink/smtp-source).
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import yaml

from bench.timing import machine
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.dispatch.rotation import Budget, Picker
from mailopsd.notify import Notifier


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(directory: Path, port: int, messages: int) -> Path:
    (directory / "leads.csv").write_text(
        "email,first_name\n" + "".join(f"lead{i}@sink.example.com,L{i}\n" for i in range(messages))
    )
    credentials = {
        f"b{i}": {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_username": f"u{i}",
            "smtp_password": f"p{i}",
            "from_name": f"Box {i}",
            "from_email": f"box{i}@sender.example.com",
            "daily_limit": messages,
            "tls": "none",
        }
        for i in range(4)
    }
    config = {
        "campaigns": {
            "bench": {
                "name": "bench",
                "leads": "leads.csv",
                "sequence": [
                    {
                        "subject": "Hello {{ first_name }}",
                        "body": "Hi {{ first_name }}.\n" + "x" * 900,
                    }
                ],
                "smtp_credentials": credentials,
            }
        }
    }
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _mailopsd(directory: Path, port: int, messages: int) -> float:
    run = Path(tempfile.mkdtemp(dir=directory))
    path = _config(run, port, messages)
    settings = DaemonSettings(
        config_path=path,
        state_dir=run / "state",
        load_options=LoadOptions(allow_plaintext_secrets=True),
        clock=lambda: datetime.now(UTC),
    )
    daemon = Daemon(settings, Notifier({}))
    daemon.start()
    try:
        start = time.perf_counter()
        sent = daemon.dispatch(max_ticks=100000)
        elapsed = time.perf_counter() - start
    finally:
        daemon.close()
    if sent != messages:
        raise SystemExit(f"mailopsd sent {sent} of {messages}; see the log above")
    return messages / elapsed


def _naive(port: int, messages: int) -> float:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.example.com", "b@y.example.com", "hi"
    message.set_content("x" * 1000)
    start = time.perf_counter()
    for _ in range(messages):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
    return messages / (time.perf_counter() - start)


def _smtp_source(port: int, messages: int) -> float:
    start = time.perf_counter()
    subprocess.run(  # noqa: S603 - a fixed tool
        [
            shutil.which("smtp-source") or "smtp-source",
            "-4",
            "-d",
            "-s",
            "4",
            "-m",
            str(messages),
            "-l",
            "1000",
            "-f",
            "a@x.example.com",
            "-t",
            "b@sink.example.com",
            f"127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
    )
    return messages / (time.perf_counter() - start)


def _pick_cost(count: int, picks: int = 20000) -> float:
    budgets = [Budget(f"c{i:05d}", sent_today=i % 7, daily_left=10**9) for i in range(count)]
    picker = Picker.of(budgets)
    start = time.perf_counter()
    for _ in range(picks):
        picker.pick()
    return (time.perf_counter() - start) / picks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sink_binary = shutil.which("smtp-sink")
    if sink_binary is None:
        raise SystemExit("smtp-sink is missing: apt-get install postfix (see docs/benchmarks.md)")
    port = _free_port()
    # -a: no AUTH offered (smtp-sink only fakes it); mailopsd then sends to this loopback
    # relay without a login, as it would to a local MTA.
    sink = subprocess.Popen([sink_binary, "-a", "-u", "nobody", f"127.0.0.1:{port}", "1024"])  # noqa: S603
    time.sleep(0.5)
    runs: dict[str, Callable[[Path], float]] = {
        "smtp-source, 4 sessions reusing connections": lambda d: _smtp_source(port, args.messages),
        "mailopsd (4 credentials, kept-open connections)": lambda d: _mailopsd(
            d, port, args.messages
        ),
        "naive smtplib loop, one connection per message": lambda d: _naive(port, args.messages),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for name, run in runs.items():
                    rates[name].append(run(Path(tmp)))
    finally:
        sink.terminate()
        sink.wait()
    print(f"machine: {machine()}")
    print(f"{args.messages} messages of about 1 KB per run; median of {args.rounds} rounds")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ours = medians["mailopsd (4 credentials, kept-open connections)"]
    for name, median in medians.items():
        print(f"  {name:<50} {median:8.0f} msg/s   mailopsd is x{ours / median:5.2f} of it")
    for count in (10, 1000, 10000):
        print(f"  pick among {count:>6} eligible credentials: {_pick_cost(count):6.2f} us per pick")


if __name__ == "__main__":
    main()

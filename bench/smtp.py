"""Sending throughput to a local SMTP sink: mailopsd against three references.

    python -m bench smtp [--quick]

Postfix's ``smtp-sink`` on 127.0.0.1 receives, announcing no AUTH (``-a``), as a local
relay would: mailopsd then sends without a login, which it allows only for ``tls: none``
on a loopback host. Each round runs, alternating, with the same number of messages of
about 1 KB:

- mailopsd: the sending work of ``run --once`` (``Daemon.dispatch``: assignment by
  rotation, composing, intents committed before and outcomes after every batch, SMTP on
  one kept-open connection per credential), four credentials, one step per lead. Starting
  the daemon (config load, leads import) is set up outside the timed part, and every send
  is checked to be ``sent`` in the ledger afterwards;
- ``smtp-source -d -s 4``: four sessions reusing their connections, the machine's
  ceiling (C, no message composing, no ledger);
- a naive ``smtplib`` loop opening one connection per message;
- ``mailmerge`` from PyPI (its own venv under ``bench/.data``, made on first use), which
  also opens one connection per message; its process start is in its time.

Medians of the rounds in messages per second; one row per reference. Needs Debian's
postfix (``smtp-sink``, ``smtp-source``). The helpers here serve ``bench.smtp_tls`` too.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import yaml

from bench.report import Row
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.notify import Notifier
from mailopsd.state.ledger import Ledger

CREDENTIALS = 4
SENDER = "sender@bench.example.com"
# Thirteen lines of about 70 characters: a body of about 1 KB, as smtp-source's -l 1000.
BODY_LINES = [
    f"Line {n:02d} of a plain text message, written so that it reads like a note ok."
    for n in range(13)
]
TARGET_SOURCE = 0.5
TARGET_NAIVE = 2.5
TARGET_MAILMERGE = 5.0
DATA_DIR = Path(__file__).with_name(".data")
MAILMERGE_VENV = DATA_DIR / "mailmerge-venv"
MAILMERGE = "mailmerge==2.3.0"


# Processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process this benchmark started, by its pid, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path("/usr/sbin") / name)
    if not Path(found).exists():
        raise RuntimeError(f"{name} is missing: apt-get install postfix")
    return found


def _start_sink(port: int, *, counting: bool) -> subprocess.Popen[bytes]:
    """``smtp-sink`` on 127.0.0.1:``port``, announcing no AUTH; ``-c``: counters on stdout."""
    return subprocess.Popen(  # noqa: S603 - a fixed tool
        [
            *(_tool("smtp-sink"), *(("-c",) if counting else ()), "-a", "-u", "nobody"),
            *(f"127.0.0.1:{port}", "1024"),
        ],
        stdout=subprocess.PIPE if counting else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Run ``smtp-sink`` on a free loopback port; yield the port; stop it afterwards."""
    port = free_port()
    sink = _start_sink(port, counting=False)
    try:
        wait_for_port(port, sink)
        yield port
    finally:
        stop(sink)


_RECEIVED = re.compile(rb"mesg=(\d+)")


@dataclass
class SinkCount:
    """The messages an ``smtp-sink -c`` received: the count, and when it was read.

    ``timeline`` holds ``(monotonic time, messages so far)``, one entry per read of the
    sink's counters, which it prints after every message.
    """

    port: int
    timeline: list[tuple[float, int]] = field(default_factory=lambda: [(time.monotonic(), 0)])
    _grew: threading.Condition = field(default_factory=threading.Condition)

    def read(self, stream: IO[bytes]) -> None:
        """Follow the sink's counters until it exits (the reading thread)."""
        rest = b""
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            rest += chunk
            found = _RECEIVED.findall(rest[: rest.rfind(b"\r") + 1])
            rest = rest[rest.rfind(b"\r") + 1 :]
            if found:
                with self._grew:
                    self.timeline.append((time.monotonic(), int(found[-1])))
                    self._grew.notify_all()

    def count(self) -> int:
        """The messages received so far."""
        with self._grew:
            return self.timeline[-1][1]

    def wait_for(self, messages: int, timeout_s: float) -> float | None:
        """When the sink had received ``messages`` in all; None if not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._grew:
            while self.timeline[-1][1] < messages:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._grew.wait(left)
            return next(at for at, count in self.timeline if count >= messages)

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        """The timeline's entries from ``start`` to ``end`` (monotonic)."""
        with self._grew:
            return [(at, count) for at, count in self.timeline if start <= at <= end]


@contextlib.contextmanager
def counting_smtp_sink() -> Iterator[SinkCount]:
    """Like :func:`smtp_sink`, counting what arrives and when; yields the count."""
    port = free_port()
    sink = _start_sink(port, counting=True)
    received = SinkCount(port)
    reader = threading.Thread(target=received.read, args=(sink.stdout,), name="sink-counter")
    reader.start()
    try:
        wait_for_port(port, sink)
        yield received
    finally:
        stop(sink)
        reader.join(timeout=10)
        if sink.stdout is not None:
            sink.stdout.close()


# mailopsd -------------------------------------------------------------------------------


def write_campaign(
    directory: Path, messages: int, credentials: Mapping[str, Mapping[str, Any]]
) -> Path:
    """Write a one-step campaign of ``messages`` leads over ``credentials``; its path."""
    (directory / "leads.csv").write_text(
        "email,first_name\n"
        + "".join(f"lead{i}@sink.example.com,Lead{i}\n" for i in range(messages))
    )
    campaign = {
        "name": "bench",
        "leads": "leads.csv",
        "sequence": [
            {
                "subject": "Hello {{ first_name }}",
                "body": "Hi {{ first_name }},\n\n" + "\n".join(BODY_LINES) + "\n",
            }
        ],
        "smtp_credentials": {name: dict(fields) for name, fields in credentials.items()},
    }
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump({"campaigns": {"bench": campaign}}))
    return path


def plain_credentials(port: int, messages: int) -> dict[str, dict[str, Any]]:
    """Four credentials sending to a loopback relay without TLS."""
    return {
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
        for i in range(CREDENTIALS)
    }


def mailopsd_rate(
    parent: Path, messages: int, credentials: Mapping[str, Mapping[str, Any]]
) -> float:
    """Messages per second of ``Daemon.dispatch`` sending ``messages`` leads (one step)."""
    directory = Path(tempfile.mkdtemp(dir=parent))
    path = write_campaign(directory, messages, credentials)
    settings = DaemonSettings(
        config_path=path,
        state_dir=directory / "state",
        load_options=LoadOptions(allow_plaintext_secrets=True),
        clock=lambda: datetime.now(UTC),
    )
    daemon = Daemon(settings, Notifier({}))
    try:
        daemon.start()
        start = time.perf_counter()
        daemon.dispatch(max_ticks=1_000_000)
        elapsed = time.perf_counter() - start
    finally:
        daemon.close()
    check_all_sent(directory / "state", messages)
    shutil.rmtree(directory, ignore_errors=True)
    return messages / elapsed


def check_all_sent(state: Path, messages: int) -> None:
    """Check the state directory's ledger has ``messages`` sends, every one ``sent``.

    Raises:
        RuntimeError: It has other outcomes, or another number.
    """
    outcomes: dict[str, int] = {}
    ledger = Ledger.open_readonly(state)
    if ledger is not None:
        try:
            for (_, _, outcome), count in ledger.totals.read().sends.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + count
        finally:
            ledger.close()
    if outcomes != {"sent": messages}:
        raise RuntimeError(
            f"mailopsd: {messages} messages expected sent, the ledger has {outcomes}"
        )


# References -----------------------------------------------------------------------------


def naive_message() -> EmailMessage:
    """The naive loops' message: about the size of mailopsd's."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, "lead@sink.example.com", "Hello"
    message.set_content("Hi Lead,\n\n" + "\n".join(BODY_LINES) + "\n")
    return message


def naive_rate(port: int, messages: int) -> float:
    """A ``smtplib`` loop opening one connection per message (no TLS, no login)."""
    message = naive_message()
    start = time.perf_counter()
    for _ in range(messages):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
    return messages / (time.perf_counter() - start)


def smtp_source_rate(port: int, messages: int) -> float:
    """``smtp-source`` with four sessions reusing their connections."""
    command = [
        *(_tool("smtp-source"), "-4", "-d", "-s", str(CREDENTIALS), "-m", str(messages)),
        *("-l", "1000", "-f", SENDER, "-t", "lead@sink.example.com", f"127.0.0.1:{port}"),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - a fixed tool
    return messages / (time.perf_counter() - start)


def mailmerge_binary() -> Path:
    """``mailmerge`` in its own venv under ``bench/.data``, installed on first use."""
    binary = MAILMERGE_VENV / "bin" / "mailmerge"
    if binary.exists():
        return binary
    shutil.rmtree(MAILMERGE_VENV, ignore_errors=True)
    MAILMERGE_VENV.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    pip = str(MAILMERGE_VENV / "bin" / "pip")
    for command in (
        [python, "-m", "venv", str(MAILMERGE_VENV)],
        [pip, "install", "--quiet", "--disable-pip-version-check", MAILMERGE],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            shutil.rmtree(MAILMERGE_VENV, ignore_errors=True)
            raise RuntimeError(f"installing {MAILMERGE} failed: {done.stderr[-1000:]}")
    return binary


def mailmerge_rate(
    parent: Path, port: int, messages: int, server: Sequence[str] = (), password: str = ""
) -> float:
    """``mailmerge --no-dry-run --no-limit`` over a CSV of ``messages`` rows.

    ``server`` adds lines to its ``[smtp_server]`` section (``security``, ``username``);
    ``password`` is piped to its prompt.
    """
    directory = Path(tempfile.mkdtemp(dir=parent))
    template = directory / "template.txt"
    template.write_text(
        f"TO: {{{{email}}}}\nSUBJECT: Hello {{{{first_name}}}}\nFROM: Box <{SENDER}>\n\n"
        "Hi {{first_name}},\n\n" + "\n".join(BODY_LINES) + "\n"
    )
    database = directory / "database.csv"
    database.write_text(
        "email,first_name\n"
        + "".join(f"lead{i}@sink.example.com,Lead{i}\n" for i in range(messages))
    )
    config = directory / "server.conf"
    config.write_text(
        "[smtp_server]\nhost = 127.0.0.1\n"
        f"port = {port}\nratelimit = 0\n" + "".join(f"{line}\n" for line in server)
    )
    command = [
        *(str(mailmerge_binary()), "--no-dry-run", "--no-limit", "--output-format", "text"),
        *("--template", str(template), "--database", str(database), "--config", str(config)),
    ]
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own venv's tool
        command, input=f"{password}\n", capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    sent = done.stdout.count(" sent\n")
    if done.returncode != 0 or sent != messages:
        raise RuntimeError(
            f"mailmerge sent {sent} of {messages} (exit {done.returncode}): {done.stderr[-500:]}"
        )
    shutil.rmtree(directory, ignore_errors=True)
    return messages / elapsed


# Rounds ---------------------------------------------------------------------------------


def alternate_rates(runs: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every action once per round, in turn; each returns a rate; return them all.

    (``bench.timing.alternate`` times whole actions; these time only their sending.)
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, action in runs.items():
            rates[name].append(action())
    return rates


def _spread(rates: Sequence[float]) -> str:
    return f"{min(rates):,.0f}-{max(rates):,.0f}"


def comparison(
    benchmark: str,
    metric: str,
    ours: Sequence[float],
    reference: tuple[str, Sequence[float]],
    target: float,
    quick: bool,
    note: str,
    *,
    share: bool = False,
) -> Row:
    """One row: mailopsd's median msg/s against a reference's, the target on the ratio."""
    name, theirs = reference
    value, other = statistics.median(ours), statistics.median(theirs)
    ratio = value / other
    wanted = f"≥ {target:.0%} of {name}" if share else f"≥ {target:g}x {name}"
    spread = f"rounds: mailopsd {_spread(ours)}, {name} {_spread(theirs)} msg/s"
    return Row(
        benchmark=benchmark,
        metric=metric,
        value=value,
        unit="msg/s",
        reference=name,
        reference_value=other,
        ratio=ratio,
        target=wanted,
        met=None if quick else ratio >= target,
        note=f"{note}; {spread}"
        + ("; quick run: shows it works, measures nothing" if quick else ""),
    )


def run(quick: bool) -> list[Row]:
    """Alternate mailopsd and the three references; one row per reference."""
    messages, rounds = (200, 1) if quick else (5000, 5)
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as tmp, smtp_sink() as port:
        parent = Path(tmp)
        mailmerge_binary()  # installed before the rounds, not in them
        runs: dict[str, Callable[[], float]] = {
            "mailopsd": lambda: mailopsd_rate(parent, messages, plain_credentials(port, messages)),
            "smtp-source": lambda: smtp_source_rate(port, messages),
            "naive": lambda: naive_rate(port, messages),
            "mailmerge": lambda: mailmerge_rate(parent, port, messages),
        }
        rates = alternate_rates(runs, rounds)
    note = (
        f"{messages:,} messages of about 1 KB per run, {CREDENTIALS} credentials; "
        f"median of {rounds} rounds, alternating; mailopsd: its sends (Daemon.dispatch) "
        "timed, its start (config, leads import) not"
    )
    ours = rates["mailopsd"]
    return [
        comparison(
            "smtp",
            "msg/s vs smtp-source -d -s 4",
            ours,
            ("smtp-source", rates["smtp-source"]),
            TARGET_SOURCE,
            quick,
            note + "; smtp-source: 4 sessions reusing their connections",
            share=True,
        ),
        comparison(
            "smtp",
            "msg/s vs naive smtplib loop",
            ours,
            ("naive smtplib", rates["naive"]),
            TARGET_NAIVE,
            quick,
            note + "; the naive loop opens a connection per message",
        ),
        comparison(
            "smtp",
            "msg/s vs mailmerge",
            ours,
            ("mailmerge", rates["mailmerge"]),
            TARGET_MAILMERGE,
            quick,
            note + f"; {MAILMERGE}: a connection per message, its process start included",
        ),
    ]

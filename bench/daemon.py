"""A ``mailopsd run`` process watched from outside, as systemd watches it.

The benchmarks and the reliability tests start the real daemon as a child process, in
its own process group, with ``$NOTIFY_SOCKET`` pointing at a datagram socket of theirs.
A thread reads that socket and keeps every notify message (``READY=1``, ``RELOADING=1``,
``WATCHDOG=1``...) with the moment it arrived; memory and CPU come from ``/proc``. The
daemon is stopped by its pid: ``SIGTERM``, then ``SIGKILL`` of its group if it hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Notice", "WatchedDaemon", "mailopsd_command", "watched_daemon"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def mailopsd_command(*arguments: str) -> list[str]:
    """``python -m mailopsd ARGUMENTS`` with this interpreter."""
    return [sys.executable, "-m", "mailopsd", *arguments]


@dataclass(frozen=True)
class Notice:
    """One notify message: its ``KEY=value`` lines and when it arrived (monotonic)."""

    at: float
    lines: tuple[str, ...]


@dataclass
class WatchedDaemon:
    """A running ``mailopsd run`` and what it said on its notify socket."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float
    notices: list[Notice] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.process.pid

    def receive(self, sock: socket.socket, stop: threading.Event) -> None:
        """Keep every datagram from ``sock`` until ``stop`` is set (the reading thread)."""
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            notice = Notice(time.monotonic(), tuple(data.decode().splitlines()))
            with self._arrived:
                self.notices.append(notice)
                self._arrived.notify_all()

    def times(self, line: str, *, since: float = float("-inf")) -> list[float]:
        """When each message holding ``line`` arrived, from ``since`` on."""
        with self._arrived:
            return [n.at for n in self.notices if n.at >= since and line in n.lines]

    def wait_for(self, line: str, *, timeout_s: float, since: float | None = None) -> float | None:
        """Wait for a message holding ``line`` that arrived from ``since`` on.

        Returns:
            When it arrived (monotonic), or None if none did within ``timeout_s``.

        Raises:
            RuntimeError: The daemon exited (the end of its log is quoted).
        """
        deadline = time.monotonic() + timeout_s
        start = self.started if since is None else since
        with self._arrived:
            while True:
                found = self.times(line, since=start)
                if found:
                    return found[0]
                if self.process.poll() is not None:
                    raise RuntimeError(f"mailopsd exited {self.process.returncode}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(min(left, 1.0))

    def status_kb(self, key: str) -> int:
        """A ``kB`` field of ``/proc/PID/status``: ``VmRSS``, ``VmHWM`` (peak RSS)..."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss_mb(self) -> float:
        """The resident memory now, in MB."""
        return self.status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The highest resident memory since the start, in MB."""
        return self.status_kb("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """The CPU time (user + system) used so far, in seconds."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def tail(self, lines: int = 20) -> str:
        """The end of the daemon's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 60) -> int:
        """``SIGTERM``, wait; ``SIGKILL`` the process group if it hangs; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def watched_daemon(
    arguments: Sequence[str], directory: Path, *, environ: Mapping[str, str] | None = None
) -> Iterator[WatchedDaemon]:
    """Start ``python -m mailopsd ARGUMENTS``; yield it; stop it on the way out.

    Args:
        arguments: The command line after ``mailopsd`` (``run --config ...``).
        directory: Where the notify socket and ``daemon.log`` go; keep it short (under
            ``/tmp``), an ``AF_UNIX`` path holds at most 107 bytes.
        environ: Variables added to this process's environment (``WATCHDOG_USEC``).
    """
    notify = directory / "notify.sock"
    log = directory / "daemon.log"
    # A watchdog of the caller's own service manager is not the daemon's.
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(environ or {})
    env["NOTIFY_SOCKET"] = str(notify)
    stop = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, log.open("wb") as stderr:
        sock.bind(str(notify))
        sock.settimeout(0.2)
        process = subprocess.Popen(  # noqa: S603 - this interpreter, our own program
            mailopsd_command(*arguments),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
        daemon = WatchedDaemon(process, log, time.monotonic())
        reader = threading.Thread(
            target=daemon.receive, args=(sock, stop), name="notify-reader", daemon=True
        )
        reader.start()
        try:
            yield daemon
        finally:
            daemon.stop()
            stop.set()
            reader.join(timeout=5)

"""The systemd notify protocol: ``READY=1``, ``RELOADING=1``, ``STATUS=``, ``WATCHDOG=1``.

One datagram per message to ``$NOTIFY_SOCKET`` (``@`` = abstract socket), sent without
blocking; without the variable every call does nothing. Failures are logged at DEBUG and
otherwise ignored: systemd going away must not stop the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        """Read ``$NOTIFY_SOCKET`` and the watchdog settings from ``environ``."""
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 1e6 if usec.isdigit() and ours else None
        self._last_watchdog = float("-inf")

    def send(self, *lines: str) -> None:
        """Send one message made of ``KEY=value`` lines."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the main loop on a manager that is slow to read.
                sock.setblocking(False)
                sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as err:
            logger.debug("notify failed error=%s", err)

    def ready(self, status: str) -> None:
        """Tell the manager the service is up (or done reloading)."""
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """Tell the manager a reload started."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def status(self, status: str) -> None:
        """Set the one-line status shown by ``systemctl status``."""
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """Pet the watchdog (only when the manager asked for one).

        At most four times per interval, however often the main loop turns: enough to
        stay alive, few enough never to fill the manager's socket queue.
        """
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval_s / 4:
            self._last_watchdog = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell the manager the service is shutting down."""
        self.send("STOPPING=1", "STATUS=stopping")

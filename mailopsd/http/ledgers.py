"""The HTTP side's ledger connections: one per server thread, opened once and kept.

Opening a connection for each request costs a migration check and, worse, every open
and close of the database is a chance to get its locking wrong; a few long-lived
connections, each used by one thread, are also what SQLite is fastest with. They are
closed together when the server stops, after its threads are done.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mailopsd.state.errors import StorageUnavailableError
from mailopsd.state.ledger import Ledger

__all__ = ["ThreadLedgers"]


class ThreadLedgers:
    """The calling thread's ledger connection, opened at its first use."""

    def __init__(self, directory: Path) -> None:
        """Serve connections to the ledger in the state directory ``directory``."""
        self._directory = directory
        self._address: str | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Ledger] = []
        self._closed = False

    def get(self) -> Ledger:
        """The calling thread's connection; the caller must not close it.

        Raises:
            StorageError: The ledger cannot be opened (it is tried again at the next
                call), or the server has stopped (``StorageUnavailableError``).
        """
        ledger: Ledger | None = getattr(self._local, "ledger", None)
        if ledger is not None:
            return ledger
        if self._address is not None:
            ledger = Ledger.connect(self._address)
        else:
            ledger = Ledger.open(self._directory, any_thread=True)
        with self._lock:
            if self._closed:
                ledger.close()
                raise StorageUnavailableError(
                    "the HTTP server has stopped; its ledger connections are closed"
                )
            self._opened.append(ledger)
        self._local.ledger = ledger
        return ledger

    def use_address(self, address: str) -> None:
        """Open the shared ledger at ``address`` (password included), not the directory's.

        The HTTP process gets it from the daemon: it has no age key to read a ledger
        file with, and holds only what the daemon sends it.
        """
        self._address = address

    def close(self) -> None:
        """Close every connection (once the threads that used them are done)."""
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, []
        for ledger in opened:
            ledger.close()

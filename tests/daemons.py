"""A daemon in the test's own process, on a clock the test turns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.notify import Notifier


@contextmanager
def in_process(path: Path, state: Path, clock: list[datetime], **settings: Any) -> Iterator[Daemon]:
    """Start a daemon on ``path`` (clear secrets allowed) whose time is ``clock[0]``.

    ``settings`` are further ``DaemonSettings`` (short IMAP timeouts, a storage reserve…).
    The daemon is closed when the block ends.
    """
    running = Daemon(
        DaemonSettings(
            config_path=path,
            state_dir=state,
            load_options=LoadOptions(allow_plaintext_secrets=True),
            clock=lambda: clock[0],
            **settings,
        ),
        Notifier({}),
    )
    running.start()
    try:
        yield running
    finally:
        running.close()

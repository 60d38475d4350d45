"""What a daemon runs on: its settings, filled by the entry point.

``run``, ``preview`` and the tests each fill one :class:`DaemonSettings`; the daemon
(:class:`~.loop.Daemon`) and its parts only read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailopsd.config.loader import LoadOptions
from mailopsd.daemon.cluster import LIVE_S
from mailopsd.daemon.follow import GitFollow
from mailopsd.progress import Progress

__all__ = ["DaemonSettings"]

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DaemonSettings:
    """What the daemon runs on; filled by the entry point."""

    config_path: Path
    state_dir: Path
    load_options: LoadOptions
    clock: Clock
    drift_interval_s: int = 300
    dispatch_interval_s: int = 10
    progress: Progress | None = None
    """Told how far long work is: reading leads files, the polls of :meth:`Daemon.poll_inbox`."""
    debounce_ms: int = 200
    inbox_check_s: int = 5
    imap_timeout_s: float = 30.0
    smtp_timeout_s: float = 30.0
    imap_retry_s: float = 60.0
    storage_headroom_bytes: int = 16 * 1024 * 1024
    storage_retry_s: float = 5.0
    dry_run: bool = False
    """Send nothing: each send is recorded as sent and goes nowhere (``preview``)."""
    wall_clock: bool = False
    """``clock`` is the wall clock: the HTTP process reads it itself instead of asking."""
    git: GitFollow | None = None
    """Follow this remote (``run --git``): ``config_path`` is unused."""
    stand_by: bool = True
    """One of the daemons of a shared ledger: it writes its row, and waits while its
    revision does not win (a ``--once`` run does neither, and takes only what no daemon
    holds)."""
    heartbeat_s: int = 5
    """How often the working daemon writes its row in a shared ledger (see :mod:`.cluster`)."""
    live_s: float = LIVE_S
    """How young a daemon's heartbeat is for it to count in the revision rule."""
    lease_s: int = 1
    """How often a daemon of a shared ledger takes and lets go leases (see :mod:`.leases`)."""

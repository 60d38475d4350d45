"""The storage pause: no work while the state directory takes no writes.

A send whose outcome cannot be recorded could be sent twice, so when the state
directory stops taking writes (disk full, read-only, I/O errors, no permission) the
daemon pauses its work: nothing is sent, no poll is recorded and no config is applied
until a test write to the ledger and the state file succeeds again. Sending also pauses
before the disk is full, when less than the headroom is free. At start, the daemon waits
instead, reporting ready with the reason as its status, so a service manager neither
kills nor restarts it.

:class:`StoragePause` holds whether the work is paused and why, tells when it may end,
and writes the log lines of both; the daemon decides what the test write is and shows
the pause in its conditions and status.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mailopsd.notify import Notifier
from mailopsd.state.engine import EngineError
from mailopsd.state.errors import (
    StorageError,
    StorageFullError,
    StorageInUseError,
    StorageReadOnlyError,
    StorageUnavailableError,
)

__all__ = ["StoragePause", "unwritable"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

# What passes when the operator acts (space freed, the file system made writable, the
# disk back): the work pauses meanwhile. A damaged ledger or state file does not.
_UNWRITABLE = (StorageFullError, StorageReadOnlyError, StorageUnavailableError)

_T = TypeVar("_T")


def _caused_by(err: BaseException | None, kinds: type | tuple[type, ...]) -> bool:
    """Tell whether ``err``, or one it was raised from, is one of ``kinds``."""
    while err is not None:
        if isinstance(err, kinds):
            return True
        err = err.__cause__
    return False


def _standing_by(err: BaseException) -> bool:
    """Tell whether the error says another daemon works on the shared ledger."""
    return _caused_by(err, StorageInUseError)


def _what_failed(err: BaseException) -> tuple[str, str]:
    """What did not take the write, and what the operator does about it."""
    if _caused_by(err, EngineError):  # PostgreSQL's: the ledger is elsewhere
        return "ledger not reachable", "check the database server and the network to it"
    return "state directory not writable", "free space there or make it writable"


def unwritable(err: BaseException | None) -> bool:
    """Tell whether an error (or one it was raised from) says writes are refused.

    A full disk, a read-only or failing file system, or missing permission: these pass
    when the operator acts. A corrupt ledger or state file is not one of them.
    """
    return _caused_by(err, _UNWRITABLE)


class StoragePause:
    """Whether the work is paused for the state directory, and why."""

    def __init__(
        self, state_dir: Path, *, headroom_bytes: int, retry_s: float, standby_s: float = 1.0
    ) -> None:
        """Not paused.

        Args:
            state_dir: The state directory.
            headroom_bytes: Sending pauses when less than this is free there.
            retry_s: How long a start waits between tries while writes are refused.
            standby_s: How long a start waits between tries while this daemon's revision
                does not win on the shared ledger (how soon it works once it does).
        """
        self._state_dir = state_dir
        self._headroom_bytes = headroom_bytes
        self._retry_s = retry_s
        self._standby_s = standby_s
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the state directory takes no writes now (the work is paused), or None."""
        return self._problem

    def begin(self, err: BaseException, doing: str) -> str:
        """Pause the work: the state directory did not take a write while ``doing``.

        The first failure of a pause is logged; later ones only update the reason.

        Returns:
            The reason, as :attr:`problem` now says it.
        """
        reason = str(err) or type(err).__name__
        if self._problem is None and _standing_by(err):
            logger.warning("standing by, work paused while=%s: %s", doing, reason)
        elif self._problem is None:
            logger.error(
                "%s, work paused state_dir=%s while=%s error=%s; %s: the work resumes by itself",
                *_what_failed(err),
                self._state_dir,
                doing,
                reason,
            )
        self._problem = f"{reason} (while {doing})"
        return self._problem

    def low_space(self) -> str | None:
        """Why there is too little free space to send, or None."""
        try:
            stats = os.statvfs(self._state_dir)
        except OSError as err:
            return f"cannot check free space: {err.strerror or err}"
        free = stats.f_bavail * stats.f_frsize
        if free < self._headroom_bytes:
            return (
                f"{free} bytes free, less than the {self._headroom_bytes} "
                "kept in reserve for recording sends"
            )
        return None

    def try_end(self, write_test: Callable[[], int]) -> bool:
        """End the pause if ``write_test`` succeeds; tell whether it did.

        Args:
            write_test: Writes to the ledger and the state file, and returns how many
                sends it marked ``unknown``; raises a ``StorageError`` if a write is
                refused.
        """
        try:
            unknown = write_test()
        except StorageError:
            return False
        logger.info(
            "state directory writable again, work resumes state_dir=%s unknown_outcomes=%d",
            self._state_dir,
            unknown,
        )
        self._problem = None
        return True

    def wait_writable(
        self,
        doing: str,
        action: Callable[[], _T],
        *,
        stop: threading.Event,
        notifier: Notifier,
    ) -> _T:
        """Run ``action`` at start, waiting while the state directory takes no writes.

        The daemon reports ready meanwhile, with the reason as its status; ``stop`` set
        ends the wait.

        Raises:
            StateError: ``action`` failed otherwise (a ``StorageError`` that does not
                pass by itself, or another), or while ``stop`` was set.
        """
        waiting: str | None = None  # what for
        while True:
            try:
                result = action()
            except StorageError as err:
                if not unwritable(err) or stop.is_set():
                    raise
                if waiting is None:
                    self._log_waiting(doing, err)
                    waiting = "standby" if _standing_by(err) else _what_failed(err)[0]
                    notifier.ready(f"waiting: {waiting} ({err})")
                notifier.watchdog()
                stop.wait(self._standby_s if waiting == "standby" else self._retry_s)
                continue
            if waiting == "standby":
                logger.info("working on the shared ledger: this daemon's revision wins now")
            elif waiting == "ledger not reachable":
                logger.info("ledger reachable again state_dir=%s", self._state_dir)
            elif waiting is not None:
                logger.info("state directory writable again state_dir=%s", self._state_dir)
            return result

    def _log_waiting(self, doing: str, err: BaseException) -> None:
        if _standing_by(err):  # its revision does not win (BehindError)
            logger.warning("standing by while=%s: %s", doing, err)
            return
        failed, advice = _what_failed(err)
        logger.error(
            "%s, waiting state_dir=%s while=%s error=%s; %s: the start goes on by itself",
            failed,
            self._state_dir,
            doing,
            err,
            advice,
        )

"""The daemon's loop: load, reconcile, then watch and reload, until told to stop.

The main loop sleeps until the next scheduled job, a reload request (file change or
SIGHUP) or a stop request (SIGTERM/SIGINT); signal handlers and the file watcher only set
flags and wake it. A reload that fails validation keeps the last good config running and
sets the ``ConfigError`` condition; the next good load clears it. With ``$WATCHDOG_USEC``
set, the loop pets the watchdog at least every half interval.

The parts it runs live beside it: what it runs on (:mod:`.settings`), the config's load,
apply and reload (:mod:`.reload`), the config watcher (:mod:`.watcher`), the pause while
the state directory takes no writes (:mod:`.storage`), its row and the revision rule on a
shared ledger (:mod:`.cluster`), the campaigns it holds there (:mod:`.leasing`, deciding
with :mod:`.leases`), the HTTP server (:mod:`.httpserving`; its process is supervised by
:mod:`.httpsupervisor`) and, with ``run --git``, the remote it follows instead of
watching files (:mod:`.gitfollowing`; the remote's own parts: :mod:`.gitside`). The
parts that work on the daemon's own state (:mod:`.reload`, :mod:`.httpserving`,
:mod:`.gitfollowing`, :mod:`.leasing`) are bases of :class:`Daemon` rather than objects
of their own.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TypeVar

import schedule

from mailopsd.config.loader import LoadCache, LoadedConfig, collector_paused
from mailopsd.daemon.cluster import Presence
from mailopsd.daemon.gitfollowing import GitFollowing
from mailopsd.daemon.gitside import GitSide
from mailopsd.daemon.httpserving import HttpServing
from mailopsd.daemon.httpsupervisor import HttpSupervisor
from mailopsd.daemon.leases import Leases
from mailopsd.daemon.leasing import LeaseRounds
from mailopsd.daemon.reload import ConfigReloads
from mailopsd.daemon.settings import DaemonSettings
from mailopsd.daemon.storage import StoragePause, unwritable
from mailopsd.daemon.watcher import WatchedFiles, Watcher, start_watcher
from mailopsd.dispatch.dispatcher import Dispatcher
from mailopsd.dispatch.report import TickReport
from mailopsd.errors import ConfigError, StateError
from mailopsd.http.metrics import ReloadCounts
from mailopsd.inbox.service import Inbox
from mailopsd.notify import Notifier
from mailopsd.smtp.transport import SmtpTransport
from mailopsd.state import place
from mailopsd.state.apply import Reconciler
from mailopsd.state.errors import StorageError, StorageInUseError
from mailopsd.state.ledger import Ledger
from mailopsd.state.observe import config_revision
from mailopsd.state.sendkey import load_send_key
from mailopsd.state.statefile import Condition, StateFile, load_state, save_state

__all__ = ["Daemon"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")

_T = TypeVar("_T")


class Daemon(ConfigReloads, HttpServing, GitFollowing, LeaseRounds):
    """One mailopsd process."""

    def __init__(self, settings: DaemonSettings, notifier: Notifier) -> None:
        """Prepare; nothing is read until :meth:`start`."""
        self.settings = settings
        self.notifier = notifier
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()
        self._scheduler = schedule.Scheduler()
        self._logged_errors: frozenset[str] = frozenset()
        self._logged_ignored: frozenset[str] = frozenset()
        self._watcher: Watcher | None = None
        self._state_loaded = False
        self._ledger: Ledger | None = None
        self._reconciler: Reconciler | None = None
        self._dispatcher: Dispatcher | None = None
        self._inbox: Inbox | None = None
        self._load_cache = LoadCache()
        self._watched: set[Path] = set()
        self._watching = WatchedFiles()
        self._storage = StoragePause(
            settings.state_dir,
            headroom_bytes=settings.storage_headroom_bytes,
            retry_s=settings.storage_retry_s,
        )
        self._serving = False
        self._http = HttpSupervisor(
            settings.state_dir,
            self._site,
            settings.clock,
            wall_clock=settings.wall_clock,
            environment=os.environ,
        )
        self._reloads = ReloadCounts()  # since the process started, for /metrics
        self.state = StateFile()
        self.loaded: LoadedConfig | None = None
        self.work_done = TickReport()  # every tick's, since the process started
        self._config_path = settings.config_path  # in the work tree, when following git
        self._git: GitSide | None = None  # with run --git
        self._rejection = ""  # why the last reload was not applied
        self._presence: Presence | None = None  # on a shared ledger, while standing by too
        self._leases: Leases | None = None  # on a shared ledger: the campaigns it holds
        self._unrecovered: frozenset[str] = frozenset()  # taken, not yet recovered
        self._lease_at = 0.0  # when the lease round last ran (time.monotonic)
        self._dispatch_due = False  # a lease round took campaigns: dispatch at once
        self._left = ""  # the campaigns a run --once left to other daemons, as last logged
        self._standby_config: LoadedConfig | None = None  # loaded while standing by
        self._beat_at = 0.0  # when the heartbeat last ran (time.monotonic)
        self._outvoted_at: float | None = None  # when a heartbeat first found it outvoted
        self.stepped_down: str | None = None
        """Why the daemon let its work on the shared ledger go (another revision won)."""

    # Start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Open the state, load the config and reconcile once.

        On a shared ledger another daemon works on, this waits (stands by) until it can
        work; a stop asked meanwhile ends the start there, and :meth:`serve` does nothing.

        Raises:
            StateError: The state directory, state file or ledger cannot be used.
            ConfigError: The config is invalid (the daemon does not start).
            RemoteError: A followed remote gives nothing to start on (see
                :meth:`Following.first_tree`).
        """
        state_dir = self.settings.state_dir
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError as err:
            raise StateError(
                f"state directory {state_dir} is a file; give --state-dir a directory "
                "(a missing one is created)"
            ) from err
        except OSError as err:
            raise StateError(f"cannot create state directory {state_dir}: {err.strerror}") from err
        self.state = load_state(state_dir)
        self._state_loaded = True
        if self.settings.git is not None:
            self._start_following(self.settings.git, os.environ)
        with collector_paused():  # as a reload: see collector_paused
            self._standby_config = self._load()
        if place.pointed(state_dir) is not None:
            self._presence = Presence(state_dir, live_s=self.settings.live_s)
            self._leases = Leases(
                self._presence.id, self.settings.live_s, member=self.settings.stand_by
            )
        try:
            self._ledger = self._until_writable("opening the ledger", self._take_ledger)
        except StorageInUseError:
            if not self._stop.is_set():
                raise
            logger.info("stopped while standing by")
            return
        loaded, self._standby_config = self._standby_config, None
        self._take_states()
        self._reconciler = Reconciler(state_dir, self._ledger, {}, progress=self.settings.progress)
        with collector_paused():
            self._until_writable("applying the config", lambda: self._apply(loaded))
        self._git_started()
        self._watched = self._watching.of(loaded)
        send_key = load_send_key(state_dir)
        self._dispatcher = Dispatcher(
            self._ledger,
            state_dir,
            smtp=SmtpTransport(timeout_s=self.settings.smtp_timeout_s),
            heartbeat=self.notifier.watchdog,
            dry_run=self.settings.dry_run,
            send_key=send_key,
        )
        self._inbox = Inbox(
            self._ledger,
            send_key=send_key,
            timeout_s=self.settings.imap_timeout_s,
            retry_s=self.settings.imap_retry_s,
            wake=self._wake.set,
        )
        dispatcher = self._dispatcher
        if self._leases is None:  # on a shared ledger, each campaign's as its lease is taken
            unknown = self._until_writable(
                "recording sends left without an outcome",
                lambda: dispatcher.recover(loaded, self._now()),
            )
            if unknown:
                logger.warning("sends without outcome marked unknown count=%d", unknown)
        self._lease_round()
        self._heartbeat()

    def _take_ledger(self) -> Ledger:
        """Open the ledger for the daemon's work (asked again every second while standing by).

        On a shared ledger, the config is loaded again first (a config that became invalid
        leaves the last valid one standing), and this daemon's row written; a daemon whose
        revision does not win waits, taking no lease (see :mod:`.cluster`).
        """
        presence = self._presence
        if presence is not None and self._standby_config is not None and self.settings.stand_by:
            if self._git is not None:
                self._follow_standing_by()
            else:
                with suppress(ConfigError):  # reported once applied, as a reload's would be
                    self._standby_config = self._load()
            loaded = self._standby_config
            presence.stand_by(config_revision(loaded.files, loaded.revision))
        ledger = Ledger.open(self.settings.state_dir, leases=True)
        if presence is not None:
            presence.close()  # the connection it stood by on
        return ledger

    def _heartbeat(self) -> None:
        """Write this daemon's row in a shared ledger; let the work go if outvoted.

        The mailboxes' states of the campaigns other daemons hold are taken from the
        ledger then, where their holders write them.
        """
        presence, ledger = self._presence, self._ledger
        if presence is None or ledger is None or self._storage.problem is not None:
            return
        if not self.settings.stand_by:
            return  # a run --once is not one of the daemons: it writes no row
        self._beat_at = time.monotonic()
        held = frozenset() if self._leases is None else self._leases.held
        try:
            reason = presence.beat(ledger, self.state.daemon.applied_revision, held)
            if reason is None:
                self._set_state(presence.take_states(ledger, self.state, keep=held))
        except StorageError as err:
            if not unwritable(err):
                raise
            self._storage_failed(err, "writing the heartbeat")
            return
        if reason is None:
            self._outvoted_at = None
        elif self._outvoted_at is None:
            # The others may only be a little behind (a push each applies in turn): the
            # work is let go if this daemon is still outvoted at its next heartbeat.
            self._outvoted_at = time.monotonic()
            logger.info("outvoted, the work goes at the next heartbeat if still so: %s", reason)
        elif time.monotonic() - self._outvoted_at >= self.settings.heartbeat_s:
            logger.warning("letting the work go, standing by again: %s", reason)
            self.stepped_down = reason
            self.request_stop()

    def close(self) -> None:
        """Stop the HTTP server and the watcher, mark the daemon stopped, close the ledger."""
        self._http.close()
        if self._git is not None:
            self._git.following.close()
        if self._watcher is not None:
            self._watcher.close()
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._inbox is not None:
            self._inbox.close()
        if self._presence is not None and self.stepped_down is None:
            self._presence.stop(self._ledger)
        elif self._presence is not None:
            self._presence.close()
        if self._state_loaded and self.stepped_down is not None:
            self._set_condition("Ready", "False", "StandingBy", f"standing by: {self.stepped_down}")
            self._save()
        elif self._state_loaded:  # never replace a state file that could not be read
            self._set_condition("Ready", "False", "Stopped", "the daemon is not running")
            self._save()
        if self._ledger is not None:
            self._ledger.close()

    def request_stop(self) -> None:
        """Ask the main loop to finish (safe from a signal handler or another thread)."""
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Ask the main loop to reload the config."""
        self._reload.set()
        self._wake.set()

    def _until_writable(self, doing: str, action: Callable[[], _T]) -> _T:
        """Run ``action`` at start, waiting while the state directory takes no writes."""
        return self._storage.wait_writable(doing, action, stop=self._stop, notifier=self.notifier)

    # Conditions and the state file ----------------------------------------------------

    def _now(self) -> datetime:
        return self.settings.clock()

    def _set_condition(
        self, kind: str, status: str, reason: str, message: str, errors: Iterable[str] = ()
    ) -> None:
        condition = Condition.model_validate(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "last_transition": self._now(),
                "errors": tuple(errors),
            }
        )
        self.state = self.state.with_condition(condition)

    def _save(self, applied: frozenset[str] = frozenset()) -> None:
        """Save the state file; on a shared ledger, share the mailbox states it writes.

        Args:
            applied: The credentials (state-file keys) whose entries a config change
                just reset or re-enabled: shared whoever holds their campaign, so the
                holder (or the next) takes the change from the ledger.
        """
        if self._storage.problem is not None:
            return  # saved by the write test that ends the pause
        try:
            save_state(self.settings.state_dir, self.state)
            if self._presence is not None and self._ledger is not None:
                held = None if self._leases is None else self._leases.held
                self._presence.share(self._ledger, self.state, self._now(), held, applied)
        except StateError as err:
            self._storage_failed(err, "saving the state file")

    def _take_states(self) -> None:
        """At start on a shared ledger, take its mailbox states (see :mod:`.cluster`)."""
        presence, ledger = self._presence, self._ledger
        if presence is not None and ledger is not None:
            self._set_state(
                self._until_writable(
                    "reading the mailboxes' states",
                    lambda: presence.take_states(ledger, self.state),
                )
            )

    # The state directory --------------------------------------------------------------

    @property
    def storage_problem(self) -> str | None:
        """Why the state directory takes no writes now (the work is paused), or None."""
        return self._storage.problem

    def _storage_failed(self, err: BaseException, doing: str) -> None:
        """Pause the work: the state directory did not take a write."""
        problem = self._storage.begin(err, doing)
        message = f"work paused, nothing is sent: {problem}"
        self._set_condition("StateWritable", "False", "NotWritable", message)
        self._set_condition("Ready", "False", "StateNotWritable", message)
        self.notifier.status(self.status_line())
        with suppress(StateError):  # shown by status when there is room for it
            save_state(self.settings.state_dir, self.state)

    def _storage_ready(self) -> bool:
        """Tell whether the work may go on; end a pause once writes succeed again."""
        low = self._storage.low_space()
        if low is not None:
            if self._storage.problem is None:
                self._storage_failed(OSError(low), "checking free space")
            return False
        if self._storage.problem is None:
            return True
        ledger, dispatcher, loaded = self._ledger, self._dispatcher, self.loaded
        if ledger is None or dispatcher is None or loaded is None:
            return False
        if not self._storage.try_end(lambda: self._write_test(ledger, dispatcher, loaded)):
            return False
        self.notifier.status(self.status_line())
        self._reload_now(notify=False)  # apply what changed in the config meanwhile
        return True

    def _write_test(self, ledger: Ledger, dispatcher: Dispatcher, loaded: LoadedConfig) -> int:
        """The writes that end a pause: ledger, unknown outcomes, state file (as writable).

        Returns:
            How many sends left without an outcome were marked ``unknown``.

        Raises:
            StorageError: A write was refused; the state is left as it was.
        """
        paused = self.state
        self._set_condition("StateWritable", "True", "Writable", "the state directory takes writes")
        self._set_condition(
            "Ready", "True", "Reconciled", f"revision {paused.daemon.applied_revision} applied"
        )
        try:
            ledger.probe_write()
            leases = self._leases
            unknown = (
                dispatcher.recover(loaded, self._now())
                if leases is None
                else dispatcher.recover(loaded, self._now(), campaigns=self._held_still(leases))
            )
            save_state(self.settings.state_dir, self.state)
        except StorageError:
            self.state = paused
            raise
        return unknown

    def dispatch(self, *, max_ticks: int = 1000) -> int:
        """Send what is due now, tick after tick, until nothing more is; return sends made.

        A long backlog does not hold up the rest: a reload asked for ends the run (the
        main loop applies it, then dispatches again), and between ticks the watchdog is
        petted, the heartbeat written when due (on a shared ledger) and, while serving,
        finished mailbox polls are recorded, so a reply stops its lead's next step even
        in the middle of a backlog.
        """
        if self._dispatcher is None or self.loaded is None:
            return 0
        total = 0
        for _ in range(max_ticks):
            reload_asked = self._serving and self._reload.is_set()
            if self._stop.is_set() or reload_asked or not self._storage_ready():
                break
            try:
                state, report = self._dispatcher.tick(
                    self.loaded,
                    self.state,
                    self._now(),
                    should_stop=self._stop.is_set,
                    held=self._held(),
                    fence=None if self._leases is None else self._leases.session,
                )
            except StorageError as err:
                if not unwritable(err):
                    raise
                self._storage_failed(err, "recording sends")
                break
            if state != self.state:
                self.state = state
                self._save()
            self.work_done.add(report)
            if report.assigned:
                logger.info("dispatched %s", report.summary())
            total += report.assigned
            if not report.assigned:
                break
            self._between_ticks()
        return total

    def _between_ticks(self) -> None:
        """Pet the watchdog, the heartbeat and lease round when due, record finished polls."""
        self.notifier.watchdog()
        if time.monotonic() - self._beat_at >= self.settings.heartbeat_s:
            self._heartbeat()  # a long backlog does not age this daemon's row
        if time.monotonic() - self._lease_at >= self.settings.lease_s:
            self._lease_round()  # nor keeps a daemon that joined from its share
        if self._serving:
            self.inbox_tick()

    def _set_state(self, state: StateFile) -> None:
        if state != self.state:
            self.state = state
            self._save()

    def _poll_unrecorded(self, err: BaseException) -> None:
        if not unwritable(err):
            raise err
        self._storage_failed(err, "recording a mailbox poll")

    def inbox_tick(self) -> None:
        """Record the polls that finished and start those that are due."""
        if self._inbox is None or self.loaded is None or not self._storage_ready():
            return  # finished polls wait in the inbox until they can be recorded
        self._set_state(self._inbox.collect(self.loaded, self.state, self._now()))
        if self._inbox.unrecorded is not None:
            self._poll_unrecorded(self._inbox.unrecorded)
            return
        self._inbox.start_due(self.loaded)

    def poll_inbox(self) -> None:
        """Poll every mailbox now and record what it holds (``run --once``)."""
        if self._inbox is None or self.loaded is None or not self._storage_ready():
            return
        polled = self._inbox.poll_all(
            self.loaded, self.state, self._now(), progress=self.settings.progress
        )
        self._set_state(polled)
        if self._inbox.unrecorded is not None:
            self._poll_unrecorded(self._inbox.unrecorded)

    def status_line(self) -> str:
        """The one-line summary sent as ``STATUS=``."""
        summary = self.loaded.summary() if self.loaded else "no config"
        line = f"{summary}; revision {self.state.daemon.applied_revision}"
        error = self.state.condition("ConfigError")
        if error is not None and error.status == "True":
            line += "; config error (running on the last good config)"
        if self._storage.problem is not None:
            line += f"; work paused, state directory not writable: {self._storage.problem}"
        if self._http.listen is not None:
            line += f"; http on {self._http.listen}"
        return line

    # The loop -------------------------------------------------------------------------

    def _restart_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self.loaded is None or self._git is not None:
            return  # a followed remote's work tree changes only by the daemon's hand
        self._watcher = start_watcher(
            self.settings.config_path,
            self._watched,
            on_change=self.request_reload,
            debounce_ms=self.settings.debounce_ms,
        )

    def install_signals(self) -> None:
        """Stop on SIGTERM and SIGINT, reload on SIGHUP (from the main thread)."""

        def on_stop(signum: int, _: FrameType | None) -> None:
            logger.info("stopping signal=%s", signal.Signals(signum).name)
            self.request_stop()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _timeout_s(self) -> float:
        idle = self._scheduler.idle_seconds
        timeout = max(idle, 0.0) if idle is not None else 3600.0
        interval = self.notifier.watchdog_interval_s
        return min(timeout, interval / 2) if interval else timeout

    def serve(self) -> None:
        """Run until a stop request: reloads, scheduled jobs, watchdog.

        Nothing runs if the daemon was stopped while standing by (see :meth:`start`).
        """
        if self._ledger is None:
            return
        self.install_signals()
        self._scheduler.every(self.settings.drift_interval_s).seconds.do(self._drift_check)
        self._scheduler.every(self.settings.dispatch_interval_s).seconds.do(self.dispatch)
        self._scheduler.every(self.settings.inbox_check_s).seconds.do(self.inbox_tick)
        if self._presence is not None:
            self._scheduler.every(self.settings.heartbeat_s).seconds.do(self._heartbeat)
            self._scheduler.every(self.settings.lease_s).seconds.do(self._lease_round)
        self._restart_watcher()
        if self._git is not None:
            self._git.following.start()
        self.start_http()
        self._serving = True
        self.notifier.ready(self.status_line())
        logger.info("ready %s", self.status_line())
        self.inbox_tick()
        self.dispatch()
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self._reload_now(notify=True)
                self.dispatch()
            if self._dispatch_due:
                self._dispatch_due = False
                self.dispatch()
            self._follow()
            self.inbox_tick()
            self._scheduler.run_pending()
            self.notifier.watchdog()
            self._wake.wait(self._timeout_s())
            self._wake.clear()
        if self.stepped_down is None:
            self.notifier.stopping()
        else:
            self.notifier.status(f"standing by: {self.stepped_down}")

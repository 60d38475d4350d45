"""The config, loaded and applied: at start, on a reload request and on the drift timer.

A reload loads the config again (reading only what changed since the last load) and
applies it to the ledger and the state file (:mod:`mailopsd.state.apply`). A config that
fails validation, or cannot be applied, is not swapped in: the last good one keeps
running, the ``ConfigError`` or ``Ready`` condition says why, and each error is logged
once while it stays. While the state directory takes no writes, a reload waits for the
end of the pause (:mod:`.storage`), which reloads.

:class:`ConfigReloads` is a part of the daemon (:class:`~.loop.Daemon`), whose state and
state file it shares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailopsd.config.loader import LoadCache, LoadedConfig, collector_paused, load_config
from mailopsd.config.reenable import ignored_issues
from mailopsd.daemon.follow import Applied
from mailopsd.daemon.gitside import GitSide
from mailopsd.daemon.settings import DaemonSettings
from mailopsd.daemon.storage import unwritable
from mailopsd.daemon.watcher import WatchedFiles
from mailopsd.errors import ConfigError, StateError
from mailopsd.http.metrics import ReloadCounts
from mailopsd.notify import Notifier
from mailopsd.reconcile import CredentialChanged, CredentialReenabled, ReenableIgnored
from mailopsd.refs import credential_key
from mailopsd.state.apply import Reconciler
from mailopsd.state.statefile import StateFile

__all__ = ["ConfigReloads"]

# The daemon's lines keep one logger name, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.daemon")


class ConfigReloads:
    """The daemon's part that loads, applies and reloads the config."""

    # The daemon's, set in its __init__: declared here so that their use is type-checked.
    settings: DaemonSettings
    notifier: Notifier
    state: StateFile
    loaded: LoadedConfig | None
    _reconciler: Reconciler | None
    _load_cache: LoadCache
    _config_path: Path
    _logged_errors: frozenset[str]
    _logged_ignored: frozenset[str]
    _rejection: str
    _reloads: ReloadCounts
    _watched: set[Path]
    _watching: WatchedFiles
    _serving: bool
    _git: GitSide | None

    if TYPE_CHECKING:  # the daemon's own, or its other parts'

        def _now(self) -> datetime: ...

        def _set_condition(
            self, kind: str, status: str, reason: str, message: str, errors: Iterable[str] = ()
        ) -> None: ...

        def _save(self, applied: frozenset[str] = frozenset()) -> None: ...

        def _storage_ready(self) -> bool: ...

        def _storage_failed(self, err: BaseException, doing: str) -> None: ...

        def _restart_watcher(self) -> None: ...

        def _sync_http(self) -> None: ...

        def status_line(self) -> str:
            """The one-line summary sent as ``STATUS=``."""

    def _load(self) -> LoadedConfig:
        """Load the config, redoing only what changed since the last load."""
        return load_config(self._config_path, self.settings.load_options, cache=self._load_cache)

    def _apply(self, loaded: LoadedConfig) -> None:
        assert self._reconciler is not None  # noqa: S101 - start() opened it
        ledger = self._reconciler.ledger
        # On a shared ledger, one daemon applies at a time: the next plans from what the
        # last applied, and finds the ledger's part done.
        with nullcontext() if ledger is None else ledger.applying(self.notifier.watchdog):
            plan = self._reconciler.plan(loaded, self.state)
            self.state = self._reconciler.apply(plan, self.state, self._now())
        if plan.actions:
            logger.info("reconciled revision=%s actions=%d", plan.revision, len(plan.actions))
        self._warn_ignored(loaded, plan.ignored)
        self.loaded = loaded
        self._set_condition("ConfigError", "False", "Valid", "the config is valid")
        self._set_condition("Ready", "True", "Reconciled", f"revision {plan.revision} applied")
        self._save(
            frozenset(
                credential_key(action.campaign_id, action.credential_id)
                for action in plan.actions
                if isinstance(action, CredentialChanged | CredentialReenabled)
            )
        )

    def _warn_ignored(self, loaded: LoadedConfig, ignored: tuple[ReenableIgnored, ...]) -> None:
        """Log each ``reenabled_at`` that has no effect, once while it stays so."""
        config, state_dir = str(self._config_path), str(self.settings.state_dir)
        given = ["--config", config, "--state-dir", state_dir]
        lines = {str(issue) for issue in ignored_issues(loaded, ignored, given=given)}
        for line in sorted(lines - self._logged_ignored):
            logger.warning("reenabled_at has no effect: %s", line)
        self._logged_ignored = frozenset(lines)

    def _reload_now(self, *, notify: bool) -> Applied:
        """Load and apply the config; what became of it (why not: ``self._rejection``)."""
        if not self._storage_ready():
            return Applied.LATER  # the end of the pause reloads
        if notify:
            self.notifier.reloading()
        outcome = Applied.REFUSED
        try:
            with collector_paused():
                loaded = self._load()
                files_before = self._watched
                self._apply(loaded)
        except ConfigError as err:
            self._config_rejected(err)
        except StateError as err:  # the ledger's, the state file's, or a leads file's
            if unwritable(err):
                self._storage_failed(err, "applying the config")
                outcome = Applied.LATER
            else:
                self._reconcile_failed(err)
        else:
            outcome = Applied.APPLIED
            self._record_reload("ok")
            if self._logged_errors:
                logger.info("config valid again revision=%s", self.state.daemon.applied_revision)
            self._logged_errors = frozenset()
            self._watched = self._watching.of(loaded)
            if self._watched != files_before and self._serving:
                self._restart_watcher()
            self._sync_http()
        if notify:
            self.notifier.ready(self.status_line())
        return outcome

    def _drift_check(self) -> None:
        """The periodic reload: everything is compared with the ledger, changed or not."""
        if self._reconciler is not None:
            self._reconciler.compare_all()
        self._reload_now(notify=False)

    def _reconcile_failed(self, err: BaseException) -> None:
        """A valid config that could not be applied: the last applied one keeps running."""
        message = f"not applied, running on revision {self.state.daemon.applied_revision}: {err}"
        self._rejection = f"the config cannot be applied: {err}"
        if self._logged_errors != {message}:
            logger.error("reconcile failed, keeping the last applied config: %s", err)
        self._logged_errors = frozenset({message})
        self._set_condition("Ready", "False", "ReconcileFailed", message)
        self._record_reload("error")

    def _config_rejected(self, err: ConfigError) -> None:
        issues = err.issues
        if self._git is not None:  # named as in the repository, not in the work tree
            shown = self._git.following.in_repository
            issues = [replace(issue, file=shown(issue.file)) for issue in issues]
        errors = [str(issue) for issue in issues]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        self._rejection = f"{len(errors)} config error(s): {errors[0] if errors else err}{more}"
        for line in errors:
            if line not in self._logged_errors:
                logger.error("config error, keeping the last good config: %s", line)
        self._logged_errors = frozenset(errors)
        self._set_condition(
            "ConfigError",
            "True",
            "InvalidConfig",
            f"{len(errors)} error(s); running on revision {self.state.daemon.applied_revision}",
            errors,
        )
        self._record_reload("error")

    def _record_reload(self, result: str) -> None:
        counts = self._reloads
        if result == "ok":
            self._reloads = replace(counts, ok=counts.ok + 1)
        else:
            self._reloads = replace(counts, failed=counts.failed + 1)
        daemon = self.state.daemon.model_copy(
            update={"last_reload_at": self._now(), "last_reload_result": result}
        )
        self.state = self.state.model_copy(update={"daemon": daemon})
        self._save()

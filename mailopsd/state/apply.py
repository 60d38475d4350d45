"""Applying a Plan: the ledger first (one transaction), then the state file.

If the process dies between the two, the next reconcile finds the ledger already up to
date and plans only what the state file still lacks, so applying is safe to repeat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mailopsd import reconcile
from mailopsd.config.loader import LoadedConfig
from mailopsd.progress import Progress
from mailopsd.reconcile import (
    CampaignAdded,
    CampaignChanged,
    CampaignRemoved,
    CredentialAdded,
    CredentialChanged,
    CredentialReenabled,
    CredentialRemoved,
    Desired,
    LeadsChanged,
    Plan,
    Snapshot,
    SuppressionListsChanged,
)
from mailopsd.refs import CredentialRef, credential_key
from mailopsd.state.ledger import Ledger
from mailopsd.state.observe import (
    DigestCache,
    SnapshotCache,
    build_desired,
    config_revision,
    fingerprint_key,
    leads_diffs,
    lists_diffs,
    observe,
)
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["Reconciler", "apply_plan"]

logger = logging.getLogger(__name__)


def _apply_to_ledger(plan: Plan, ledger: Ledger, now: datetime) -> None:
    puts: list[tuple[str, str, Snapshot]] = []  # credentials added or changed, in a row
    for action in plan.actions:
        if isinstance(action, CredentialAdded | CredentialChanged):
            puts.append((action.campaign_id, action.credential_id, action.snapshot))
            continue
        if puts:
            ledger.campaigns.put_credentials(puts, now)
            puts = []
        if isinstance(action, CampaignAdded | CampaignChanged):
            account = str(action.snapshot.get("account", "default"))
            ledger.campaigns.put(action.campaign_id, account, action.snapshot, now)
        elif isinstance(action, CampaignRemoved):
            ledger.campaigns.remove(action.campaign_id, now)
        elif isinstance(action, CredentialRemoved):
            ledger.campaigns.remove_credential(action.campaign_id, action.credential_id, now)
        elif isinstance(action, LeadsChanged):
            ledger.imports.apply_stage(
                action.campaign_id,
                action.stage,
                account=action.account,
                digest=action.digest,
                now=now,
            )
        elif isinstance(action, SuppressionListsChanged):
            ledger.suppression_lists.apply_stage(
                action.account,
                action.diff.stage,
                digest=action.digest,
                files=action.files,
                now=now,
            )
    if puts:
        ledger.campaigns.put_credentials(puts, now)


def _ids(action: object) -> CredentialRef:
    return (getattr(action, "campaign_id", ""), getattr(action, "credential_id", ""))


def _apply_to_state(plan: Plan, state: StateFile, now: datetime) -> StateFile:
    credentials = dict(state.credentials)
    for action in plan.actions:
        key = credential_key(*_ids(action))
        if isinstance(action, CredentialChanged) and key in credentials:
            # A changed credential gets another chance after AUTH failures.
            credentials[key] = credentials[key].model_copy(
                update={"auth_failures": 0, "auth_failed_at": None, "auth_failed_reason": None}
            )
        if isinstance(action, CredentialReenabled):
            credentials[key] = CredentialState(
                bounce_window_start=action.reenabled_at, reenabled_at=action.reenabled_at
            )
    daemon = state.daemon.model_copy(
        update={
            "applied_revision": plan.revision,
            "applied_content_hash": plan.content_hash,
            "applied_at": now,
        }
    )
    return state.model_copy(update={"credentials": credentials, "daemon": daemon})


def apply_plan(plan: Plan, *, ledger: Ledger, state: StateFile, now: datetime) -> StateFile:
    """Apply ``plan`` to the ledger and return the new state (the caller saves it)."""
    with ledger.transaction():
        _apply_to_ledger(plan, ledger, now)
    for action in plan.actions:
        # campaign and credential as fields of a JSON log line (describe() has them in text)
        about = {
            name: getattr(action, f"{name}_id")
            for name in ("campaign", "credential")
            if hasattr(action, f"{name}_id")
        }
        if isinstance(action, CredentialChanged) and action.moves_delivery:
            logger.warning("applied %s", action.describe(), extra=about)
        else:
            logger.info("applied %s", action.describe(), extra=about)
    return _apply_to_state(plan, state, now)


@dataclass
class Reconciler:
    """Plans and applies reconciles for one state directory, keeping the caches."""

    state_dir: Path
    ledger: Ledger | None
    digests: DigestCache
    create_key: bool = True
    progress: Progress | None = None
    _scratch: Ledger | None = field(default=None, init=False, repr=False)
    _key: bytes | None = field(default=None, init=False, repr=False)  # fingerprints' HMAC key
    _snapshots: SnapshotCache = field(default_factory=SnapshotCache, init=False, repr=False)
    # The desired state of the last plan, and of the last plan applied: the ledger's
    # campaigns and credentials change only by an applied plan (see reconcile.plan).
    _planned: Desired | None = field(default=None, init=False, repr=False)
    _applied: Desired | None = field(default=None, init=False, repr=False)

    def _staging(self) -> Ledger:
        """Where leads files are staged: the ledger, or without one a scratch ledger."""
        if self.ledger is not None:
            return self.ledger
        if self._scratch is None:
            self._scratch = Ledger.scratch()
        return self._scratch

    def plan(self, loaded: LoadedConfig, state: StateFile) -> Plan:
        """Compute the plan that brings the ledger and state file to ``loaded``.

        Changed leads files and suppression lists are staged in the ledger; the plan
        reads their rows from there, until the next plan stages them again.
        """
        observed = observe(self.ledger, state)
        if self._key is None:
            shared = (
                None if self.ledger is None else self.ledger.fingerprint_key(create=self.create_key)
            )
            self._key = shared or fingerprint_key(self.state_dir, create=self.create_key)
        desired = build_desired(
            loaded,
            key=self._key,
            revision=config_revision(loaded.files, loaded.revision),
            cache=self.digests,
            snapshots=self._snapshots,
        )
        leads = leads_diffs(self._staging(), loaded, desired, observed, progress=self.progress)
        lists = lists_diffs(self._staging(), loaded, desired, observed)
        planned = reconcile.plan(desired, observed, leads, lists, self._applied)
        self._planned = desired
        return planned

    def apply(self, plan: Plan, state: StateFile, now: datetime) -> StateFile:
        """Apply a plan; returns the new state (not yet saved)."""
        assert self.ledger is not None  # noqa: S101 - only a read-only plan has no ledger
        self._applied = None  # until the ledger has taken this plan
        applied = apply_plan(plan, ledger=self.ledger, state=state, now=now)
        self._applied = self._planned
        return applied

    def compare_all(self) -> None:
        """Compare everything with the ledger at the next plan (a periodic check)."""
        self._applied = None

"""Reconcile: the desired config and the observed state in, a Plan of typed actions out.

``plan`` is pure: it takes values and returns values, with no I/O and no clock of its
own. Applying a Plan (``mailopsd.state.apply``) updates the ledger and the state file;
planning again from the result gives an empty Plan. Removing a campaign or credential
stops new work on it and keeps its history.

Credentials are compared through fingerprints in which every secret is replaced by a
keyed digest, so a changed password is seen as changed without being kept anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.config.leads import LeadRow
from mailopsd.refs import CredentialRef

__all__ = [
    "Action",
    "CampaignAdded",
    "CampaignChanged",
    "CampaignRemoved",
    "CredentialAdded",
    "CredentialChanged",
    "CredentialReenabled",
    "CredentialRemoved",
    "Desired",
    "LeadRow",
    "LeadsChanged",
    "LeadsDiff",
    "LeadsFile",
    "ListsDiff",
    "Observed",
    "ObservedCredential",
    "Plan",
    "ReenableIgnored",
    "SuppressionListFiles",
    "SuppressionListsChanged",
    "ignored_reenables",
    "plan",
]

Snapshot = Mapping[str, object]
CHANGED_MARK = "(changed)"
_DELIVERY_FIELDS = ("smtp_host", "imap_host")


@dataclass(frozen=True)
class LeadsFile:
    """A campaign's leads file: its path as configured, and its digest."""

    path: str
    digest: str


@dataclass(frozen=True)
class LeadsDiff:
    """What a changed leads file changes, as the ledger compared it with the campaign's leads.

    The rows are compared where they are stored, never all held in memory: each part is a
    sequence that reads them when iterated. ``stage`` numbers the comparison: applying
    checks that it is still the campaign's latest (a file staged again needs a new plan).
    """

    stage: int = 0
    added: Sequence[LeadRow] = ()
    updated: Sequence[LeadRow] = ()
    removed: Sequence[str] = ()
    problems: Sequence[str] = ()


@dataclass(frozen=True)
class SuppressionListFiles:
    """An account's suppression lists: the files as configured, and their digest."""

    files: tuple[str, ...]
    digest: str


@dataclass(frozen=True)
class ListsDiff:
    """What an account's changed suppression lists change, as the ledger compared them.

    ``stage`` numbers the comparison, as for :class:`LeadsDiff`. The counts are of the
    entries added and removed; ``examples`` shows the first few, marked ``+`` or ``-``
    (``+@acme.example``, ``-ada@example.com``).
    """

    stage: int = 0
    added_addresses: int = 0
    removed_addresses: int = 0
    added_domains: int = 0
    removed_domains: int = 0
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Desired:
    """The desired state, from a valid config.

    Attributes:
        revision: The git commit of the config, or its content hash.
        content_hash: sha256 over the config files' bytes.
        campaigns: Campaign snapshots (no credentials, no secrets), by id.
        credentials: Credential fingerprints (secrets as keyed digests), by key.
        reenabled_at: The ``reenabled_at`` each credential's config holds.
        leads: Each campaign's leads file.
        secret_fields: Names of the fields holding secrets (shown only as changed).
        suppression_lists: Each account's suppression lists, by account.
        credential_parts: ``credentials`` by campaign, each part the object kept with an
            unchanged campaign (empty: grouped from ``credentials`` when planning).
    """

    revision: str
    content_hash: str
    campaigns: Mapping[str, Snapshot]
    credentials: Mapping[CredentialRef, Snapshot]
    reenabled_at: Mapping[CredentialRef, datetime | None]
    leads: Mapping[str, LeadsFile]
    secret_fields: frozenset[str] = frozenset()
    suppression_lists: Mapping[str, SuppressionListFiles] = field(default_factory=dict)
    credential_parts: Mapping[str, Mapping[CredentialRef, Snapshot]] = field(default_factory=dict)

    def parts(self) -> Mapping[str, Mapping[CredentialRef, Snapshot]]:
        """The credentials by campaign, in their order."""
        if self.credential_parts or not self.credentials:
            return self.credential_parts
        grouped: dict[str, dict[CredentialRef, Snapshot]] = {}
        for key, snapshot in self.credentials.items():
            grouped.setdefault(key[0], {})[key] = snapshot
        return grouped


@dataclass(frozen=True)
class ObservedCredential:
    """What the state file says of a credential."""

    disabled_at: datetime | None = None
    reenabled_at: datetime | None = None


@dataclass(frozen=True)
class Observed:
    """The observed state, from the ledger and the state file."""

    campaigns: Mapping[str, Snapshot] = field(default_factory=dict)
    credentials: Mapping[CredentialRef, Snapshot] = field(default_factory=dict)
    leads_digests: Mapping[str, str] = field(default_factory=dict)
    credential_states: Mapping[CredentialRef, ObservedCredential] = field(default_factory=dict)
    content_hash: str | None = None
    suppression_digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignAdded:
    """A campaign appears in the config."""

    campaign_id: str
    snapshot: Snapshot

    def describe(self) -> str:
        """One line for ``plan``."""
        return f"+ campaign {self.campaign_id} ({self.snapshot.get('name')})"


@dataclass(frozen=True)
class CampaignRemoved:
    """A campaign left the config: no new work; history kept."""

    campaign_id: str

    def describe(self) -> str:
        """One line for ``plan``."""
        return f"- campaign {self.campaign_id} (stops; its history is kept)"


@dataclass(frozen=True)
class CampaignChanged:
    """A campaign's settings changed."""

    campaign_id: str
    fields: tuple[str, ...]
    snapshot: Snapshot
    before: Snapshot

    def describe(self) -> str:
        """One line for ``plan`` (and what a removed variant means for its leads)."""
        changes = ", ".join(
            _change(name, self.before, self.snapshot, set()) for name in self.fields
        )
        notes = _removed_variants(self.before.get("sequence"), self.snapshot.get("sequence"))
        return f"~ campaign {self.campaign_id}: {changes}" + "".join(f"; {n}" for n in notes)


def _variant_names(sequence: object) -> list[list[str]]:
    """Each step's variant ids, in order, from a campaign snapshot's ``sequence``."""
    steps = sequence if isinstance(sequence, list) else []
    return [list(step.get("variants") or {}) if isinstance(step, dict) else [] for step in steps]


def _removed_variants(before: object, after: object) -> list[str]:
    """What becomes of the leads given a variant the config no longer declares."""
    notes = []
    for number, (old, new) in enumerate(
        zip(_variant_names(before), _variant_names(after), strict=False), start=1
    ):
        for name in (name for name in old if name not in new):
            instead = f"variant {new[0]}" if new else "the step's own subject and body"
            notes.append(
                f"step {number} variant {name} removed: leads given it get {instead} if they "
                "have not been sent that step yet (nothing is sent again)"
            )
    return notes


@dataclass(frozen=True)
class CredentialAdded:
    """A credential appears in a campaign."""

    campaign_id: str
    credential_id: str
    snapshot: Snapshot

    def describe(self) -> str:
        """One line for ``plan``."""
        where = f"{self.snapshot.get('smtp_host')}:{self.snapshot.get('smtp_port')}"
        mailbox = self.snapshot.get("mailbox")
        shared = f", shared mailbox {mailbox}" if mailbox is not None else ""
        return (
            f"+ credential {self.campaign_id}/{self.credential_id} "
            f"({self.snapshot.get('from_email')} via {where}{shared})"
        )


@dataclass(frozen=True)
class CredentialRemoved:
    """A credential left its campaign: no new work; history kept."""

    campaign_id: str
    credential_id: str

    def describe(self) -> str:
        """One line for ``plan``."""
        return f"- credential {self.campaign_id}/{self.credential_id} (stops; its history is kept)"


@dataclass(frozen=True)
class CredentialChanged:
    """A credential's settings changed; secrets are named, never shown."""

    campaign_id: str
    credential_id: str
    fields: tuple[str, ...]
    snapshot: Snapshot
    before: Snapshot
    secret_fields: frozenset[str] = frozenset()

    @property
    def moves_delivery(self) -> bool:
        """Tell whether the host a password is sent to changed."""
        return any(name in _DELIVERY_FIELDS for name in self.fields)

    def describe(self) -> str:
        """One line for ``plan``; the shared mailbox named first, a changed host called out."""
        changes = ", ".join(
            _change(name, self.before, self.snapshot, self.secret_fields)
            for name in self.fields
            if name != "mailbox"
        )
        old, new = self.before.get("mailbox"), self.snapshot.get("mailbox")
        if old == new:  # the mailbox's own settings changed, or the campaign's credential's
            shared = f" (shared mailbox {new}: in every campaign that names it)" if new else ""
            line = f"~ credential {self.campaign_id}/{self.credential_id}: {changes}{shared}"
        else:
            line = f"~ credential {self.campaign_id}/{self.credential_id}: "
            line += _mailbox_turn(old, new) + (f"; {changes}" if changes else "")
        if self.moves_delivery:
            line += " [!] the password now goes to a different host"
        return line


def _mailbox_turn(old: object, new: object) -> str:
    """How a credential's change of the shared mailbox it names reads in ``plan``."""
    if old is None:
        return f"now names shared mailbox {new}"
    if new is None:
        return f"no longer names shared mailbox {old}, has settings of its own"
    return f"shared mailbox {old} -> {new}"


@dataclass(frozen=True)
class LeadsChanged:
    """A campaign's leads file changed: only the difference is imported."""

    campaign_id: str
    account: str
    path: str
    digest: str
    stage: int = 0
    added: Sequence[LeadRow] = ()
    updated: Sequence[LeadRow] = ()
    removed: Sequence[str] = ()
    problems: Sequence[str] = ()

    def describe(self) -> str:
        """One line for ``plan``."""
        skipped = f", {len(self.problems)} rows skipped" if self.problems else ""
        return (
            f"~ leads {self.campaign_id}: +{len(self.added)} added, ~{len(self.updated)} "
            f"changed, -{len(self.removed)} removed{skipped} ({self.path})"
        )


_LIST_PARTS = (
    ("+", "added_addresses", "address", "addresses"),
    ("+", "added_domains", "domain", "domains"),
    ("-", "removed_addresses", "address", "addresses"),
    ("-", "removed_domains", "domain", "domains"),
)


@dataclass(frozen=True)
class SuppressionListsChanged:
    """An account's suppression lists changed (``digest`` ``None``: it has none now)."""

    account: str
    files: tuple[str, ...]
    digest: str | None
    diff: ListsDiff

    def describe(self) -> str:
        """One line for ``plan``: the entries added and removed, the files, a few examples."""
        counts = [
            f"{sign}{count} {one if count == 1 else many}"
            for sign, name, one, many in _LIST_PARTS
            if (count := getattr(self.diff, name))
        ]
        what = ", ".join(counts) or "no entry added or removed"
        shown = f": {', '.join(self.diff.examples)}" if self.diff.examples else ""
        files = ", ".join(self.files) or "no lists now"
        return f"~ suppression lists of account {self.account}: {what} ({files}){shown}"


@dataclass(frozen=True)
class CredentialReenabled:
    """A person set ``reenabled_at`` at or after the auto-disable: enable it again."""

    campaign_id: str
    credential_id: str
    reenabled_at: datetime
    disabled_at: datetime

    def describe(self) -> str:
        """One line for ``plan``."""
        return (
            f"^ re-enable {self.campaign_id}/{self.credential_id} (reenabled_at "
            f"{self.reenabled_at.isoformat()} >= disabled_at {self.disabled_at.isoformat()}; "
            "bounce window restarts)"
        )


@dataclass(frozen=True)
class ReenableIgnored:
    """A ``reenabled_at`` before the auto-disable it would end: it has no effect.

    It happens when a credential is disabled again after its last re-enable, and when
    a person writes a time before the disable. Not an action: nothing changes, but a
    person believes the credential is back, so plan, validate and the log say it.
    """

    campaign_id: str
    credential_id: str
    reenabled_at: datetime
    disabled_at: datetime


Action = (
    CampaignAdded
    | CampaignRemoved
    | CampaignChanged
    | CredentialAdded
    | CredentialRemoved
    | CredentialChanged
    | LeadsChanged
    | SuppressionListsChanged
    | CredentialReenabled
)


@dataclass(frozen=True)
class Plan:
    """What a reconcile would do: the actions, the revision they bring, what has no effect."""

    revision: str
    content_hash: str
    actions: tuple[Action, ...]
    ignored: tuple[ReenableIgnored, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Tell whether nothing would change."""
        return not self.actions

    def lines(self) -> list[str]:
        """One line per action, in the order they apply."""
        return [action.describe() for action in self.actions]


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_flat(value: object) -> bool:
    """Tell whether ``value`` is a mapping of plain values (``{start: 10, step: 5}``)."""
    return isinstance(value, dict) and not any(
        isinstance(item, dict | list) for item in value.values()
    )


def _flat(value: object) -> str:
    """A value of a plan line: a flat mapping as ``{key: value, ...}``."""
    if isinstance(value, dict):
        return _shown("{" + ", ".join(f"{key}: {item}" for key, item in value.items()) + "}", 80)
    return _shown(value)


def _change(
    name: str, before: Snapshot, after: Snapshot, secrets: set[str] | frozenset[str]
) -> str:
    if name in secrets:
        return f"{name} {CHANGED_MARK}"
    old, new = before.get(name), after.get(name)
    if isinstance(old, dict) and isinstance(new, dict) and _is_flat(old) and _is_flat(new):
        # A setting such as ramp or min_interval: each of its fields that changed.
        return ", ".join(
            f"{name}.{key} {_shown(old.get(key))} -> {_shown(new.get(key))}"
            for key in _changed_fields(new, old)  # in the order of the config as it is now
        )
    if isinstance(old, dict) and isinstance(new, dict):
        # A setting with a list in it (send_window's days): each field that changed, a
        # list or a nested mapping only as changed.
        return ", ".join(
            _change(f"{name}.{key}", _prefixed(name, old), _prefixed(name, new), frozenset())
            for key in _changed_fields(new, old)
        )
    if (
        isinstance(old, list)
        or isinstance(new, list)
        or not all(_is_flat(value) for value in (old, new) if isinstance(value, dict))
    ):
        return f"{name} {CHANGED_MARK}"
    return f"{name} {_flat(old)} -> {_flat(new)}"


def _prefixed(name: str, setting: Snapshot) -> Snapshot:
    """A setting's fields named as :func:`_change` names them (``send_window.days``)."""
    return {f"{name}.{key}": value for key, value in setting.items()}


def _changed_fields(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    if before == after:  # the common case, compared at C speed
        return ()
    names = list(dict.fromkeys([*before, *after]))
    return tuple(name for name in names if before.get(name) != after.get(name))


def _campaign_actions(
    desired: Desired, observed: Observed, applied: Desired | None
) -> list[Action]:
    actions: list[Action] = []
    last = applied.campaigns if applied is not None else {}
    for campaign_id, snapshot in desired.campaigns.items():
        before = observed.campaigns.get(campaign_id)
        if before is not None and last.get(campaign_id) is snapshot:
            continue  # the very snapshot the ledger was last given: unchanged
        if before is None:
            actions.append(CampaignAdded(campaign_id, snapshot))
        elif fields := _changed_fields(before, snapshot):
            actions.append(CampaignChanged(campaign_id, fields, snapshot, before))
    return actions


def _credential_actions(
    desired: Desired, observed: Observed, applied: Desired | None
) -> list[Action]:
    actions: list[Action] = []
    last_parts = applied.parts() if applied is not None else {}
    last = applied.credentials if applied is not None else {}
    in_ledger = observed.credentials.keys()
    for campaign_id, part in desired.parts().items():
        if last_parts.get(campaign_id) is part and part.keys() <= in_ledger:
            continue  # the very credentials the ledger was last given: unchanged
        for key, snapshot in part.items():
            before = observed.credentials.get(key)
            if before is not None and last.get(key) is snapshot:
                continue
            if before is None:
                actions.append(CredentialAdded(*key, snapshot))
            elif fields := _changed_fields(before, snapshot):
                actions.append(
                    CredentialChanged(*key, fields, snapshot, before, desired.secret_fields)
                )
    if not in_ledger <= desired.credentials.keys():  # a set comparison, at C speed
        removed = [key for key in observed.credentials if key not in desired.credentials]
        actions.extend(CredentialRemoved(*key) for key in removed)
    return actions


def _leads_actions(
    desired: Desired, observed: Observed, diffs: Mapping[str, LeadsDiff]
) -> list[Action]:
    actions: list[Action] = []
    for campaign_id, leads in desired.leads.items():
        diff = diffs.get(campaign_id)
        if observed.leads_digests.get(campaign_id) == leads.digest or diff is None:
            continue
        account = str(desired.campaigns.get(campaign_id, {}).get("account", "default"))
        actions.append(
            LeadsChanged(
                campaign_id,
                account,
                leads.path,
                leads.digest,
                diff.stage,
                diff.added,
                diff.updated,
                diff.removed,
                diff.problems,
            )
        )
    return actions


def _lists_actions(
    desired: Desired, observed: Observed, diffs: Mapping[str, ListsDiff]
) -> list[Action]:
    actions: list[Action] = []
    accounts = dict.fromkeys([*desired.suppression_lists, *observed.suppression_digests])
    for account in accounts:
        lists = desired.suppression_lists.get(account)
        digest = lists.digest if lists else None
        diff = diffs.get(account)
        if observed.suppression_digests.get(account) != digest and diff is not None:
            files = lists.files if lists else ()
            actions.append(SuppressionListsChanged(account, files, digest, diff))
    return actions


def _reenable_actions(desired: Desired, observed: Observed) -> list[Action]:
    actions: list[Action] = []
    for key, reenabled_at in desired.reenabled_at.items():
        state = observed.credential_states.get(key)
        if state is None or state.disabled_at is None or reenabled_at is None:
            continue
        if reenabled_at >= state.disabled_at:
            actions.append(CredentialReenabled(*key, reenabled_at, state.disabled_at))
    return actions


def ignored_reenables(
    reenabled_at: Mapping[CredentialRef, datetime | None],
    states: Mapping[CredentialRef, ObservedCredential],
) -> list[ReenableIgnored]:
    """Return each ``reenabled_at`` that is before its credential's ``disabled_at``.

    Args:
        reenabled_at: What each credential's config holds.
        states: What the state file says of each credential.
    """
    ignored = []
    for key, reenabled in reenabled_at.items():
        state = states.get(key)
        if state is None or state.disabled_at is None or reenabled is None:
            continue
        if reenabled < state.disabled_at:
            ignored.append(ReenableIgnored(*key, reenabled, state.disabled_at))
    return ignored


def plan(
    desired: Desired,
    observed: Observed,
    leads: Mapping[str, LeadsDiff] | None = None,
    lists: Mapping[str, ListsDiff] | None = None,
    applied: Desired | None = None,
) -> Plan:
    """Compute what it takes to bring the observed state to the desired one.

    Args:
        desired: From a valid config.
        observed: From the ledger and the state file.
        leads: For each campaign whose leads file changed (its digest differs from the
            ledger's), what it changes, as the ledger compared it.
        lists: For each account whose suppression lists changed (their digest differs
            from the ledger's, or they are gone), what they change, as compared there.
        applied: The desired state the ledger was given by the last plan applied: a
            snapshot (or a campaign's credentials) that is the very object it held is
            not compared again (a reload of one file among thousands compares only its
            own). The ledger's campaigns and credentials change only by applied plans.

    Returns:
        The actions, in the order they apply: campaigns, credentials, leads, suppression
        lists, re-enables, then removed campaigns; and the ``reenabled_at`` values that
        have no effect.
    """
    actions = [
        *_campaign_actions(desired, observed, applied),
        *_credential_actions(desired, observed, applied),
        *_leads_actions(desired, observed, leads or {}),
        *_lists_actions(desired, observed, lists or {}),
        *_reenable_actions(desired, observed),
    ]
    gone = [cid for cid in observed.campaigns if cid not in desired.campaigns]
    actions.extend(CampaignRemoved(campaign_id) for campaign_id in gone)
    ignored = ignored_reenables(desired.reenabled_at, observed.credential_states)
    return Plan(desired.revision, desired.content_hash, tuple(actions), tuple(ignored))

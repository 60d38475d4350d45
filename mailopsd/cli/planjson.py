"""The stable JSON form of a plan (``mailopsd plan --json``).

One object: the revision the plan brings and its actions in the order they apply. Each
action names what it does (``action``: add, change, remove, reenable), to what (``kind``:
campaign, credential, leads, suppression_lists), the ids involved, the details of its
kind, and ``text``, the line ``plan`` prints. A changed secret field is named with
``"secret": true`` and no values; nothing else of a credential's secrets is in the output.
"""

from __future__ import annotations

from typing import Any, assert_never

from mailopsd import reconcile

__all__ = ["plan_as_json"]

JsonObject = dict[str, Any]


def plan_as_json(plan: reconcile.Plan) -> JsonObject:
    """Return the plan as a JSON-ready mapping.

    Args:
        plan: What a reconcile would do.

    Returns:
        ``{"revision", "content_hash", "changes", "actions": [...]}``; ``changes`` tells
        whether there is anything to do.
    """
    return {
        "revision": plan.revision,
        "content_hash": plan.content_hash,
        "changes": not plan.is_empty,
        "actions": [_action(action) for action in plan.actions],
    }


def _action(action: reconcile.Action) -> JsonObject:
    # A match over the Action union: mypy flags a kind added to reconcile without a form.
    match action:
        case reconcile.CampaignAdded():
            shape = _campaign_added(action)
        case reconcile.CampaignRemoved():
            shape = _campaign_removed(action)
        case reconcile.CampaignChanged():
            shape = _campaign_changed(action)
        case reconcile.CredentialAdded():
            shape = _credential_added(action)
        case reconcile.CredentialRemoved():
            shape = _credential_removed(action)
        case reconcile.CredentialChanged():
            shape = _credential_changed(action)
        case reconcile.LeadsChanged():
            shape = _leads_changed(action)
        case reconcile.SuppressionListsChanged():
            shape = _lists_changed(action)
        case reconcile.CredentialReenabled():
            shape = _credential_reenabled(action)
        case _:
            assert_never(action)
    return {**shape, "text": action.describe()}


def _campaign_added(action: reconcile.CampaignAdded) -> JsonObject:
    return {
        "action": "add",
        "kind": "campaign",
        "campaign": action.campaign_id,
        "name": action.snapshot.get("name"),
    }


def _campaign_removed(action: reconcile.CampaignRemoved) -> JsonObject:
    return {"action": "remove", "kind": "campaign", "campaign": action.campaign_id}


def _campaign_changed(action: reconcile.CampaignChanged) -> JsonObject:
    return {
        "action": "change",
        "kind": "campaign",
        "campaign": action.campaign_id,
        "changes": _changes(action.fields, action.before, action.snapshot, frozenset()),
    }


def _credential_added(action: reconcile.CredentialAdded) -> JsonObject:
    return {
        "action": "add",
        "kind": "credential",
        "campaign": action.campaign_id,
        "credential": action.credential_id,
        "from_email": action.snapshot.get("from_email"),
        "smtp_host": action.snapshot.get("smtp_host"),
        "smtp_port": action.snapshot.get("smtp_port"),
    }


def _credential_removed(action: reconcile.CredentialRemoved) -> JsonObject:
    return {
        "action": "remove",
        "kind": "credential",
        "campaign": action.campaign_id,
        "credential": action.credential_id,
    }


def _credential_changed(action: reconcile.CredentialChanged) -> JsonObject:
    return {
        "action": "change",
        "kind": "credential",
        "campaign": action.campaign_id,
        "credential": action.credential_id,
        "changes": _changes(action.fields, action.before, action.snapshot, action.secret_fields),
        "moves_delivery": action.moves_delivery,
    }


def _leads_changed(action: reconcile.LeadsChanged) -> JsonObject:
    return {
        "action": "change",
        "kind": "leads",
        "campaign": action.campaign_id,
        "file": action.path,
        "added": len(action.added),
        "changed": len(action.updated),
        "removed": len(action.removed),
        "skipped": len(action.problems),
        "problems": list(action.problems),
    }


def _lists_changed(action: reconcile.SuppressionListsChanged) -> JsonObject:
    diff = action.diff
    return {
        "action": "change" if action.digest is not None else "remove",
        "kind": "suppression_lists",
        "account": action.account,
        "files": list(action.files),
        "added": {"addresses": diff.added_addresses, "domains": diff.added_domains},
        "removed": {"addresses": diff.removed_addresses, "domains": diff.removed_domains},
        "examples": list(diff.examples),
    }


def _credential_reenabled(action: reconcile.CredentialReenabled) -> JsonObject:
    return {
        "action": "reenable",
        "kind": "credential",
        "campaign": action.campaign_id,
        "credential": action.credential_id,
        "reenabled_at": action.reenabled_at.isoformat(),
        "disabled_at": action.disabled_at.isoformat(),
    }


def _changes(
    fields: tuple[str, ...],
    before: reconcile.Snapshot,
    after: reconcile.Snapshot,
    secret_fields: frozenset[str],
) -> list[JsonObject]:
    """Each changed field with its old and new value; a secret field only by name."""
    return [
        {"field": name, "secret": True}
        if name in secret_fields
        else {"field": name, "before": before.get(name), "after": after.get(name)}
        for name in fields
    ]

"""A mailbox shared by campaigns, as the ledger and the state file hold it: one part per use.

The ledger counts sends per campaign's credential, and the state file keeps an entry per
campaign's credential (``campaign/credential``); a mailbox declared under the top-level
``mailboxes`` and named by several campaigns is one sender behind several of them. Its
daily cap, ramp and ``min_interval`` hold across all its uses, and it stops in every
campaign when any use is disabled or stopped by AUTH failures. Here its parts are put
together, once for every reader: the dispatcher's budgets, ``status``, ``/metrics`` and
the API count the same way. Which credentials are uses of one mailbox is the caller's to
say (the running config's ``mailbox_uses``, or the ledger snapshots' ``mailbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.refs import CredentialRef, credential_key
from mailopsd.state.ledger import Ledger
from mailopsd.state.sends import UNUSED, CredentialUsage
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["UsageReads", "combine_usage", "mailbox_entry"]


def combine_usage(
    rows: Sequence[tuple[CredentialRef, CredentialUsage]],
) -> tuple[CredentialRef, CredentialUsage]:
    """The usage of a mailbox from its uses' usage rows (at least one).

    Returns:
        The use that sent last (whose recorded ``min_interval`` gap counts), and the
        usage: step-1 sends today added up, that last send and its gap, the first send
        of any use. One row is returned as it is.
    """
    if len(rows) == 1:
        return rows[0]
    last_use, last_row = max(rows, key=lambda row: row[1][2] or "")
    firsts = [row[4] for _, row in rows if row[4] is not None]
    sent = sum(row[1] for _, row in rows)
    return last_use, (last_row[0], sent, last_row[2], last_row[3], min(firsts, default=None))


def _latest(entries: Sequence[CredentialState], name: str) -> CredentialState | None:
    """The entry whose time ``name`` is the latest, among those that have one."""
    dated = [entry for entry in entries if getattr(entry, name) is not None]
    return max(dated, key=lambda entry: getattr(entry, name)) if dated else None


def mailbox_entry(
    state: StateFile, key: CredentialRef, uses: Sequence[CredentialRef]
) -> CredentialState:
    """A use's state-file entry, with what holds for its whole mailbox.

    The disable (the latest ``disabled_at`` of any use: a ``reenabled_at`` must be at
    or after it to end every use's), the stop by AUTH failures, the SMTP trouble it
    backs off for and the last re-enable applied (a ramp restarts from it) are the
    mailbox's; the bounce window and the IMAP fields stay the use's own. For a
    credential that is not shared (``uses`` is itself alone), its own entry.

    Args:
        state: The state file.
        key: The use: ``(campaign id, credential id)``.
        uses: Every use of its mailbox, ``key`` among them.
    """
    own = state.credential(credential_key(*key))
    if list(uses) == [key]:
        return own
    entries = [state.credential(credential_key(*use)) for use in uses]
    update: dict[str, object] = {}
    disabled = _latest(entries, "disabled_at")
    if disabled is not None:
        update.update(disabled_at=disabled.disabled_at, disabled_reason=disabled.disabled_reason)
    failed = _latest(entries, "auth_failed_at")
    if failed is not None:
        update.update(
            auth_failed_at=failed.auth_failed_at, auth_failed_reason=failed.auth_failed_reason
        )
    trouble = own if own.smtp_error is not None else _latest(entries, "smtp_error_since")
    if trouble is not None:
        update.update(smtp_error=trouble.smtp_error, smtp_error_since=trouble.smtp_error_since)
    reenabled = _latest(entries, "reenabled_at")
    if reenabled is not None:
        update["reenabled_at"] = reenabled.reenabled_at
    return own.model_copy(update=update)


@dataclass
class UsageReads:
    """The ledger's usage rows of one UTC day, each campaign's read once, and combined.

    Attributes:
        ledger: The ledger (read only).
        day_start: The UTC midnight of the day counted.
    """

    ledger: Ledger
    day_start: datetime
    _by_campaign: dict[str, dict[str, CredentialUsage]] = field(default_factory=dict)

    def of_campaign(self, campaign_id: str) -> dict[str, CredentialUsage]:
        """A campaign's usage rows, by credential id (see ``Sends.usage``)."""
        found = self._by_campaign.get(campaign_id)
        if found is None:
            found = self.ledger.sends.usage(campaign_id, self.day_start)
            self._by_campaign[campaign_id] = found
        return found

    def row(self, use: CredentialRef) -> CredentialUsage:
        """One campaign's credential's own usage row."""
        return self.of_campaign(use[0]).get(use[1], UNUSED)

    def usage(self, uses: Sequence[CredentialRef]) -> tuple[CredentialRef, CredentialUsage]:
        """The usage of the mailbox behind ``uses`` (see ``combine_usage``)."""
        return combine_usage([(use, self.row(use)) for use in uses])

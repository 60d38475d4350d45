"""A credential's health after bounces: the auto-disable written to the state file.

Called after every batch of bounces, wherever they were found (a 5xx at send time, a
delivery report in the mailbox): the rates are computed from the ledger over the bounce
window, each counting the addresses that bounced for one of its reasons (the campaign's
``bounce_reasons`` and ``block_reasons``), and, above the campaign's thresholds, the
credential gets ``disabled_at`` and ``disabled_reason`` in the state file, and is used no
more until a person re-enables it in its YAML. A mailbox shared by campaigns is judged in each
campaign on that campaign's sends against its thresholds, and once one of them disables
it, it is disabled in every campaign that names it: the entry of each use says why.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable
from datetime import datetime

from mailopsd.clock import utc_day_start
from mailopsd.config.loader import LoadedConfig
from mailopsd.health import policy
from mailopsd.refs import CredentialRef, credential_key
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["check_credentials"]

logger = logging.getLogger(__name__)


def check_credentials(
    ledger: Ledger,
    loaded: LoadedConfig,
    state: StateFile,
    keys: Iterable[CredentialRef],
    now: datetime,
) -> StateFile:
    """Disable each of ``keys`` whose bounce or block rate is over its campaign's threshold."""
    credentials = dict(state.credentials)
    for campaign_id, credential_id in sorted(set(keys)):
        campaign = loaded.config.campaigns.get(campaign_id)
        if campaign is None or credential_id not in campaign.smtp_credentials:
            continue
        name = credential_key(campaign_id, credential_id)
        entry = credentials.get(name, CredentialState())
        credential = campaign.smtp_credentials[credential_id]
        if entry.is_disabled(credential.reenabled_at):
            continue
        since = policy.window_start(campaign.bounce_window, entry.bounce_window_start, now)
        day_start = utc_day_start(now)
        counts = ledger.sends.counts(
            campaign_id,
            credential_id,
            day_start=day_start,
            window_start=since,
            reasons=campaign.counted_reasons,
        )
        reason = policy.disable_reason(
            campaign, bounces=counts.bounces_in_window, sends=counts.sends_in_window, since=since
        ) or policy.block_reason(
            campaign, blocks=counts.blocks_in_window, sends=counts.sends_in_window, since=since
        )
        if reason is None:
            continue
        logger.error(
            "credential disabled campaign=%s credential=%s%s reason=%s; re-enable with "
            "reenabled_at in its YAML (mailopsd reenable %s %s --config %s)",
            campaign_id,
            credential_id,
            f" mailbox={credential.shared_as}" if credential.shared_as is not None else "",
            reason,
            campaign_id,
            credential_id,
            shlex.quote(str(loaded.config_path)),
        )
        uses = [(campaign_id, credential_id)]
        if credential.shared_as is not None:
            reason += (
                f" in campaign {campaign_id}; shared mailbox {credential.shared_as} is disabled "
                "in every campaign that names it"
            )
            uses = list(loaded.config.mailbox_uses.get(credential.shared_as, uses))
        for use in uses:
            key = credential_key(*use)
            kept = credentials.get(key, CredentialState())
            if not kept.is_disabled(credential.reenabled_at):
                credentials[key] = kept.model_copy(
                    update={"disabled_at": now, "disabled_reason": reason}
                )
    return state.model_copy(update={"credentials": credentials})

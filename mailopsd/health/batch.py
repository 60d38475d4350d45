"""The bounce and block rates inside a sending batch: may a credential go on after a 5xx?

The check after a batch (:mod:`mailopsd.health.autodisable`) comes too late to spare the
rest of a batch sent to a bad list. So the dispatcher asks a :class:`BounceCheck` after
each 5xx of a credential's batch, with the reply's diagnosis: a refusal whose reason the
campaign counts toward its bounce rate (``bounce_reasons``, by default every hard
bounce) or its block rate (``block_reasons``, by default every block) is added to those
of the bounce window, and once a rate is over its threshold the rest of the batch is not
attempted (the state file is written after the batch, as always). A refusal counted
toward neither (a ``soft`` one, by default) changes nothing.

The ledger is unchanged while a batch is out (outcomes are recorded after it), so
reading it at the first counted 5xx gives what reading it before the batch would; most
batches have none and read nothing. The ledger's connection belongs to the main thread: the
sending thread opens its own, read-only. A ledger that cannot be read gives the reason
instead, and the batch stops.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mailopsd.clock import utc_day_start
from mailopsd.config.models import Campaign
from mailopsd.config.reasons import Rate
from mailopsd.diagnosis import Diagnosis
from mailopsd.errors import StateError
from mailopsd.health import policy
from mailopsd.refs import CredentialRef, credential_key
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import StateFile

__all__ = ["DISABLED", "RATE_UNKNOWN", "BounceCheck"]

DISABLED = "credential disabled: "
"""How the reason to stop a batch begins when the credential went over its threshold."""
RATE_UNKNOWN = "bounce rate unknown"
"""How the reason to stop a batch begins when the bounce window could not be read."""


class BounceCheck:
    """One credential's bounce and block rates during one batch, read at its first counted 5xx.

    Made on the main thread (which reads the state file), asked from the sending thread.
    """

    def __init__(
        self,
        directory: Path,
        key: CredentialRef,
        campaign: Campaign,
        *,
        since: datetime,
        day_start: datetime,
    ) -> None:
        self._directory = directory
        self._key = key
        self._campaign = campaign
        self._since = since
        self._day_start = day_start
        self._sends: int | None = None  # in the window, this tick's intents included
        self._counted = {Rate.BOUNCE: 0, Rate.BLOCK: 0}

    @classmethod
    def of(
        cls,
        directory: Path,
        key: CredentialRef,
        campaign: Campaign,
        state: StateFile,
        now: datetime,
    ) -> BounceCheck:
        """The check of ``key``'s batch at ``now``, its window as the state file has it.

        Args:
            directory: The directory of the ledger, opened read-only at the first 5xx.
            key: The credential, ``(campaign, credential)``.
            campaign: Its campaign (the bounce window, threshold and minimum sends).
            state: The state file (a re-enable restarts the window).
            now: The time of the tick.

        Returns:
            A check that has read nothing yet.
        """
        entry = state.credential(credential_key(*key))
        since = policy.window_start(campaign.bounce_window, entry.bounce_window_start, now)
        return cls(directory, key, campaign, since=since, day_start=utc_day_start(now))

    def after_refusal(self, diagnosis: Diagnosis, *, unsent: int) -> str | None:
        """Count one more 5xx of the batch, as its reason says; say whether the rest may go.

        Args:
            diagnosis: The reply's reason and class (``diagnosis.reply_diagnosis``).
            unsent: The batch's sends after this one: their intents are in the ledger,
                counted among the window's sends, but they have not gone out.

        Returns:
            ``None`` to go on, else why the rest of the batch is not attempted
            (``credential disabled: bounce rate ...``, ``credential disabled: block rate
            ...`` or ``bounce rate unknown (...)``).
        """
        campaign = self._campaign
        rate = campaign.counted_reasons.rate_of(diagnosis.reason, diagnosis.kind)
        if rate is None:
            return None
        if self._sends is None:
            found = self._read()
            if isinstance(found, str):
                return f"{RATE_UNKNOWN} ({found})"
            self._sends, self._counted[Rate.BOUNCE], self._counted[Rate.BLOCK] = found
        self._counted[rate] += 1
        sends, since = self._sends - unsent, self._since
        verdict = policy.disable_reason(
            campaign, bounces=self._counted[Rate.BOUNCE], sends=sends, since=since
        ) or policy.block_reason(
            campaign, blocks=self._counted[Rate.BLOCK], sends=sends, since=since
        )
        return None if verdict is None else f"{DISABLED}{verdict}"

    def _read(self) -> tuple[int, int, int] | str:
        """The window's sends, bounces and blocks, or why they could not be read."""
        try:
            ledger = Ledger.open_readonly(self._directory)
            if ledger is None:
                return "no ledger"
            try:
                counts = ledger.sends.counts(
                    *self._key,
                    day_start=self._day_start,
                    window_start=self._since,
                    reasons=self._campaign.counted_reasons,
                )
            finally:
                ledger.close()
        except StateError as err:  # the storage errors included
            return str(err)
        return counts.sends_in_window, counts.bounces_in_window, counts.blocks_in_window

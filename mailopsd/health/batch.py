"""The bounce rate inside a sending batch: may a credential go on after a 5xx?

The check after a batch (:mod:`mailopsd.health.autodisable`) comes too late to spare the
rest of a batch sent to a bad list. So the dispatcher asks a :class:`BounceCheck` after
each 5xx of a credential's batch: it adds the batch's hard bounces to those of the bounce
window, and once the rate is over the campaign's threshold the rest of the batch is not
attempted (the state file is written after the batch, as always).

The ledger is unchanged while a batch is out (outcomes are recorded after it), so
reading it at the first 5xx gives what reading it before the batch would; most batches
have no 5xx and read nothing. The ledger's connection belongs to the main thread: the
sending thread opens its own, read-only. A ledger that cannot be read gives the reason
instead, and the batch stops.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mailopsd.clock import utc_day_start
from mailopsd.config.models import Campaign
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
    """One credential's bounce rate during one batch, read lazily at its first 5xx.

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
        self._bounces = 0

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

    def after_bounce(self, *, unsent: int) -> str | None:
        """Count one more hard bounce of the batch; say whether the rest may be sent.

        Args:
            unsent: The batch's sends after this one: their intents are in the ledger,
                counted among the window's sends, but they have not gone out.

        Returns:
            ``None`` to go on, else why the rest of the batch is not attempted
            (``credential disabled: bounce rate ...`` or ``bounce rate unknown (...)``).
        """
        if self._sends is None:
            found = self._read()
            if isinstance(found, str):
                return f"{RATE_UNKNOWN} ({found})"
            self._sends, self._bounces = found
        self._bounces += 1
        verdict = policy.disable_reason(
            self._campaign, bounces=self._bounces, sends=self._sends - unsent, since=self._since
        )
        return None if verdict is None else f"{DISABLED}{verdict}"

    def _read(self) -> tuple[int, int] | str:
        """The window's sends and hard bounces, or why they could not be read."""
        try:
            ledger = Ledger.open_readonly(self._directory)
            if ledger is None:
                return "no ledger"
            try:
                counts = ledger.sends.counts(
                    *self._key, day_start=self._day_start, window_start=self._since
                )
            finally:
                ledger.close()
        except StateError as err:  # the storage errors included
            return str(err)
        return counts.sends_in_window, counts.bounces_in_window

"""What a tick did: outcomes by kind and by credential, and why sends were not sent.

The daemon adds its ticks' reports up for the ``dispatched`` log line and ``mailopsd run``
prints them. A send that was not attempted is ``not_sent`` with a detail saying why,
``not attempted: <cause>``: an earlier send of its batch failed, its credential went over
its bounce threshold in the batch (:mod:`mailopsd.health.batch`), or mailopsd was stopping.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mailopsd.health import batch
from mailopsd.lifecycle import SendOutcome
from mailopsd.refs import CredentialRef
from mailopsd.smtp.transport import Outcome

__all__ = ["NOT_ATTEMPTED", "NOT_SENT_REASONS", "STOPPING", "TickReport", "not_sent_reason"]

# Why a send was ``not_sent``, as the ``dispatched`` log line counts them:
# ``not_sent_<reason>=N``. The mailbox's own line (``smtp unavailable ...``, ``smtp auth
# failed ...``) says what its server answered.
NOT_SENT_REASONS = {
    "smtp_unavailable": "the server could not be reached, or failed or hung up before the "
    "message (a 4xx, a 421, a refused or lost connection, no STARTTLS)",
    "server_refused": "the server refused the session or the sender with a 5xx before the "
    "lead's address (e.g. a from_email the login may not send as)",
    "after_failure": "not attempted: an earlier send of the same mailbox in this batch "
    "failed (server trouble or login), so the rest of its batch waits for the next try",
    "credential_disabled": "not attempted: the mailbox passed its bounce threshold in this "
    "batch and was disabled",
    "bounce_rate_unknown": "not attempted: the mailbox's bounce rate could not be read after "
    "a bounce, so its batch stopped",
    "stopping": "not attempted: mailopsd was stopping",
}
NOT_ATTEMPTED = "not attempted: "
"""How the detail of a send not attempted begins."""
STOPPING = "mailopsd is stopping"
"""The cause of a send not attempted because mailopsd was stopping."""


def not_sent_reason(outcome: Outcome) -> str:
    """Which of ``NOT_SENT_REASONS`` a ``not_sent`` outcome is."""
    if outcome.detail.startswith(NOT_ATTEMPTED):
        cause = outcome.detail.removeprefix(NOT_ATTEMPTED)
        if cause == STOPPING:
            return "stopping"
        if cause.startswith(batch.DISABLED):
            return "credential_disabled"
        return "bounce_rate_unknown" if cause.startswith(batch.RATE_UNKNOWN) else "after_failure"
    if outcome.code is not None and outcome.code >= 500:
        return "server_refused"
    return "smtp_unavailable"


@dataclass
class TickReport:
    """What one tick (or several, added up) did.

    Attributes:
        assigned: Sends assigned.
        outcomes: Outcomes by kind.
        not_sent: ``not_sent`` outcomes by reason, in the order of ``NOT_SENT_REASONS``.
        sends: Outcomes by ``(campaign, credential, kind)``.
        failed_leads: Leads failed before any send (a template error), by campaign.
    """

    assigned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    not_sent: Counter[str] = field(default_factory=Counter)
    sends: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failed_leads: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """``sent=3 not_sent=2 not_sent_smtp_unavailable=1 not_sent_after_failure=1``.

        Outcomes by kind, then what was not sent by reason (see ``NOT_SENT_REASONS``).
        """
        counts = [f"{kind}={n}" for kind, n in sorted(self.outcomes.items())]
        reasons = [f"not_sent_{why}={self.not_sent[why]}" for why in self.not_sent]
        return " ".join(counts + reasons)

    def count(self, results: list[tuple[CredentialRef, Outcome]]) -> None:
        """Count a tick's outcomes, each with its credential."""
        self.outcomes.update(outcome.kind.value for _, outcome in results)
        reasons = Counter(
            not_sent_reason(outcome)
            for _, outcome in results
            if outcome.kind == SendOutcome.NOT_SENT
        )
        self.not_sent.update({why: reasons[why] for why in NOT_SENT_REASONS if reasons[why]})
        self.sends.update((*key, outcome.kind.value) for key, outcome in results)

    def add(self, other: TickReport) -> None:
        """Add another tick's report to this one."""
        self.assigned += other.assigned
        self.outcomes.update(other.outcomes)
        self.not_sent.update(other.not_sent)
        self.sends.update(other.sends)
        self.failed_leads.update(other.failed_leads)

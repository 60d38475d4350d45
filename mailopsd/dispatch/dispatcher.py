"""The dispatcher: one tick sends what is due now, at most once per lead and step.

A tick, for each campaign whose window is open: follow-ups due (each on the credential
that sent step 1; it waits if that one cannot send), then new leads (rotation picks the
credential), each within its campaign's per-domain daily cap
(:mod:`mailopsd.dispatch.domains`) and in the variant of the step the lead was given
(:mod:`mailopsd.dispatch.variants`); at most ``sends_per_tick`` sends in all, campaigns
taking turns. Every send's intent is committed to the ledger before any message leaves;
outcomes are committed after. A send whose intent has no outcome (the process died, or
the connection broke after the message went out) is marked ``unknown`` and never sent
again (:mod:`mailopsd.dispatch.recovery`); what a batch's outcomes do to its credentials
(AUTH failures, backoff) is in :mod:`mailopsd.dispatch.outcomes`. Sends of different
credentials run concurrently in a bounded pool; one
credential's sends go one after the other on its kept-open connection.

A 5xx to the lead's RCPT or to the message stops the lead's sequence; the reply is read
as a delivery report's is (:func:`mailopsd.diagnosis.reply_diagnosis`) and recorded as a
bounce with its reason and class: ``hard`` (the address is gone: it is suppressed for
the account), ``block`` (the sender was refused: it counts toward the block rate, the
address is kept) or ``soft`` (recorded only). After each 5xx a batch asks
:mod:`mailopsd.health.batch` whether its credential may go on; after the tick,
:mod:`mailopsd.health.autodisable` checks the credentials that bounced. With ``dry_run``
(a forecast) nothing is delivered: every send is recorded as sent. A
credential with ``verp_domain`` sends each message with its send's token
(:mod:`mailopsd.sendtokens`) in ``MAIL FROM`` and a header, made once the intent's row
gives the send id.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from mailopsd import sendtokens
from mailopsd.clock import utc_day_start
from mailopsd.config import pacing
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Campaign, Credential
from mailopsd.diagnosis import Diagnosis, reply_diagnosis
from mailopsd.dispatch import progression, recovery, report, variants
from mailopsd.dispatch.budgets import TickUsage, credential_budgets
from mailopsd.dispatch.compose import compose, link_settings
from mailopsd.dispatch.domains import DomainQuota
from mailopsd.dispatch.outcomes import SERVER_TROUBLE, credential_outcomes
from mailopsd.dispatch.report import TickReport
from mailopsd.dispatch.rotation import Picker
from mailopsd.dispatch.zones import CampaignZones
from mailopsd.errors import describe_unexpected
from mailopsd.health import autodisable, batch, effects
from mailopsd.lifecycle import LeadState, MailKind, SendOutcome
from mailopsd.refs import CredentialRef
from mailopsd.smtp.message import ComposeError, Outgoing, with_send_token
from mailopsd.smtp.transport import Outcome, SandboxTransport, SmtpTransport
from mailopsd.state import sendkey
from mailopsd.state.errors import StorageLeasesLostError
from mailopsd.state.leads import LeadProgress
from mailopsd.state.ledger import Ledger
from mailopsd.state.sends import Intent
from mailopsd.state.statefile import StateFile

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often a tick waiting on slow servers tells the service manager it is alive."""

# A credential's batch stops at these: the rest waits (see outcomes.SERVER_TROUBLE).
_STOPS_BATCH = frozenset({SendOutcome.AUTH_FAILED, *SERVER_TROUBLE})
_NEVER = datetime.min.replace(tzinfo=UTC)


def _diagnosis(outcome: Outcome) -> Diagnosis:
    """The reason and class of a 5xx reply, read as a delivery report's would be."""
    return reply_diagnosis(outcome.code or 0, outcome.detail)


@dataclass(slots=True)
class _Job:
    """One send of the tick (its send id and time are set once its intent is recorded)."""

    key: CredentialRef
    campaign: Campaign
    credential: Credential
    lead: LeadProgress
    outgoing: Outgoing
    send_id: int = 0
    at: datetime = _NEVER

    def intent(self, at: datetime) -> Intent:
        """The intent of this send, recorded at ``at`` with the gap drawn after it."""
        campaign_id, credential_id = self.key
        return Intent(
            campaign_id,
            credential_id,
            self.lead.email,
            self.lead.step + 1,
            self.outgoing.message_id,
            self.outgoing.subject,
            at,
            pacing.gap_after(
                self.credential.min_interval,
                campaign_id=campaign_id,
                credential_id=credential_id,
                at=at,
            ),
            self.lead.variants.get(str(self.lead.step + 1)),
        )


@dataclass
class Dispatcher:
    """Sends due work; keeps connections and per-credential backoff between ticks."""

    ledger: Ledger
    state_dir: Path
    smtp: SmtpTransport = field(default_factory=SmtpTransport)
    workers: int = 8
    batch_per_credential: int = 50
    sends_per_tick: int = 2000
    max_attempts: int = 5
    token: Callable[[], str] = field(default=lambda: secrets.token_hex(16))
    heartbeat: Callable[[], None] = field(default=lambda: None)
    dry_run: bool = False
    """Deliver nothing anywhere: every send is taken as sent (a forecast's ticks)."""
    send_key: bytes | None = field(default=None, repr=False)
    """The send-token key (``state.sendkey``); read from ``state_dir`` when first needed
    if not given."""
    _backoff: dict[CredentialRef, tuple[datetime, int]] = field(default_factory=dict)
    """Until when each sender (``refs.sender_ref``: a shared mailbox is one) waits."""
    _pool: ThreadPoolExecutor | None = None
    _turn: int = 0
    _zones: CampaignZones | None = None
    _recovered: int = 0
    """The ledger's session whose sends without an outcome :meth:`recover` marked."""
    _checked: int = 0
    """The ledger's session whose credentials :meth:`check_shared` checked."""

    @property
    def sandbox(self) -> SandboxTransport:
        """Where sandbox credentials deliver."""
        return SandboxTransport(self.state_dir / "sandbox")

    @property
    def archive(self) -> SandboxTransport:
        """Where credentials with ``archive: true`` keep a copy of what they sent."""
        return SandboxTransport(self.state_dir / "archive")

    # Recovery ---------------------------------------------------------------------------

    def recover(
        self, loaded: LoadedConfig, now: datetime, campaigns: frozenset[str] | None = None
    ) -> int:
        """Mark sends left without an outcome ``unknown`` (see :func:`recovery.recover`).

        Only ``campaigns``' if given (on a shared ledger, those whose leases were just
        taken); else every campaign's, on this session of the ledger.
        """
        if campaigns is None:
            self._recovered = self.ledger.sessions
        return recovery.recover(self.ledger, loaded, now, campaigns)

    def check_shared(
        self,
        loaded: LoadedConfig,
        state: StateFile,
        now: datetime,
        campaigns: frozenset[str] | None = None,
    ) -> StateFile:
        """On a shared ledger, check the credentials' rates before their first send.

        A daemon that takes over from another may lack a ``disabled_at`` the other wrote
        just before it stopped: the rates, counted from the ledger they share, disable
        again what is over its threshold. Only ``campaigns``' if given.
        """
        if campaigns is None:
            self._checked = self.ledger.sessions
        if self.ledger.dialect.name != "postgresql":
            return state
        keys = [
            (campaign_id, credential_id)
            for campaign_id, campaign in loaded.config.campaigns.items()
            if campaigns is None or campaign_id in campaigns
            for credential_id in campaign.smtp_credentials
        ]
        return autodisable.check_credentials(self.ledger, loaded, state, keys, now)

    # Planning the tick -------------------------------------------------------------------

    def _assign(
        self, loaded: LoadedConfig, state: StateFile, now: datetime, held: frozenset[str] | None
    ) -> tuple[list[_Job], list[LeadProgress]]:
        """Choose and compose this tick's sends, at most ``sends_per_tick`` in all.

        The cap is for all campaigns together, so that the messages a tick holds in
        memory, and the pause in sending while they are prepared, do not grow with the
        number of campaigns. Campaigns take turns: the next tick starts after the last
        campaign this one reached, or, when it reached them all, with the one after the
        campaign it started with, so that no campaign is always served first (a shared
        mailbox's budget passes from one campaign that names it to the next). A tick
        that finds nothing to do moves no turn. With ``held``, only those campaigns.
        """
        reads = TickUsage(self.ledger, loaded.config, utc_day_start(now))
        jobs: list[_Job] = []
        failed: list[LeadProgress] = []
        order = [
            (campaign_id, campaign)
            for campaign_id, campaign in loaded.config.campaigns.items()
            if held is None or campaign_id in held
        ]
        start = self._turn % len(order) if order else 0
        rotated = order[start:] + order[:start]
        reads.order = {campaign_id: place for place, (campaign_id, _) in enumerate(rotated)}
        reached = 0
        while reached < len(rotated) and len(jobs) + len(failed) < self.sends_per_tick:
            campaign_id, campaign = rotated[reached]
            reached += 1
            left = self.sends_per_tick - len(jobs) - len(failed)
            for credential_id, lead in self._choose(reads, campaign_id, campaign, state, now, left):
                job = self._compose(loaded, campaign_id, credential_id, lead, now)
                if isinstance(job, _Job):
                    jobs.append(job)
                else:
                    failed.append(job)
        if jobs or failed:  # a tick that found nothing to do gives no campaign its turn
            self._turn = start + (reached if reached < len(rotated) else 1)
        return jobs, failed

    def _choose(
        self,
        reads: TickUsage,
        campaign_id: str,
        campaign: Campaign,
        state: StateFile,
        now: datetime,
        left: int,
    ) -> list[tuple[str, LeadProgress]]:
        """Up to ``left`` of a campaign's due sends, each with its credential.

        Only the leads whose window is open now: the campaign's, or with per-lead time
        zones the leads in the zones open now (:mod:`mailopsd.dispatch.zones`).
        """
        if self._zones is None:
            self._zones = CampaignZones(self.ledger)
        zones = self._zones.open(campaign_id, campaign, now)
        if zones == []:
            return []
        budgets = credential_budgets(
            reads,
            campaign_id,
            campaign,
            state=state,
            backoff=self._backoff,
            per_tick=self.batch_per_credential,
            now=now,
        )
        if not budgets:
            return []
        picker = Picker.of(budgets.values())
        quota = DomainQuota.of(self.ledger, campaign_id, campaign, now)
        chosen: list[tuple[str, LeadProgress]] = []
        limit = min(self.batch_per_credential * len(budgets), left)
        due = self.ledger.leads.due_followups(
            campaign_id,
            campaign.account,
            now,
            credentials=sorted(budgets),
            limit=limit,
            domain_cap=quota.cap,
            zones=zones,
        )
        for lead in quota.admitted(due):
            if lead.credential_id is not None and picker.follow_up(lead.credential_id):
                quota.use(lead.email)
                chosen.append((lead.credential_id, lead))
        # Read only the new leads the picker can place: each read lead costs a parse.
        room = min(sum(budget.step1_room() for budget in budgets.values()), left - len(chosen))
        new = self.ledger.leads.new(
            campaign_id, campaign.account, now, room, domain_cap=quota.cap, zones=zones
        )
        for lead in quota.admitted(new):
            budget = picker.pick()
            if budget is None:
                break
            quota.use(lead.email)
            chosen.append((budget.credential_id, lead))
        reads.carry(campaign, budgets)
        return chosen

    def _compose(
        self,
        loaded: LoadedConfig,
        campaign_id: str,
        credential_id: str,
        lead: LeadProgress,
        now: datetime,
    ) -> _Job | LeadProgress:
        campaign = loaded.config.campaigns[campaign_id]
        credential = campaign.smtp_credentials[credential_id]
        versions = variants.assigned(campaign_id, campaign, lead.email, lead.variants, lead.step)
        lead = replace(lead, variants=versions)
        variant = versions.get(str(lead.step + 1))
        try:
            outgoing = compose(
                campaign,
                credential,
                step_index=lead.step,
                variant=variant,
                body_template=loaded.body(campaign_id, lead.step, variant),
                email=lead.email,
                fields=lead.fields,
                first_subject=lead.first_subject,
                earlier_ids=lead.message_ids,
                now=now,
                token=self.token(),
                links=link_settings(
                    loaded.config.http,
                    campaign_id=campaign_id,
                    campaign=campaign,
                    credential=credential,
                ),
            )
        except ComposeError as err:
            logger.error(
                "lead failed campaign=%s credential=%s lead=%s error=%s",
                campaign_id,
                credential_id,
                lead.email,
                err,
            )
            return replace(lead, state=LeadState.FAILED, last_error=str(err))
        return _Job((campaign_id, credential_id), campaign, credential, lead, outgoing)

    def _with_token(self, job: _Job, verp_domain: str) -> Outgoing:
        """The job's message with its send's token in ``MAIL FROM`` and a header (VERP).

        The token needs the send id, which the intent's row gives: it is made after the
        intent is recorded and before the message leaves.
        """
        if self.send_key is None:
            self.send_key = sendkey.load_send_key(self.state_dir)
        token = sendtokens.make(self.send_key, job.send_id, job.outgoing.message_id)
        return with_send_token(job.outgoing, token=token, verp_domain=verp_domain)

    # Sending ----------------------------------------------------------------------------

    def _deliver_group(
        self,
        jobs: list[_Job],
        ca_files: dict[CredentialRef, Path | None],
        should_stop: Callable[[], bool],
        check: batch.BounceCheck | None = None,
    ) -> list[tuple[_Job, Outcome]]:
        """Send one credential's jobs in order, on its connection.

        After each 5xx ``check`` is asked whether the credential's bounce and block
        rates allow the rest; once one is over its threshold (or they cannot be read) the
        rest is not attempted.
        """
        results: list[tuple[_Job, Outcome]] = []
        blocked: Outcome | None = None
        for position, job in enumerate(jobs):
            if blocked is not None or should_stop():
                self.smtp.settle(job.key)  # the envelope sent ahead, if any, goes no further
                reason = blocked.detail if blocked else report.STOPPING
                results.append(
                    (job, Outcome(SendOutcome.NOT_SENT, None, f"{report.NOT_ATTEMPTED}{reason}"))
                )
                continue
            then = jobs[position + 1].outgoing if position + 1 < len(jobs) else None
            outcome = self._send(job, ca_files.get(job.key), then)
            if job.credential.archive and outcome.kind == SendOutcome.SENT and not self.dry_run:
                self.archive.deliver(job.key, job.credential, None, job.outgoing)
            if outcome.kind in _STOPS_BATCH:
                blocked = outcome
            if outcome.kind == SendOutcome.BOUNCED and check is not None:
                halt = check.after_refusal(_diagnosis(outcome), unsent=len(jobs) - position - 1)
                if halt is not None:
                    blocked = Outcome(SendOutcome.NOT_SENT, None, halt)
            results.append((job, outcome))
        return results

    def _send(self, job: _Job, ca_file: Path | None, then: Outgoing | None) -> Outcome:
        """Send one job; an SMTP send's exception is its credential's outcome, not the end.

        The transport turns SMTP and network trouble into outcomes itself; what escapes
        it is a bug, at a stage unknown here, so the message may have gone out: it is
        ``unknown`` and never sent again. It is logged by type and place only, as its
        text may quote a password.
        """
        if self.dry_run:
            return Outcome(SendOutcome.SENT, 250, "forecast: nothing was sent")
        if job.credential.status == "sandbox":  # the state directory failing pauses all work
            return self.sandbox.deliver(job.key, job.credential, None, job.outgoing)
        try:
            return self.smtp.deliver(job.key, job.credential, ca_file, job.outgoing, then)
        except Exception as err:  # one credential's trouble must not stop the others
            what = describe_unexpected(err)
            logger.error(
                "send failed unexpectedly campaign=%s credential=%s step=%d error=%s "
                "outcome=unknown (never sent again; a bug to report)",
                *job.key,
                job.lead.step + 1,
                what,
            )
            self.smtp.drop(job.key)
            return Outcome(SendOutcome.UNKNOWN, None, f"unexpected {what}")

    def _deliver(
        self,
        jobs: list[_Job],
        loaded: LoadedConfig,
        should_stop: Callable[[], bool],
        state: StateFile,
        now: datetime,
    ) -> list[tuple[_Job, Outcome]]:
        groups: dict[CredentialRef, list[_Job]] = defaultdict(list)
        for job in jobs:
            groups[job.key].append(job)
        ca_files = {
            key: (
                loaded.credential_dir(key[0], group[0].credential) / group[0].credential.tls_ca_file
            )
            if group[0].credential.tls_ca_file
            else None
            for key, group in groups.items()
        }
        if self._pool is None:  # kept between ticks: no threads started for every batch
            self._pool = ThreadPoolExecutor(max(1, self.workers), "mailopsd-send")
        futures = [
            self._pool.submit(
                self._deliver_group,
                group,
                ca_files,
                should_stop,
                batch.BounceCheck.of(self.state_dir, key, group[0].campaign, state, now),
            )
            for key, group in groups.items()
        ]
        while wait(futures, timeout=HEARTBEAT_S).not_done:
            self.heartbeat()  # slow servers are no hung daemon
        results = [result for future in futures for result in future.result()]
        for key in groups:  # every batch is done: no connection is in use
            self.smtp.release(key)
        return results

    # Outcomes ---------------------------------------------------------------------------

    def _record(
        self, results: list[tuple[_Job, Outcome]], now: datetime, fence: int | None
    ) -> None:
        """Each send's outcome, its lead's progress, then the bounces, in one transaction.

        Each kind of row is written by one statement (on PostgreSQL, one round trip for
        the batch); a lead's progress follows its outcome, and a bounce's suppression
        its lead's progress, as one at a time would.
        """
        outcomes = [
            (job.send_id, outcome.kind.value, outcome.code, outcome.detail)
            for job, outcome in results
        ]
        with self.ledger.transaction(fence):
            self.ledger.sends.set_outcomes(outcomes, now)
            self.ledger.leads.update_many(
                self._after(job, outcome, now) for job, outcome in results
            )
            for job, outcome in results:
                if outcome.kind == SendOutcome.BOUNCED:
                    self._bounce(job, outcome, now)

    def _bounce(self, job: _Job, outcome: Outcome, now: datetime) -> None:
        """Record a 5xx as a bounce of its reason and class; suppress the address if hard."""
        found = _diagnosis(outcome)
        self.ledger.sends.add_bounce(
            job.send_id,
            job.key[0],
            job.key[1],
            job.lead.email,
            status=str(outcome.code),
            source="smtp",
            at=now,
            kind=found.kind,
            reason=found.reason,
        )
        if found.kind == MailKind.HARD:
            effects.suppress(
                self.ledger,
                job.campaign.account,
                job.lead.email,
                effects.Suppression.HARD_BOUNCE,
                now,
            )

    def _after(self, job: _Job, outcome: Outcome, now: datetime) -> LeadProgress:
        if outcome.kind == SendOutcome.INVALID:  # never tried again; not a bounce
            logger.warning(
                "lead address refused as malformed campaign=%s credential=%s lead=%s code=%s "
                "reply=%s",
                *job.key,
                job.lead.email,
                outcome.code,
                outcome.detail,
            )
        return progression.after_outcome(
            job.lead,
            outcome,
            job.intent(job.at),
            job.campaign,
            max_attempts=self.max_attempts,
            now=now,
        )

    def tick(
        self,
        loaded: LoadedConfig,
        state: StateFile,
        now: datetime,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        held: frozenset[str] | None = None,
        fence: int | None = None,
    ) -> tuple[StateFile, TickReport]:
        """Send what is due at ``now``; return the new state and what happened.

        On a new session of a shared ledger (its connection was lost and taken again),
        sends left without an outcome are marked first, as at start: another daemon may
        have worked on the ledger meanwhile, and stopped in the middle of a batch.

        With ``held`` (a shared ledger's daemon), only those campaigns are sent for, and
        every write is made on the session ``fence`` that holds their leases: once it
        is lost, nothing more is (the daemon that takes the campaigns marks what this
        one left without an outcome); the daemon's lease rounds recover and check what
        it takes.
        """
        if held is None and self.ledger.sessions != self._recovered:
            self.recover(loaded, now)
        if held is None and self.ledger.sessions != self._checked:
            state = self.check_shared(loaded, state, now)
        if held is not None and self.ledger.sessions != fence:
            return state, TickReport()  # the leases went with the session
        jobs, failed = self._assign(loaded, state, now, held)
        done = TickReport(assigned=len(jobs))
        done.failed_leads.update(lead.campaign_id for lead in failed)
        try:
            if failed:
                with self.ledger.transaction(fence):
                    self.ledger.leads.update_many(failed)
            if not jobs:
                return state, done
            ids = self.ledger.sends.record_intents([job.intent(now) for job in jobs], fence)
        except StorageLeasesLostError as err:
            logger.warning("nothing sent: %s", err)
            return state, TickReport()
        for job, send_id in zip(jobs, ids, strict=True):
            job.send_id, job.at = send_id, now
            if job.credential.verp_domain is not None:
                job.outgoing = self._with_token(job, job.credential.verp_domain)
        results = self._deliver(jobs, loaded, should_stop, state, now)
        try:
            self._record(results, now, fence)
        except StorageLeasesLostError as err:
            logger.warning(
                "outcomes not recorded count=%d: %s; the daemon that takes these campaigns "
                "marks them unknown (never sent again)",
                len(results),
                err,
            )
        done.count([(job.key, outcome) for job, outcome in results])
        state = credential_outcomes(
            ((job.key, job.credential.shared_as, outcome) for job, outcome in results),
            state,
            now,
            self._backoff,
        )
        bounced = {job.key for job, outcome in results if outcome.kind == SendOutcome.BOUNCED}
        return autodisable.check_credentials(self.ledger, loaded, state, bounced, now), done

    def close(self) -> None:
        """Stop the sending threads and close every SMTP connection."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.smtp.close_all()

"""``GET /metrics``: the ledger's totals and the daemon's state, in the Prometheus text format.

Nothing is counted on the sending path: at each scrape a collector opens one ledger
connection, adds up what the ledger already holds (sends, bounces, replies,
suppressions, opens, clicks) and reads the state and config now running (disabled
credentials, daily caps as ramps set them and their headroom, mailbox errors, reloads,
the applied revision). A mailbox shared by campaigns has one daily cap: each campaign's
credential that names it shows the mailbox's cap and headroom, and its disable.
Counters restart from the ledger, so they survive a restart of the process; only the
reload counts and the mailbox polls are the process's own.

Labels are config keys and fixed words only (``campaign``, ``credential``, ``outcome``,
``kind``, ``reason``, ``account``, ``result``, ``revision``, ``step``, ``variant``; a
``reason`` is a word of ``diagnosis.Reason``, or ``unknown`` for a bounce recorded before
reasons were kept): never an address, a URL or a secret, so their number stays bounded
and the endpoint needs no API key. A ledger that cannot be read leaves its metrics out
and sets ``mailopsd_ledger_readable`` to 0. Poll counts and durations are the inbox's
own, since the daemon began to follow each mailbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailopsd.clock import utc_day_start
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Credential
from mailopsd.dispatch.budgets import TickUsage, daily_cap
from mailopsd.inbox.service import PollStats
from mailopsd.refs import CredentialRef, sender_ref
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from mailopsd.state.statefile import CredentialState, StateFile
from mailopsd.state.totals import Totals
from mailopsd.status import report

__all__ = ["CONTENT_TYPE", "PATH", "Exporter", "ReloadCounts", "Sources"]

logger = logging.getLogger(__name__)

PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_CREDENTIAL = ("campaign", "credential")

# Each ledger total: (metric name, help text, label names), by the field of Totals.
_COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sends": ("mailopsd_sends", "Sends, by outcome.", (*_CREDENTIAL, "outcome")),
    "bounces": ("mailopsd_bounces", "Bounce reports, by class.", (*_CREDENTIAL, "kind")),
    "replies": (
        "mailopsd_replies",
        "Answers from leads: reply, auto_reply, unsubscribe, feedback.",
        ("campaign", "kind"),
    ),
    "opens": ("mailopsd_opens", "Tracking pixel loads.", ("campaign",)),
    "clicks": ("mailopsd_clicks", "Tracked link clicks.", ("campaign",)),
}


@dataclass(frozen=True)
class ReloadCounts:
    """Config reloads since the process started, by result."""

    ok: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Sources:
    """What a scrape reads from the daemon, each time.

    Attributes:
        loaded: The config now running, or ``None``.
        state: The daemon's state now.
        ledger: The calling thread's ledger connection, kept open: never closed by the caller.
        clock: The current time.
        reloads: The reload counts of the process.
        polls: How each mailbox's polls went, by poll: (campaign, credential), or a
            shared mailbox's pair (``refs.sender_ref``), whose figures every use shows.
    """

    loaded: Callable[[], LoadedConfig | None]
    state: Callable[[], StateFile]
    ledger: Callable[[], Ledger]
    clock: Callable[[], datetime]
    reloads: Callable[[], ReloadCounts]
    polls: Callable[[], Mapping[CredentialRef, PollStats]] = dict


class _Collector(Collector):
    """Builds every metric family at scrape time."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of one scrape."""
        yield from self._daemon()
        try:
            ledger = self.sources.ledger()
        except StorageError as err:
            logger.warning("metrics without ledger totals, ledger not readable error=%s", err)
            yield GaugeMetricFamily("mailopsd_ledger_readable", _READABLE_HELP, value=0)
            return
        try:
            families = [
                *_totals(ledger.totals.read()),
                *self._credentials(ledger),
                *self._steps(ledger),
            ]
        except StorageError as err:
            logger.warning("metrics without ledger totals, ledger not readable error=%s", err)
            families = []
        yield GaugeMetricFamily(
            "mailopsd_ledger_readable", _READABLE_HELP, value=int(bool(families))
        )
        yield from families

    def _daemon(self) -> Iterator[Metric]:
        reloads = self.sources.reloads()
        counter = CounterMetricFamily(
            "mailopsd_reloads", "Config reloads since the process started.", labels=["result"]
        )
        counter.add_metric(["ok"], reloads.ok)
        counter.add_metric(["error"], reloads.failed)
        yield counter
        info = GaugeMetricFamily(
            "mailopsd_config_info", "The applied config revision (always 1).", labels=["revision"]
        )
        revision = self.sources.state().daemon.applied_revision
        if revision is not None:
            info.add_metric([revision], 1)
        yield info
        yield from self._git()

    def _git(self) -> Iterator[Metric]:
        """The followed remote: each commit by role (applied, fetched, refused), fetch health."""
        git = self.sources.state().daemon.git
        if git is None:
            return
        commits = GaugeMetricFamily(
            "mailopsd_git_commit_info",
            "Commits of the followed branch by role: applied, fetched, refused (always 1).",
            labels=["role", "commit"],
        )
        for role, commit in (
            ("applied", git.applied_commit),
            ("fetched", git.fetched_commit),
            ("refused", git.refused_commit),
        ):
            if commit is not None:
                commits.add_metric([role, commit], 1)
        yield commits
        yield GaugeMetricFamily(
            "mailopsd_git_fetch_failing",
            "1 while the last fetch of the followed remote failed.",
            value=int(git.fetch_error is not None),
        )
        if git.fetched_at is not None:
            yield GaugeMetricFamily(
                "mailopsd_git_last_fetch_timestamp_seconds",
                "When the followed remote was last fetched.",
                value=git.fetched_at.timestamp(),
            )

    def _steps(self, ledger: Ledger) -> list[Metric]:
        """Per campaign of the config now running, per step and variant: sends, answers."""
        families = {
            name: CounterMetricFamily(
                f"mailopsd_step_{name}", documentation, labels=["campaign", "step", "variant"]
            )
            for name, documentation in _STEP_COUNTERS.items()
        }
        loaded = self.sources.loaded()
        for campaign_id in sorted(loaded.config.campaigns if loaded is not None else ()):
            for counts in ledger.stats.of(campaign_id):
                labels = [campaign_id, str(counts.step), counts.variant]
                for name, family in families.items():
                    family.add_metric(labels, getattr(counts, name))
        return list(families.values())

    def _credentials(self, ledger: Ledger) -> list[Metric]:
        """Per credential of the config now running: disabled, daily cap and headroom, mailbox.

        A shared mailbox's cap and headroom are the mailbox's across its campaigns, and it
        is disabled in each when it is in one, as the dispatcher counts (``TickUsage``).
        """
        families = _CredentialFamilies()
        loaded, state, now = self.sources.loaded(), self.sources.state(), self.sources.clock()
        if loaded is None:
            return families.all()
        polls = self.sources.polls()
        reads = TickUsage(ledger, loaded.config, utc_day_start(now))
        for campaign_id, campaign in sorted(loaded.config.campaigns.items()):
            for credential_id, credential in sorted(campaign.smtp_credentials.items()):
                key = (campaign_id, credential_id)
                entry = reads.entry(state, key, credential)
                _, used = reads.usage(key, credential)
                figures = report.measure_credential(
                    ledger,
                    key,
                    bounce_window=campaign.bounce_window,
                    entry=entry,
                    now=now,
                    reasons=campaign.counted_reasons,
                )
                families.add(
                    [campaign_id, credential_id],
                    credential,
                    cap=daily_cap(credential, first_send=used[4], entry=entry, now=now),
                    sent_today=used[1],
                    entry=entry,
                    figures=figures,
                    polls=polls.get(sender_ref(key, credential.shared_as)),
                    last_poll=ledger.inbox.last_poll(*sender_ref(key, credential.shared_as))[0],
                )
        return families.all()


class _CredentialFamilies:
    """The per-credential gauges of one scrape."""

    def __init__(self) -> None:
        self.disabled = GaugeMetricFamily(
            "mailopsd_credential_disabled", "1 if auto-disabled (bounce rate).", labels=_CREDENTIAL
        )
        self.cap = GaugeMetricFamily(
            "mailopsd_credential_daily_cap",
            "Step-1 sends allowed today (UTC day): daily_limit, or less while a ramp rises; "
            "a shared mailbox's, for all its campaigns together.",
            labels=_CREDENTIAL,
        )
        self.headroom = GaugeMetricFamily(
            "mailopsd_credential_daily_headroom",
            "Step-1 sends left today (UTC day) under the daily cap (a shared mailbox's: "
            "after the sends of all its campaigns).",
            labels=_CREDENTIAL,
        )
        self.inbox_error = GaugeMetricFamily(
            "mailopsd_imap_error", "1 if the mailbox cannot be read now.", labels=_CREDENTIAL
        )
        self.last_poll = GaugeMetricFamily(
            "mailopsd_imap_last_poll_timestamp_seconds",
            "When the mailbox was last polled (Unix time).",
            labels=_CREDENTIAL,
        )
        self.polls = CounterMetricFamily(
            "mailopsd_imap_polls",
            "Mailbox polls since the daemon began to follow the mailbox, by result.",
            labels=[*_CREDENTIAL, "result"],
        )
        self.poll_seconds = CounterMetricFamily(
            "mailopsd_imap_poll_seconds",
            "Time spent in those polls, in all (divide by the polls for a mean).",
            labels=_CREDENTIAL,
        )
        self.last_poll_seconds = GaugeMetricFamily(
            "mailopsd_imap_last_poll_duration_seconds",
            "How long the last poll took.",
            labels=_CREDENTIAL,
        )
        self.bounced = GaugeMetricFamily(
            "mailopsd_credential_bounced_addresses",
            "Addresses that bounced in the bounce window (from a re-enable, if later), by "
            "class and reason, as status counts them (reason unknown: recorded before "
            "reasons were kept; kind unconfirmed: reports never counted).",
            labels=[*_CREDENTIAL, "kind", "reason"],
        )

    def add(
        self,
        labels: list[str],
        credential: Credential,
        *,
        cap: int,
        sent_today: int,
        entry: CredentialState,
        figures: report.CredentialFigures,
        polls: PollStats | None,
        last_poll: str | None,
    ) -> None:
        """Add one credential's samples.

        ``cap`` is its daily cap today, against ``sent_today``; ``last_poll`` when its
        mailbox was last read (a shared mailbox's one poll), as the ledger stores times.
        """
        self.disabled.add_metric(labels, int(entry.is_disabled(credential.reenabled_at)))
        self.cap.add_metric(labels, cap)
        self.headroom.add_metric(labels, max(0, cap - sent_today))
        for found in figures.reasons:
            self.bounced.add_metric([*labels, found.kind, found.reason], found.addresses)
        if credential.imap_host is None:
            return  # no mailbox: no reply detection to watch
        self.inbox_error.add_metric(labels, int(entry.inbox_error is not None))
        if last_poll is not None:
            self.last_poll.add_metric(labels, unstamp(last_poll).timestamp())
        if polls is not None:
            self.polls.add_metric([*labels, "ok"], polls.ok)
            self.polls.add_metric([*labels, "error"], polls.failed)
            self.poll_seconds.add_metric(labels, polls.seconds)
            if polls.last_seconds is not None:
                self.last_poll_seconds.add_metric(labels, polls.last_seconds)

    def all(self) -> list[Metric]:
        """Every family, samples added."""
        return [
            self.disabled,
            self.cap,
            self.headroom,
            self.bounced,
            self.inbox_error,
            self.last_poll,
            self.polls,
            self.poll_seconds,
            self.last_poll_seconds,
        ]


_STEP_COUNTERS = {
    "sends": "Sends by step and variant (variant empty for a step without variants).",
    "replies": "Leads that replied, by the last step (and its variant) they were sent.",
    "bounces": "Hard bounces, by the step (and its variant) of the send they report.",
    "unsubscribes": "Leads that unsubscribed, by the last step (and its variant) they were sent.",
}
_READABLE_HELP = "1 if the ledger could be read for this scrape."


def _totals(totals: Totals) -> Iterator[Metric]:
    for field, (name, documentation, labels) in _COUNTERS.items():
        family = CounterMetricFamily(name, documentation, labels=labels)
        counts: dict[tuple[str, ...], int] = getattr(totals, field)
        for values, count in sorted(counts.items()):
            family.add_metric(values, count)
        yield family
    suppressed = GaugeMetricFamily(
        "mailopsd_suppressed_addresses", "Addresses never mailed again.", labels=["account"]
    )
    for values, count in sorted(totals.suppressions.items()):
        suppressed.add_metric(values, count)
    yield suppressed


class Exporter:
    """A private registry holding the collector; one instance serves every thread."""

    def __init__(self, sources: Sources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(sources))

    def render(self) -> bytes:
        """The exposition of one scrape, in the Prometheus text format."""
        return generate_latest(self.registry)

"""The configuration schema: the single source of truth for every config shape.

Models are frozen and forbid unknown keys. Their fields are declared with the strict
scalar types of :mod:`mailopsd.config.scalars`; the checks here are those that hold
between fields, each failing with a message a person can act on (the loader adds file,
line and column). Secrets are ``SecretStr`` and their values never appear in an error.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mailopsd.config.credentials import (
    CREDENTIAL_SECRET_FIELDS,
    IMAP_FIELDS,
    MAILBOXES_CONTEXT,
    Credential,
    CredentialEntry,
    RateLimit,
    Tracking,
)
from mailopsd.config.pacing import Ramp, Spread
from mailopsd.config.periods import parse_period
from mailopsd.config.reasons import CountedReasons, counted_reasons, reason_list
from mailopsd.config.scalars import (
    MIN_SIGNING_KEY_CHARS,
    BaseUrl,
    DashboardSession,
    FileList,
    Flag,
    FreeMailDomain,
    Id,
    Line,
    ListenAddress,
    PeriodValue,
    PollInterval,
    PositiveInt,
    Ratio,
    RequestTimeout,
    Sha256Hex,
    SigningKey,
    Text,
    TimeZone,
    Url,
    failure,
    one_of,
)
from mailopsd.config.sequence import SendWindow, Step, Variant, check_sequence
from mailopsd.diagnosis import Reason

__all__ = [
    "CREDENTIAL_SECRET_FIELDS",
    "IMAP_FIELDS",
    "MAILBOXES_CONTEXT",
    "SECRET_FIELDS",
    "Api",
    "ApiKey",
    "Campaign",
    "Config",
    "Credential",
    "Http",
    "Ramp",
    "RateLimit",
    "SendWindow",
    "Spread",
    "Step",
    "Tracking",
    "Unsubscribe",
    "Variant",
]

SECRET_FIELDS = CREDENTIAL_SECRET_FIELDS | {"signing_key"}
"""Every field holding a secret, by name (``http.signing_key`` too)."""
_PLACEHOLDER = re.compile(r"%%([A-Za-z_]*)%%")
_FOOTER_PLACEHOLDERS = frozenset({"UNSUBSCRIBE", "EMAIL"})
ReasonList = Annotated[
    tuple[Reason, ...],
    PlainValidator(reason_list),
    PlainSerializer(lambda reasons: [str(reason) for reason in reasons], return_type=list[str]),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unsubscribe(_Model):
    """The unsubscribe link and footers added to every message."""

    url: Url | None = Field(
        default=None,
        description="Unsubscribe URL; %%EMAIL%% becomes the lead's address. With http "
        "configured, the one-click link of the daemon's server is used instead.",
    )
    footer_text: Text | None = Field(
        default=None, description="Footer for the text part; %%UNSUBSCRIBE%%, %%EMAIL%%."
    )
    footer_html: Text | None = Field(
        default=None, description="Footer for the HTML part; %%UNSUBSCRIBE%%, %%EMAIL%%."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in ("footer_text", "footer_html"):
            text = getattr(self, name) or ""
            unknown = sorted(set(_PLACEHOLDER.findall(text)) - _FOOTER_PLACEHOLDERS)
            if unknown:
                raise failure(
                    f"unknown placeholder %%{unknown[0]}%%; use %%UNSUBSCRIBE%% or %%EMAIL%%",
                    field=name,
                )
        return self

    def footer_without_url(self) -> str | None:
        """Name a footer using %%UNSUBSCRIBE%% while ``url`` is not set (``None``: none)."""
        if self.url is not None:
            return None
        for name in ("footer_text", "footer_html"):
            if "%%UNSUBSCRIBE%%" in (getattr(self, name) or ""):
                return name
        return None


class Campaign(_Model):
    """A sequence of messages sent to a list of leads from a set of credentials."""

    name: Line = Field(description="Human name of the campaign.")
    account: Id = Field(default="default", description="Owning account.")
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the sending window.")
    send_window: SendWindow | None = Field(
        default=None, description="When sends may happen; absent: any time."
    )
    leads: Text = Field(
        description="CSV file of leads, relative to the config file, inside the config "
        "directory (symlinks included); a regular file of at most 1 GiB."
    )
    sequence: Annotated[tuple[Step, ...], AfterValidator(check_sequence)] = Field(
        min_length=1, description="The steps, in order."
    )
    bounce_threshold: Ratio = Field(
        default=0.05,
        description="Bounce rate above which a credential is disabled: addresses that "
        "bounced for one of bounce_reasons over sends, in the bounce window.",
    )
    block_threshold: Ratio | None = Field(
        default=None,
        description="Rate of policy rejections (blocks) above which a credential is disabled: "
        "addresses refused for one of block_reasons over sends, in the bounce window.",
    )
    bounce_reasons: ReasonList | None = Field(
        default=None,
        description="The bounce reasons that count toward bounce_threshold, such as "
        "[userunknown, hostunknown, mailboxfull] (mailopsd classify shows a report's). "
        "Absent: every hard bounce (userunknown, hostunknown, hasmoved, suspend, and "
        "notaccept, onhold, undefined when permanent) but those block_reasons names. "
        "notaccept, onhold and undefined count only when permanent (5xx, 5.x.x). Bounces "
        "recorded before mailopsd kept reasons count by their class (hard) as before.",
    )
    block_reasons: ReasonList | None = Field(
        default=None,
        description="The bounce reasons that count toward block_threshold, such as "
        "[blocked, spamdetected, badreputation]. Absent: every block-class reason "
        "(blocked, policyviolation, spamdetected, ...) but those bounce_reasons names. A "
        "reason may be in one of the two lists only.",
    )
    bounce_min_sends: PositiveInt = Field(
        default=20, description="Sends needed in the window before any verdict."
    )
    bounce_window: PeriodValue = Field(
        default_factory=lambda: parse_period("7 days"),
        description="Period over which the bounce rate is computed.",
    )
    unsubscribe: Unsubscribe | None = Field(default=None, description="Unsubscribe link, footers.")
    imap_poll_interval: PollInterval = Field(
        default_factory=lambda: parse_period("5 minutes"),
        description="Time between two polls of each credential's mailbox.",
    )
    stop_on_auto_reply: Flag = Field(
        default=False, description="Stop a lead's sequence on an auto-reply too."
    )
    stop_on_domain_reply: Flag = Field(
        default=False,
        description="When a lead replies, stop every other lead of the campaign at the same "
        "domain (their addresses are not suppressed); never for free-mail domains.",
    )
    max_per_recipient_domain_per_day: PositiveInt | None = Field(
        default=None,
        description="At most this many sends (every step) to one recipient domain per UTC "
        "day; the other leads at that domain wait for the next day. Absent: no cap.",
    )
    tracking: Tracking | None = Field(
        default=None,
        description="Open and click tracking of the campaign's messages (default off); a "
        "credential's own tracking wins. Needs http.",
    )
    delay_jitter: PeriodValue | None = Field(
        default=None,
        description="Spreads each follow-up: a time drawn from 0 to this period is added to "
        "its step's delay (pseudo-random, reproducible), so leads that got a step together "
        "do not get the next one in the same minute.",
    )
    smtp_credentials: dict[Id, CredentialEntry] = Field(
        min_length=1,
        description="Mailboxes to send from, by id: each declared here (smtp_host, ...), or "
        "{mailbox: id} naming one of the top-level mailboxes, shared with other campaigns.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.delay_jitter is not None and len(self.sequence) == 1:
            raise failure(
                "delay_jitter spreads follow-ups, and this sequence has none: remove it, "
                "or add a step",
                field="delay_jitter",
            )
        both = [r for r in self.bounce_reasons or () if r in (self.block_reasons or ())]
        if both:
            index = (self.block_reasons or ()).index(both[0])
            raise failure(
                f"lists {both[0]}, which bounce_reasons lists too: a reason counts toward "
                "one rate only; remove it from one of the lists",
                field=f"block_reasons.{index}",
            )
        return self

    @property
    def counted_reasons(self) -> CountedReasons:
        """The reasons counted toward the bounce rate and toward the block rate."""
        return counted_reasons(self.bounce_reasons, self.block_reasons)

    @functools.cached_property
    def mailboxes_named(self) -> tuple[tuple[str, str], ...]:
        """``(credential id, mailbox id)`` for each top-level mailbox this campaign names.

        Kept with the campaign, which a reload keeps while its file is unchanged: the
        checks over every campaign's mailboxes go through the few named, not every
        credential (10,000 credentials: 12 ms a reload before).
        """
        return tuple(
            (credential_id, credential.shared_as)
            for credential_id, credential in self.smtp_credentials.items()
            if credential.shared_as is not None
        )


class Http(_Model):
    """The daemon's HTTP server: one-click unsubscribe, tracking links, the credentials API."""

    listen: ListenAddress = Field(
        description="Address the server listens on, host:port (an IPv6 host in brackets); "
        "normally a loopback address behind a reverse proxy. Port 0 takes any free port."
    )
    public_base_url: BaseUrl = Field(
        description="http(s) URL at which people reach the server, used in the links put "
        "into messages; no query or fragment, a trailing slash is dropped."
    )
    signing_key: SigningKey = Field(
        description=f"Key that signs every token in links, at least {MIN_SIGNING_KEY_CHARS} "
        "characters (secret). Changing it breaks the links of messages already sent."
    )
    request_timeout: RequestTimeout = Field(
        default=parse_period("10 seconds"),
        description="Time a client has to send a whole request (headers and body), from its "
        "first byte, or from connecting for a connection's first request; a slower one is "
        "closed unanswered. From 1 second to 5 minutes.",
    )
    dashboard: Flag = Field(
        default=False,
        description="Serve the read-only dashboard under /dashboard: an account's campaigns "
        "and their charts, for whoever signs in with one of the account's API keys.",
    )
    dashboard_session: DashboardSession = Field(
        default=parse_period("8 hours"),
        description="How long a dashboard sign-in lasts, from 5 minutes to 30 days.",
    )
    max_connections_per_client: PositiveInt = Field(
        default=10,
        description="Connections one client address may have receiving a request at once "
        "(just opened, or part of a request sent); a further one closes its oldest such "
        "connection. A connection whose request has arrived does not count, so a reverse "
        "proxy on this host, which sends each request whole, is not held back.",
    )

    @property
    def listen_host(self) -> str:
        """The host part of ``listen`` (an IPv6 address without its brackets)."""
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def listen_port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rpartition(":")[2])


class ApiKey(_Model):
    """A key of the credentials API, declared by its hash only."""

    account: Id = Field(description="Account whose campaigns and credentials the key reaches.")
    sha256: Sha256Hex = Field(
        description="sha256 of the key, 64 lowercase hex digits (mailopsd apikey new prints it)."
    )
    scope: Annotated[Literal["read", "write"], PlainValidator(one_of("read", "write"))] = Field(
        default="read",
        description="read: the key reads only; write: it may also add, change, delete and "
        "re-enable credentials, when api.write allows writes (a read key writing gets 403).",
    )


class Api(_Model):
    """What the credentials API may do beyond reading."""

    write: Annotated[
        Literal["off", "commit", "branch"], PlainValidator(one_of("off", "commit", "branch"))
    ] = Field(
        default="off",
        description="off: writes answer 405 naming the file to edit. commit: a write by a "
        "write key is committed to the followed git branch and pushed (run --git), and "
        "answered once applied. branch: it is pushed to a review branch of its own "
        "(mailopsd/api/...) and answered 202 with the commit; merging it applies it.",
    )


def _needs_http(campaign_id: str, campaign: Campaign) -> PydanticCustomError | None:
    """The error for a campaign that uses what only http provides, if it does."""
    where = f"campaigns.{campaign_id}"
    if campaign.tracking is not None:
        return failure(_TRACKING_NEEDS_HTTP, field=f"{where}.tracking")
    for credential_id, credential in campaign.smtp_credentials.items():
        if credential.tracking is not None:
            place = (
                f"mailboxes.{credential.shared_as}"
                if credential.shared_as is not None
                else f"{where}.smtp_credentials.{credential_id}"
            )
            return failure(_TRACKING_NEEDS_HTTP, field=f"{place}.tracking")
    footer = campaign.unsubscribe.footer_without_url() if campaign.unsubscribe else None
    if footer is not None:
        return failure(
            "uses %%UNSUBSCRIBE%% but there is no unsubscribe URL: set unsubscribe.url, or "
            "configure http for the one-click link",
            field=f"{where}.unsubscribe.{footer}",
        )
    return None


_TRACKING_NEEDS_HTTP = (
    "tracking needs http.public_base_url: add an http: section (listen, public_base_url, "
    "signing_key) for the server that records opens and clicks"
)


class Config(_Model):
    """The whole desired state, merged from every config file."""

    mailboxes: dict[Id, Credential] = Field(
        default_factory=dict,
        description="Mailboxes shared by campaigns, by id, each with the fields of a "
        "credential; a campaign uses one with {mailbox: id} in its smtp_credentials. One "
        "daily cap, rate limit, min_interval and ramp hold across all its campaigns, its "
        "IMAP mailbox is polled once, and an auto-disable stops it in every campaign.",
    )
    campaigns: dict[Id, Campaign] = Field(default_factory=dict, description="Campaigns by id.")
    http: Http | None = Field(
        default=None,
        description="The HTTP server for one-click unsubscribe, tracking and the API; "
        "absent: no server, List-Unsubscribe uses unsubscribe.url.",
    )
    api_keys: dict[Id, ApiKey] = Field(
        default_factory=dict, description="Keys of the credentials API by name (needs http)."
    )
    api: Api = Field(
        default_factory=Api,
        description="What the credentials API may change (needs http to write); by default "
        "it only reads.",
    )
    suppress: dict[Id, FileList] = Field(
        default_factory=dict,
        description="Suppression lists by account: files relative to the config file, inside "
        "the config directory, of addresses (ada@example.com) and whole domains "
        "(@example.com); a .csv file has an email or a domain column. No campaign of the "
        "account sends to what they list.",
    )
    free_mail_domains: tuple[FreeMailDomain, ...] = Field(
        default=(),
        description="Free-mail domains added to the built-in table (gmail.com, gmx.*...): a "
        "reply from one of them never stops other leads (stop_on_domain_reply). A domain, or "
        "name.* for name under any ending.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.http is None:
            for campaign_id, campaign in self.campaigns.items():
                error = _needs_http(campaign_id, campaign)
                if error is not None:
                    raise error
            if self.api_keys:
                raise failure(
                    "api keys need http: add an http: section for the server that answers the API",
                    field=f"api_keys.{next(iter(self.api_keys))}",
                )
            if self.api.write != "off":
                raise failure(
                    "api writes need http: add an http: section for the server that "
                    "answers the API",
                    field="api.write",
                )
        self._check_api_keys()
        self._check_suppress()
        self._check_mailbox_uses()
        return self

    @model_validator(mode="after")
    def _name_mailboxes(self) -> Self:
        # Mailboxes validated without the loader (a model built in code) learn their id.
        for mailbox_id, mailbox in self.mailboxes.items():
            if mailbox.shared_as != mailbox_id:
                self.mailboxes[mailbox_id] = mailbox.as_mailbox(mailbox_id)
        return self

    def _check_mailbox_uses(self) -> None:
        for campaign_id, campaign in self.campaigns.items():
            seen: dict[str, str] = {}
            for credential_id, mailbox in campaign.mailboxes_named:
                if mailbox in seen:
                    raise failure(
                        f'mailbox "{mailbox}" is already used by smtp_credentials.'
                        f"{seen[mailbox]} of this campaign; a campaign uses a mailbox once",
                        field=f"campaigns.{campaign_id}.smtp_credentials.{credential_id}.mailbox",
                    )
                seen[mailbox] = credential_id

    @functools.cached_property
    def mailbox_uses(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Where each top-level mailbox is used: ``(campaign id, credential id)`` pairs.

        Every declared mailbox has an entry (an unused one, no pair).
        """
        uses: dict[str, list[tuple[str, str]]] = {mailbox_id: [] for mailbox_id in self.mailboxes}
        for campaign_id, campaign in self.campaigns.items():
            for credential_id, mailbox_id in campaign.mailboxes_named:
                uses.setdefault(mailbox_id, []).append((campaign_id, credential_id))
        return {mailbox_id: tuple(pairs) for mailbox_id, pairs in uses.items()}

    def _check_suppress(self) -> None:
        accounts = {campaign.account for campaign in self.campaigns.values()}
        for account in self.suppress:
            if account not in accounts:
                known = ", ".join(sorted(accounts)) or "none"
                raise failure(
                    f'no campaign belongs to account "{account}" (accounts: {known}); '
                    "suppression lists are per account",
                    field=f"suppress.{account}",
                )

    def _check_api_keys(self) -> None:
        accounts = {campaign.account for campaign in self.campaigns.values()}
        seen: dict[str, str] = {}
        for name, key in self.api_keys.items():
            if key.account not in accounts:
                known = ", ".join(sorted(accounts)) or "none"
                raise failure(
                    f'no campaign belongs to account "{key.account}" (accounts: {known})',
                    field=f"api_keys.{name}.account",
                )
            if key.sha256 in seen:
                raise failure(
                    f"is the same key as api_keys.{seen[key.sha256]}; make a new one with: "
                    "mailopsd apikey new",
                    field=f"api_keys.{name}.sha256",
                )
            seen[key.sha256] = name

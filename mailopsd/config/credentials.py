"""A credential: one SMTP mailbox with its optional IMAP reply detection and its limits.

Declared in a campaign's ``smtp_credentials``, or once under the top-level ``mailboxes``
and named from campaigns with ``{mailbox: id}`` (``CredentialEntry``, which finds the
shared mailbox in the validation context the loader gives). Part of the schema
(:mod:`mailopsd.config.models` exports it); frozen, unknown keys refused, secrets
``SecretStr``. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Protocol, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from mailopsd.config import suggest
from mailopsd.config.pacing import MinInterval, Ramp, ramp_cap
from mailopsd.config.periods import Period
from mailopsd.config.scalars import (
    IMAP_IMPLICIT_TLS_PORT,
    SMTP_IMPLICIT_TLS_PORT,
    BounceRoute,
    Domain,
    Email,
    Flag,
    Folders,
    Host,
    IpAddress,
    Line,
    PeriodValue,
    PollInterval,
    Port,
    PositiveInt,
    Secret,
    Text,
    Timestamp,
    TlsMode,
    describe,
    failure,
    is_loopback_host,
    one_of,
    resolve_tls,
)
from mailopsd.config.selectors import DkimSelectors

__all__ = [
    "CREDENTIAL_SECRET_FIELDS",
    "IMAP_FIELDS",
    "IMAP_OPTIONS",
    "MAILBOXES_CONTEXT",
    "CampaignDefaults",
    "Credential",
    "CredentialEntry",
    "RateLimit",
    "Tracking",
]


class CampaignDefaults(Protocol):
    """What a credential takes from its campaign when it does not say (a ``Campaign``)."""

    @property
    def imap_poll_interval(self) -> Period:
        """Time between two polls of each credential's mailbox."""

    @property
    def tracking(self) -> Tracking | None:
        """Open and click tracking of the campaign's messages."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CREDENTIAL_SECRET_FIELDS = frozenset(
    {"smtp_username", "smtp_password", "imap_username", "imap_password"}
)
IMAP_FIELDS = ("imap_host", "imap_port", "imap_username", "imap_password")
IMAP_OPTIONS = ("imap_tls", "imap_tls_ca_file", "imap_folders", "imap_idle", "imap_poll_interval")


class Tracking(_Model):
    """Open and click tracking through the daemon's HTTP server (needs ``http``).

    Both act on a message's HTML part only, which exists when the campaign has an
    ``unsubscribe.footer_html``: a message without one is not tracked.
    """

    open: Flag = Field(
        default=False,
        description="Add a 1x1 image to the HTML part; the server records an open when it is "
        "fetched.",
    )
    click: Flag = Field(
        default=False,
        description="Send the HTML part's http(s) links through the server, which records "
        "the click and redirects to the original URL; text parts and mailto: links are left "
        "alone.",
    )


_NO_TRACKING = Tracking()


class RateLimit(_Model):
    """At most ``value`` sends (follow-ups too) in any ``period``."""

    value: PositiveInt = Field(description="Maximum number of sends in one period.")
    period: PeriodValue = Field(description='Length of the period, e.g. "1 hour".')


class Credential(_Model):
    """One SMTP mailbox a campaign sends from, with optional IMAP reply detection.

    Declared in a campaign's ``smtp_credentials``, or once under the top-level
    ``mailboxes`` and named from campaigns (``mailbox: ada``): then every campaign holds
    the same object, whose ``shared_as`` is its id there.
    """

    _shared_as: str | None = PrivateAttr(default=None)

    label: Line | None = Field(default=None, description="Display name.")
    smtp_host: Host = Field(description="SMTP server host name or IP address.")
    smtp_port: Port = Field(description="SMTP port: 587 STARTTLS, 465 implicit TLS.")
    smtp_username: Secret = Field(description="SMTP login name (secret).")
    smtp_password: Secret = Field(description="SMTP password (secret).")
    from_name: Line = Field(description="Display name of the From: header.")
    from_email: Email = Field(description="Address of the From: header.")
    daily_limit: PositiveInt = Field(description="Step-1 sends per UTC day.")
    imap_host: Host | None = Field(default=None, description="IMAP host for reply detection.")
    imap_port: Port | None = Field(default=None, description="IMAP port: 993 implicit TLS.")
    imap_username: Secret | None = Field(default=None, description="IMAP login (secret).")
    imap_password: Secret | None = Field(default=None, description="IMAP password (secret).")
    imap_tls: TlsMode = Field(
        default="auto", description="auto picks by port: 993 implicit, else STARTTLS."
    )
    imap_tls_ca_file: Text | None = Field(
        default=None,
        description="PEM file of the CA that signs a private IMAP server's certificate: a "
        "relative path inside the config directory, or an absolute one; at most 4 MiB.",
    )
    imap_folders: Folders = Field(
        default=("INBOX",), description="Folders polled for replies and bounces."
    )
    imap_idle: Flag = Field(default=False, description="Also wait with IMAP IDLE on INBOX.")
    imap_poll_interval: PollInterval | None = Field(
        default=None, description="Time between two polls; default: the campaign's."
    )
    status: Annotated[
        Literal["allowed", "blocked", "sandbox"],
        PlainValidator(one_of("allowed", "blocked", "sandbox")),
    ] = Field(default="allowed", description="allowed sends; sandbox delivers nowhere.")
    enabled: Flag = Field(default=True, description="Manual on/off switch.")
    rate_limit: RateLimit | None = Field(default=None, description="Sends per period, all steps.")
    min_interval: MinInterval | None = Field(
        default=None,
        description='Minimum time between two sends of this mailbox: a period ("90 seconds"), '
        "or {min, max}: the gap after each send is drawn in that range.",
    )
    ramp: Ramp | None = Field(
        default=None,
        description="Warm-up: a daily cap of step-1 sends that rises from start by step every "
        "`every`, up to daily_limit.",
    )
    ramp_restart_on_reenable: Flag | None = Field(
        default=None,
        description="true: the ramp starts again from the re-enable that ends an "
        "auto-disable (default false).",
    )
    bcc: Email | None = Field(default=None, description="Address copied on every message.")
    archive: Flag = Field(default=False, description="Keep a copy of every sent message.")
    bounce_notifications: BounceRoute = Field(
        default="from", description="Where bounces go: from, drop or an address."
    )
    verp_domain: Domain | None = Field(
        default=None,
        description="Domain of a per-send envelope sender (VERP): each message goes out with "
        "MAIL FROM bounces+<token>@<verp_domain> and the token in its X-Mailopsd-Send header, "
        "so a delivery report is matched to the exact send even when it quotes nothing of it. "
        "bounces+<anything>@<verp_domain> must be delivered into the mailbox this credential "
        "reads over IMAP, and the domain's SPF must allow the SMTP server. Absent: off, the "
        "envelope sender is from_email.",
    )
    source_address: IpAddress | None = Field(
        default=None, description="Local IP address to send from."
    )
    tls: TlsMode = Field(
        default="auto", description="auto picks by port: 465 implicit, else STARTTLS."
    )
    tls_ca_file: Text | None = Field(
        default=None,
        description="PEM file of the CA that signs a private server's certificate: a "
        "relative path inside the config directory, or an absolute one; at most 4 MiB.",
    )
    reenabled_at: Timestamp | None = Field(
        default=None, description="Set by a person to re-enable after an auto-disable."
    )
    tracking: Tracking | None = Field(
        default=None,
        description="Open and click tracking of this mailbox's messages; when set, it "
        "replaces the campaign's as a whole. Needs http.",
    )
    dkim_selectors: DkimSelectors | None = Field(
        default=None,
        min_length=1,
        description="DKIM selectors the SMTP provider signs this mailbox's mail with: "
        "mailopsd doctor looks up the keys at <selector>._domainkey.<from_email domain>. "
        "Absent: doctor tries common selectors.",
    )

    def as_mailbox(self, mailbox_id: str) -> Credential:
        """This credential as the top-level mailbox ``mailbox_id`` (a copy)."""
        shared = self.model_copy()
        shared._shared_as = mailbox_id
        return shared

    @property
    def shared_as(self) -> str | None:
        """The id under the top-level ``mailboxes`` it is declared with, if shared."""
        # Read from the private values' dict itself: a private attribute read through
        # the model's __getattr__ costs 3 µs, and every reload asks each credential.
        private = self.__pydantic_private__
        return None if private is None else private.get("_shared_as")

    @property
    def smtp_tls_mode(self) -> str:
        """``tls`` with ``auto`` resolved: implicit TLS on port 465, else STARTTLS."""
        return resolve_tls(self.tls, self.smtp_port, SMTP_IMPLICIT_TLS_PORT)

    @property
    def imap_tls_mode(self) -> str:
        """``imap_tls`` with ``auto`` resolved: implicit TLS on port 993, else STARTTLS."""
        return resolve_tls(self.imap_tls, self.imap_port or 0, IMAP_IMPLICIT_TLS_PORT)

    def poll_interval(self, campaign: CampaignDefaults) -> Period:
        """Time between two polls: the credential's own, else its campaign's."""
        return self.imap_poll_interval or campaign.imap_poll_interval

    def tracking_for(self, campaign: CampaignDefaults) -> Tracking:
        """Tracking of this mailbox's messages: its own when set, else its campaign's."""
        return self.tracking or campaign.tracking or _NO_TRACKING

    @property
    def has_imap(self) -> bool:
        """Tell whether reply detection is configured (all four IMAP fields)."""
        return self.imap_host is not None

    def daily_cap(
        self, *, first_send: datetime | None, reenabled_at: datetime | None, now: datetime
    ) -> int:
        """Step-1 sends allowed in the UTC day of ``now``: its ramp's cap, or ``daily_limit``.

        Args:
            first_send: When it first sent, if ever.
            reenabled_at: The last re-enable applied after an auto-disable, if any.
            now: The instant.
        """
        if self.ramp is None:
            return self.daily_limit
        return ramp_cap(
            self.ramp,
            daily_limit=self.daily_limit,
            restart_on_reenable=bool(self.ramp_restart_on_reenable),
            first_send=first_send,
            reenabled_at=reenabled_at,
            now=now,
        )

    @model_validator(mode="after")
    def _check_pacing(self) -> Self:
        if self.ramp is None:
            if self.ramp_restart_on_reenable is not None:
                raise failure(
                    "ramp_restart_on_reenable needs a ramp (e.g. ramp: {start: 10, step: 5, "
                    "every: 1 day})",
                    field="ramp_restart_on_reenable",
                )
        elif self.ramp.start > self.daily_limit:
            raise failure(
                f"start {self.ramp.start} is above daily_limit {self.daily_limit}: the ramp "
                "rises up to daily_limit; lower start or raise daily_limit",
                field="ramp.start",
            )
        return self

    @model_validator(mode="after")
    def _check(self) -> Self:
        present = [name for name in IMAP_FIELDS if getattr(self, name) is not None]
        if present and len(present) < len(IMAP_FIELDS):
            missing = [name for name in IMAP_FIELDS if name not in present]
            raise failure(
                "the imap_* fields go together: all four or none; missing " + ", ".join(missing),
                field=present[0],
            )
        if not present:
            for name in IMAP_OPTIONS:
                if name in self.model_fields_set:
                    raise failure(
                        f"{name} needs the four imap_* fields (imap_host, imap_port, "
                        "imap_username, imap_password)",
                        field=name,
                    )
        if self.imap_host is not None and self.imap_tls == "none":
            if not is_loopback_host(self.imap_host):
                raise failure(
                    f"imap_tls: none sends the password in clear; allowed only for a loopback "
                    f"imap_host, not {describe(self.imap_host)}",
                    field="imap_tls",
                )
            if self.imap_tls_ca_file is not None:
                raise failure(
                    "imap_tls_ca_file needs TLS; it is useless with imap_tls: none",
                    field="imap_tls_ca_file",
                )
        if self.tls_ca_file is not None and self.tls == "none":
            raise failure(
                "tls_ca_file needs TLS; it is useless with tls: none", field="tls_ca_file"
            )
        if self.tls == "none" and not is_loopback_host(self.smtp_host):
            raise failure(
                f"tls: none sends the password in clear; allowed only for a loopback "
                f"smtp_host, not {describe(self.smtp_host)}",
                field="tls",
            )
        return self


MAILBOXES_CONTEXT = "mailboxes"
"""The validation context's key for the valid top-level mailboxes, by id.

Its value is ``(valid, declared)``: the mailboxes that validated, and every id declared
(one that failed is reported at its own place, and not again at each use).
"""


def _mailbox_reference(
    value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Credential:
    """A campaign's credential: its own fields, or ``{mailbox: id}`` naming a shared one."""
    if not isinstance(value, dict) or "mailbox" not in value:
        return handler(value)  # type: ignore[no-any-return]
    mailbox_id = value["mailbox"]
    for name in value:
        if name != "mailbox":
            there = mailbox_id if isinstance(mailbox_id, str) else "<id>"
            raise failure(
                "a credential that names a shared mailbox has only mailbox:; its other "
                f"fields are those of mailboxes.{there}",
                field=str(name),
            )
    context = info.context or {}
    valid, declared = context.get(MAILBOXES_CONTEXT, ({}, ()))
    if not isinstance(mailbox_id, str) or mailbox_id not in declared:
        known = suggest.listed(declared) or "none"
        hint = (
            suggest.did_you_mean(mailbox_id, declared, quote='"')
            if isinstance(mailbox_id, str)
            else None
        )
        raise failure(
            f"no mailbox {describe(mailbox_id)} under the top-level mailboxes: (declared: "
            f"{known}){'; ' + hint if hint else ''}",
            field="mailbox",
        )
    if mailbox_id not in valid:
        raise failure(
            f'mailbox "{mailbox_id}" is invalid: see mailboxes.{mailbox_id}', field="mailbox"
        )
    shared: Credential = valid[mailbox_id]
    return shared


CredentialEntry = Annotated[Credential, WrapValidator(_mailbox_reference)]
"""A campaign's credential: declared in place, or ``{mailbox: id}`` of a shared one."""

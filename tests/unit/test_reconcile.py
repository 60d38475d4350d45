"""reconcile.plan: every action kind, idempotence, and the re-enable rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from mailopsd.config.leads import LeadRow
from mailopsd.reconcile import (
    CampaignAdded,
    CampaignChanged,
    CampaignRemoved,
    CredentialAdded,
    CredentialChanged,
    CredentialReenabled,
    CredentialRemoved,
    Desired,
    LeadsChanged,
    LeadsDiff,
    LeadsFile,
    ListsDiff,
    Observed,
    ObservedCredential,
    SuppressionListFiles,
    SuppressionListsChanged,
    plan,
)

T0 = datetime(2026, 11, 16, tzinfo=UTC)
DISABLED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
KEY = ("acme", "primary")
CAMPAIGN = {"name": "ACME", "account": "default", "timezone": "UTC"}
CREDENTIAL = {
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "smtp_password": "hmac:aaa",
    "from_email": "ada@example.com",
    "daily_limit": 100,
}


def _row(email: str, name: str = "x", line: int = 2) -> LeadRow:
    return LeadRow(email, {"email": email, "name": name}, f"hash-{email}-{name}", line)


def _desired(
    *,
    campaigns: dict[str, dict[str, object]] | None = None,
    credentials: dict[tuple[str, str], dict[str, object]] | None = None,
    reenabled_at: datetime | None = None,
    leads: dict[str, LeadsFile] | None = None,
) -> Desired:
    credentials = {KEY: CREDENTIAL} if credentials is None else credentials
    return Desired(
        revision="sha256:abc",
        content_hash="abc",
        campaigns={"acme": CAMPAIGN} if campaigns is None else campaigns,
        credentials=credentials,
        reenabled_at={key: reenabled_at for key in credentials},
        leads={"acme": LeadsFile("leads.csv", "d1")} if leads is None else leads,
        secret_fields=frozenset({"smtp_password"}),
    )


def _applied(**states: ObservedCredential) -> Observed:
    """The observed state after _desired() was applied."""
    return Observed(
        campaigns={"acme": CAMPAIGN},
        credentials={KEY: CREDENTIAL},
        leads_digests={"acme": "d1"},
        credential_states={tuple(k.split("/")): v for k, v in states.items()},  # type: ignore[misc]
    )


class TestActions:
    """One test per action kind."""

    def test_everything_new(self) -> None:
        """A first reconcile adds the campaign, its credential and its leads."""
        diff = LeadsDiff(1, added=(_row("a@x.io"),))
        result = plan(_desired(), Observed(), {"acme": diff})
        assert [type(a) for a in result.actions] == [CampaignAdded, CredentialAdded, LeadsChanged]
        assert result.lines() == [
            "+ campaign acme (ACME)",
            "+ credential acme/primary (ada@example.com via smtp.example.com:587)",
            "~ leads acme: +1 added, ~0 changed, -0 removed (leads.csv)",
        ]

    def test_same_input_twice_is_empty(self) -> None:
        """Once applied, the same desired state plans nothing."""
        assert plan(_desired(), _applied()).is_empty

    def test_the_snapshot_last_applied_is_not_compared_again(self) -> None:
        """A snapshot that is the very one the ledger was last given plans nothing; a new
        one is compared, and one gone from the ledger is added again."""
        snapshot = dict(CREDENTIAL)
        desired = _desired(credentials={KEY: snapshot})
        stale = replace(_applied(), credentials={KEY: {**CREDENTIAL, "daily_limit": 5}})
        assert plan(desired, stale, applied=desired).is_empty
        other = _desired(credentials={KEY: dict(snapshot)})
        changed = plan(desired, stale, applied=other)
        assert [type(a) for a in changed.actions] == [CredentialChanged]
        gone = plan(desired, replace(stale, credentials={}), applied=desired)
        assert [type(a) for a in gone.actions] == [CredentialAdded]

    def test_a_campaigns_credentials_last_applied_are_not_compared_again(self) -> None:
        """A campaign's credentials that are the very part last applied plan nothing; one
        gone from the ledger is added again, one the config dropped is removed."""
        part = {KEY: dict(CREDENTIAL)}
        desired = replace(_desired(credentials=part), credential_parts={"acme": part})
        stale = replace(_applied(), credentials={KEY: {**CREDENTIAL, "daily_limit": 5}})
        assert plan(desired, stale, applied=desired).is_empty
        assert [type(a) for a in plan(desired, stale).actions] == [CredentialChanged]
        gone = plan(desired, replace(stale, credentials={}), applied=desired)
        assert [type(a) for a in gone.actions] == [CredentialAdded]
        extra = ("acme", "old")
        more = replace(stale, credentials={**stale.credentials, extra: CREDENTIAL})
        assert plan(desired, more, applied=desired).actions == (CredentialRemoved(*extra),)

    def test_the_campaign_last_applied_is_not_compared_again(self) -> None:
        """A campaign snapshot that is the very one last applied plans nothing; a new one
        is compared, and one gone from the ledger is added again."""
        snapshot = dict(CAMPAIGN)
        desired = _desired(campaigns={"acme": snapshot})
        stale = replace(_applied(), campaigns={"acme": {**CAMPAIGN, "timezone": "Europe/Paris"}})
        assert plan(desired, stale, applied=desired).is_empty
        changed = plan(desired, stale, applied=_desired(campaigns={"acme": dict(snapshot)}))
        assert [type(a) for a in changed.actions] == [CampaignChanged]
        gone = plan(desired, replace(stale, campaigns={}), applied=desired)
        assert [type(a) for a in gone.actions] == [CampaignAdded]

    def test_campaign_changed_names_fields(self) -> None:
        """A changed campaign names its changed fields with old and new values."""
        changed = {**CAMPAIGN, "timezone": "Europe/Paris"}
        result = plan(_desired(campaigns={"acme": changed}), _applied())
        assert result.actions == (CampaignChanged("acme", ("timezone",), changed, CAMPAIGN),)
        assert result.lines() == ["~ campaign acme: timezone UTC -> Europe/Paris"]

    def test_credential_changed_hides_secrets(self) -> None:
        """A changed password is named as changed, never shown; a new host is called out."""
        changed = {**CREDENTIAL, "smtp_password": "hmac:bbb", "smtp_host": "smtp.other.net"}
        result = plan(_desired(credentials={KEY: changed}), _applied())
        (action,) = result.actions
        assert isinstance(action, CredentialChanged)
        assert action.fields == ("smtp_host", "smtp_password")
        assert result.lines() == [
            "~ credential acme/primary: smtp_host smtp.example.com -> smtp.other.net, "
            "smtp_password (changed) [!] the password now goes to a different host"
        ]
        assert "hmac" not in result.lines()[0]

    def test_settings_with_fields_show_each_change(self) -> None:
        """A changed ramp names each changed field; a new spread shows its value; a list
        is only named."""
        before = {**CREDENTIAL, "ramp": {"every": "1 day", "start": 2, "step": 2}}
        changed = {
            **CREDENTIAL,
            "ramp": {"start": 5, "step": 2, "every": "2 days"},
            "min_interval": {"min": "90 seconds", "max": "140 seconds"},
            "imap_folders": ["INBOX", "Junk"],
        }
        observed = Observed(
            campaigns={"acme": CAMPAIGN},
            credentials={KEY: before},
            leads_digests={"acme": "d1"},
        )
        result = plan(_desired(credentials={KEY: changed}), observed)
        assert result.lines() == [
            "~ credential acme/primary: ramp.start 2 -> 5, ramp.every 1 day -> 2 days, "
            "min_interval None -> {min: 90 seconds, max: 140 seconds}, imap_folders (changed)"
        ]

    def test_a_send_window_shows_each_changed_field(self) -> None:
        """Per-lead time zones appear as send_window.timezone; its days list only as changed."""
        window = {"days": ["mon"], "start": "09:00", "end": "17:00"}
        before = {**CAMPAIGN, "send_window": window}
        changed = {
            **CAMPAIGN,
            "send_window": {**window, "days": ["mon", "tue"], "timezone": {"column": "tz"}},
        }
        observed = Observed(
            campaigns={"acme": before}, credentials={KEY: CREDENTIAL}, leads_digests={"acme": "d1"}
        )
        result = plan(_desired(campaigns={"acme": changed}), observed)
        assert result.lines() == [
            "~ campaign acme: send_window.days (changed), send_window.timezone None -> {column: tz}"
        ]

    def test_credential_removed(self) -> None:
        """A credential gone from the config is removed (history kept)."""
        result = plan(_desired(credentials={}), _applied())
        assert result.actions == (CredentialRemoved("acme", "primary"),)
        assert result.lines() == ["- credential acme/primary (stops; its history is kept)"]

    def test_campaign_removed(self) -> None:
        """A campaign gone from the config is removed with its credentials."""
        result = plan(_desired(campaigns={}, credentials={}, leads={}), _applied())
        assert result.actions == (CredentialRemoved("acme", "primary"), CampaignRemoved("acme"))

    def test_leads_difference_only(self) -> None:
        """A changed leads file imports the difference the ledger found, from its stage."""
        diff = LeadsDiff(7, (_row("c@x.io"),), (_row("b@x.io", "new"),), ("d@x.io",), ("bad",))
        result = plan(
            _desired(leads={"acme": LeadsFile("leads.csv", "d2")}), _applied(), {"acme": diff}
        )
        assert result.actions == (
            LeadsChanged(
                "acme",
                "default",
                "leads.csv",
                "d2",
                7,
                diff.added,
                diff.updated,
                diff.removed,
                diff.problems,
            ),
        )
        assert result.lines() == [
            "~ leads acme: +1 added, ~1 changed, -1 removed, 1 rows skipped (leads.csv)"
        ]

    def test_unchanged_leads_file_is_no_work(self) -> None:
        """The same digest means no leads action, even without rows."""
        diff = LeadsDiff(1, added=(_row("a@x.io"),))
        assert plan(_desired(), _applied(), {"acme": diff}).is_empty


class TestSuppressionLists:
    """An account's suppression lists: changed when their digest is, gone when unlisted."""

    @staticmethod
    def _with_lists(digest: str) -> Desired:
        lists = {"default": SuppressionListFiles(("dnc.txt", "x.csv"), digest)}
        return replace(_desired(), suppression_lists=lists)

    def test_changed_lists_say_what_they_add_and_remove(self) -> None:
        """A changed digest plans the difference the ledger found, with examples."""
        diff = ListsDiff(3, 1, 0, 1, 2, ("+bob@acme.example", "+@acme.example", "-@old.example"))
        observed = replace(_applied(), suppression_digests={"default": "l1"})
        result = plan(self._with_lists("l2"), observed, lists={"default": diff})
        assert result.actions == (
            SuppressionListsChanged("default", ("dnc.txt", "x.csv"), "l2", diff),
        )
        assert result.lines() == [
            "~ suppression lists of account default: +1 address, +1 domain, -2 domains "
            "(dnc.txt, x.csv): +bob@acme.example, +@acme.example, -@old.example"
        ]

    def test_same_digest_is_no_work(self) -> None:
        """Lists whose digest the ledger has are not compared again."""
        observed = replace(_applied(), suppression_digests={"default": "l1"})
        assert plan(self._with_lists("l1"), observed).is_empty

    def test_lists_gone_from_the_config(self) -> None:
        """An account whose lists left the config has them removed, entries and all."""
        diff = ListsDiff(4, removed_addresses=1)
        observed = replace(_applied(), suppression_digests={"default": "l1"})
        result = plan(_desired(), observed, lists={"default": diff})
        assert result.actions == (SuppressionListsChanged("default", (), None, diff),)
        assert result.lines() == [
            "~ suppression lists of account default: -1 address (no lists now)"
        ]


class TestReenable:
    """A credential is disabled while disabled_at has no reenabled_at at or after it."""

    def test_reenabled_at_after_disable(self) -> None:
        """reenabled_at after disabled_at re-enables."""
        at = datetime(2026, 11, 23, 12, tzinfo=UTC)
        result = plan(
            _desired(reenabled_at=at),
            _applied(**{"acme/primary": ObservedCredential(disabled_at=DISABLED)}),
        )
        assert result.actions == (CredentialReenabled("acme", "primary", at, DISABLED),)

    def test_reenabled_at_equal_to_disable(self) -> None:
        """reenabled_at equal to disabled_at re-enables (at or after)."""
        result = plan(
            _desired(reenabled_at=DISABLED),
            _applied(**{"acme/primary": ObservedCredential(disabled_at=DISABLED)}),
        )
        assert [type(a) for a in result.actions] == [CredentialReenabled]

    def test_stale_reenabled_at_does_nothing(self) -> None:
        """A reenabled_at older than a later auto-disable does nothing."""
        result = plan(
            _desired(reenabled_at=T0),
            _applied(**{"acme/primary": ObservedCredential(disabled_at=DISABLED, reenabled_at=T0)}),
        )
        assert result.is_empty

    def test_not_disabled_needs_nothing(self) -> None:
        """A reenabled_at on a credential that is not disabled does nothing."""
        result = plan(
            _desired(reenabled_at=DISABLED),
            _applied(**{"acme/primary": ObservedCredential(reenabled_at=DISABLED)}),
        )
        assert result.is_empty

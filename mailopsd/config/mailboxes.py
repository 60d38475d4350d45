"""Mailboxes shared by campaigns: declared once under ``mailboxes:``, named with ``mailbox:``.

Before the campaigns are validated, each top-level mailbox is validated on its own; the
valid ones go to the validation context, where a campaign's ``{mailbox: id}`` takes the
very object (see ``models.CredentialEntry``). A mailbox that fails is reported at its own
place by the whole config's validation. After it, the notes: a mailbox no campaign uses,
and one SMTP login declared in two places without sharing (its limits would not hold
across them). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr, ValidationError

from mailopsd.config import suggest
from mailopsd.config.models import MAILBOXES_CONTEXT, Campaign, Config, Credential
from mailopsd.config.origins import Loc, Merge
from mailopsd.errors import ConfigIssue

__all__ = [
    "Login",
    "Place",
    "Shared",
    "campaign_places",
    "credential_places",
    "duplicate_logins",
    "login",
    "mailbox_places",
    "unused_mailboxes",
]


@dataclass
class Shared:
    """The top-level mailboxes as validated alone, for the campaigns that name them.

    Attributes:
        valid: The mailboxes that validated, by id (each knows its id: ``shared_as``).
        declared: Every mailbox id declared, valid or not.
    """

    valid: dict[str, Credential] = field(default_factory=dict)
    declared: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, data: Mapping[str, object], kept: Mapping[int, tuple[object, Credential]]
    ) -> Shared:
        """Validate the ``mailboxes`` of a merged tree, reusing what ``kept`` holds.

        Args:
            data: The merged tree.
            kept: Mailboxes validated by an earlier load, by ``id()`` of their tree: one
                whose tree is the same object is not validated again.
        """
        bodies = data.get("mailboxes")
        if not isinstance(bodies, dict):
            return cls()
        valid: dict[str, Credential] = {}
        for mailbox_id, body in bodies.items():
            known = kept.get(id(body))
            if known is not None and known[0] is body and known[1].shared_as == mailbox_id:
                valid[str(mailbox_id)] = known[1]
                continue
            try:
                valid[str(mailbox_id)] = Credential.model_validate(body).as_mailbox(str(mailbox_id))
            except ValidationError:
                continue  # reported where it is, by the whole config's validation
        return cls(valid, tuple(str(mailbox_id) for mailbox_id in bodies))

    @property
    def context(self) -> dict[str, object]:
        """The validation context through which campaigns find the mailboxes they name."""
        return {MAILBOXES_CONTEXT: (self.valid, self.declared)}

    def into(self, data: Mapping[str, object]) -> dict[str, object]:
        """The merged tree with each valid mailbox as its validated object (not again)."""
        bodies = data.get("mailboxes")
        if not isinstance(bodies, dict) or not self.valid:
            return dict(data)
        merged = {**bodies, **self.valid}
        return {**data, "mailboxes": merged}

    def kept(self, data: Mapping[str, object]) -> dict[int, tuple[object, Credential]]:
        """What a cache keeps of this validation, by ``id()`` of each mailbox's tree."""
        bodies = data.get("mailboxes")
        if not isinstance(bodies, dict):
            return {}
        return {
            id(body): (body, self.valid[str(mailbox_id)])
            for mailbox_id, body in bodies.items()
            if str(mailbox_id) in self.valid
        }


Place = tuple[tuple[str, ...], Credential]
"""A credential and where it is declared."""
Login = tuple[str, int, str]
"""An SMTP login: host (lower case), port, user name."""


def credential_places(config: Config) -> Iterator[Place]:
    """Each credential where it is declared, once: shared mailboxes, then campaigns' own."""
    yield from mailbox_places(config)
    for campaign_id, campaign in config.campaigns.items():
        yield from campaign_places(campaign_id, campaign)


def mailbox_places(config: Config) -> Iterator[Place]:
    """The shared mailboxes where they are declared."""
    for mailbox_id, mailbox in config.mailboxes.items():
        yield ("mailboxes", mailbox_id), mailbox


def campaign_places(campaign_id: str, campaign: Campaign) -> Iterator[Place]:
    """A campaign's own credentials (not the shared mailboxes it names) where declared."""
    for credential_id, credential in campaign.smtp_credentials.items():
        if credential.shared_as is None:
            yield ("campaigns", campaign_id, "smtp_credentials", credential_id), credential


def unused_mailboxes(config: Config, merge: Merge) -> list[ConfigIssue]:
    """A note for each top-level mailbox that no campaign names."""
    return [
        merge.source_for(loc).issue(
            loc,
            "no campaign uses this mailbox; name it in a campaign's smtp_credentials "
            f"({{mailbox: {mailbox_id}}}), or remove it",
            key=True,
        )
        for mailbox_id, uses in config.mailbox_uses.items()
        if not uses
        for loc in [("mailboxes", mailbox_id)]
    ]


def login(credential: Credential) -> Login:
    """A credential's SMTP login."""
    username: SecretStr = credential.smtp_username
    return (credential.smtp_host.lower(), credential.smtp_port, username.get_secret_value())


def duplicate_logins(
    config: Config,
    merge: Merge,
    is_sealed: Callable[[Loc], bool] | None,
    logins: Iterable[tuple[Login, tuple[str, ...]]],
) -> list[ConfigIssue]:
    """A note for each SMTP login declared in more than one place, at its second place.

    Two places with one login are one mailbox counted twice: each has its own daily cap
    and rate limit, so together they send more than either says. The note names the
    first place, and the others when there are more (one note per login, however many
    places repeat it). Logins still sealed (``--no-decrypt``) cannot be compared and are
    skipped.
    """
    places: dict[Login, list[tuple[str, ...]]] = {}
    for found, loc in logins:
        if is_sealed is None or not is_sealed((*loc, "smtp_username")):
            places.setdefault(found, []).append(loc)
    notes = []
    for group in places.values():
        if len(group) < 2:
            continue
        earlier, loc = group[0], group[1]
        credential = _declared_at(config, loc)
        there = merge.source_for(earlier).issue(earlier, "", key=True)
        more = [".".join(other) for other in group[2:]]
        also = f"; also at {suggest.listed(more)}" if more else ""
        notes.append(
            merge.source_for(loc).issue(
                (*loc, "smtp_username"),
                f"the same SMTP login ({credential.smtp_host}:{credential.smtp_port}) as "
                f"{'.'.join(earlier)} "
                f"({there.file}:{there.line}:{there.column}){also}: each place has its own "
                "daily_limit and rate limit, so together they send more than either allows; "
                f"{_sharing_advice(config, earlier, loc)}",
            )
        )
    return notes


def _declared_at(config: Config, loc: tuple[str, ...]) -> Credential:
    """The credential declared at ``loc`` (a place of :func:`credential_places`)."""
    if loc[0] == "mailboxes":
        return config.mailboxes[loc[1]]
    return config.campaigns[loc[1]].smtp_credentials[loc[3]]


def _sharing_advice(config: Config, earlier: tuple[str, ...], loc: tuple[str, ...]) -> str:
    """What to do about one login declared at ``earlier`` and again at ``loc``."""
    if earlier[0] != "mailboxes":
        return "declare it once under mailboxes: and name it with {mailbox: <id>} in each campaign"
    mailbox = earlier[1]
    if loc[0] == "mailboxes":
        return f"keep one: name mailboxes.{mailbox} where {loc[1]} is named, and remove {loc[1]}"
    credentials = config.campaigns[loc[1]].smtp_credentials
    named = [key for key, credential in credentials.items() if credential.shared_as == mailbox]
    if named:
        return (
            f"remove it: this campaign already sends from mailboxes.{mailbox} as "
            f"smtp_credentials.{named[0]}"
        )
    return f"name the shared mailbox instead of these fields: {loc[-1]}: {{mailbox: {mailbox}}}"

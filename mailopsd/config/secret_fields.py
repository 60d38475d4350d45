"""Checks on the secret fields of a validated config, as the files store them.

A secret stored in clear text is an error, with the command that encrypts it (unless
``--allow-plaintext-secrets``); a login name or password beyond ASCII is a note, since
only AUTH PLAIN carries it. A message names the field, never its value.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pydantic import SecretStr

from mailopsd import secrets
from mailopsd.config import mailboxes
from mailopsd.config.cache import LoadCache, per_campaign
from mailopsd.config.models import IMAP_FIELDS, Config
from mailopsd.config.origins import Merge, Source
from mailopsd.errors import ConfigIssue, SecretError

__all__ = ["Logins", "logins", "non_ascii_logins", "plaintext_secrets"]

SECRET_FIELDS_IN_ORDER = ("smtp_username", "smtp_password", *IMAP_FIELDS[2:])
Identities = Callable[[], secrets.IdentitySet]
_NON_ASCII_LOGIN = {
    "smtp": "has non-ASCII characters: mailopsd logs in with AUTH PLAIN in UTF-8 (RFC 4616), "
    "so the SMTP server must offer AUTH PLAIN; if it does not, this credential sends nothing "
    "and its status says why (an ASCII {what} avoids this)",
    "imap": "has non-ASCII characters: mailopsd logs in with AUTHENTICATE PLAIN in UTF-8 "
    "(RFC 4616), so the IMAP server must offer AUTH=PLAIN; if it does not, this mailbox's "
    "replies and bounces are not read and its status says why (an ASCII {what} avoids this)",
}


def _secrets_of(places: Iterable[mailboxes.Place]) -> Iterator[tuple[str, ...]]:
    """Where some credentials hold a secret, in the order they are declared."""
    for loc, credential in places:
        for name in SECRET_FIELDS_IN_ORDER:
            if getattr(credential, name) is not None:
                yield (*loc, name)


def _clear(merge: Merge, locs: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The secrets among ``locs`` (of one campaign, or one mailbox) held in clear text.

    A campaign, or a shared mailbox, is in one file: its first secret names it.
    """
    found = list(locs)
    if not found:
        return []
    encrypted = merge.source_for(found[0]).encrypted
    return [loc for loc in found if loc not in encrypted]


def _secret_values(
    config: Config, merge: Merge, cache: LoadCache | None
) -> Iterator[tuple[str, ...]]:
    """Where the config holds a secret in clear: each credential's, then http's.

    A campaign's are worked out again only when it changed (see ``per_campaign``).
    """
    for place in mailboxes.mailbox_places(config):
        yield from _clear(merge, _secrets_of([place]))
    for found in per_campaign(
        cache,
        config.campaigns,
        lambda cid, campaign: _clear(merge, _secrets_of(mailboxes.campaign_places(cid, campaign))),
        kind="clear secrets",
    ):
        yield from found
    if config.http is not None:
        yield from _clear(merge, [("http", "signing_key")])


def _own_recipients(identities: Identities | None) -> tuple[str, ...]:
    """The recipients of the age identities this load would decrypt with, if any."""
    if identities is None:
        return ()
    try:
        found = identities()
    except SecretError:
        return ()
    return tuple(str(identity.to_public()) for identity in found.identities)


def _encrypt_advice(source: Source, them: str, identities: Identities | None) -> str:
    """The command that encrypts a clear file's secrets so that this load can open them.

    A ``.sops.yaml`` rule is followed when it encrypts for one of the identities at hand;
    otherwise the command names their recipients with ``--age`` (a file encrypted for
    others' keys only would not open here). Without any identity, making one comes first.
    """
    name = shlex.quote(source.name)
    mine = _own_recipients(identities)
    try:
        rule = secrets.find_creation_rule(source.path)
    except SecretError:  # the encrypt command reports a broken .sops.yaml itself
        rule = None
    if rule is not None and (not mine or set(mine) & set(rule.recipients)):
        return f"encrypt {them} with: mailopsd secrets encrypt --in-place {name}"
    if mine:
        ages = " ".join(f"--age {recipient}" for recipient in mine)
        return f"encrypt {them} with: mailopsd secrets encrypt {ages} --in-place {name}"
    return (
        f"encrypt {them} for your own age key: make one with: mailopsd secrets keygen -o "
        "~/.config/sops/age/keys.txt, then check again for the command that encrypts "
        f"{name}"
    )


def plaintext_secrets(
    config: Config, merge: Merge, identities: Identities | None, cache: LoadCache | None = None
) -> list[ConfigIssue]:
    """Return one issue per file whose secret fields are stored in clear text.

    Args:
        config: The validated configuration.
        merge: The file each part of it came from, and what was encrypted there.
        identities: Returns the age identities this load decrypts with, if any: the
            advice encrypts for them.
        cache: Kept by a running daemon: unchanged campaigns are not looked at again.

    Returns:
        The issues, each at the first such field of its file, with the command that
        encrypts them.
    """
    found: dict[str, list[tuple[str, ...]]] = {}
    for loc in _secret_values(config, merge, cache):
        found.setdefault(merge.source_for(loc).name, []).append(loc)
    issues = []
    for locs in found.values():
        source = merge.source_for(locs[0])
        many = len(locs) > 1
        count = f"{len(locs)} secret fields are" if many else "this secret field is"
        them = "them" if many else "it"
        if source.is_sops:
            advice = (
                f"the file's encryption rule does not cover {them}: move {them} to a new "
                "file and encrypt that with: mailopsd secrets encrypt --in-place FILE, or "
                f"decrypt this file and encrypt it again with a rule that covers {them}"
            )
        else:
            advice = _encrypt_advice(source, them, identities)
        issues.append(
            source.issue(
                locs[0],
                f"{count} stored in clear text; {advice} "
                "(or pass --allow-plaintext-secrets for a local demo)",
            )
        )
    return issues


@dataclass(frozen=True)
class Logins:
    """What the notes on logins need of some credentials: a load keeps it per campaign.

    Attributes:
        smtp: Each SMTP login with where its credential is declared.
        beyond_ascii: The login fields (user names, passwords) beyond ASCII.
    """

    smtp: tuple[tuple[mailboxes.Login, tuple[str, ...]], ...]
    beyond_ascii: tuple[tuple[str, ...], ...]


def logins(places: Iterable[mailboxes.Place]) -> Logins:
    """The logins of the credentials at ``places``."""
    smtp = []
    beyond: list[tuple[str, ...]] = []
    for loc, credential in places:
        smtp.append((mailboxes.login(credential), loc))
        for name in SECRET_FIELDS_IN_ORDER:
            value: SecretStr | None = getattr(credential, name)
            if value is not None and not value.get_secret_value().isascii():
                beyond.append((*loc, name))
    return Logins(tuple(smtp), tuple(beyond))


def non_ascii_logins(merge: Merge, found: Iterable[Logins]) -> list[ConfigIssue]:
    """Return a note for each login field beyond ASCII: only AUTH PLAIN carries it.

    The note names the field, never its value or which characters are not ASCII.
    """
    notes = []
    for part in found:
        for loc in part.beyond_ascii:
            protocol, what = loc[-1].split("_", 1)
            notes.append(
                merge.source_for(loc).issue(loc, _NON_ASCII_LOGIN[protocol].format(what=what))
            )
    return notes

"""How a credential is named across mailopsd: by its campaign and its own id.

In memory a credential is the pair ``(campaign id, credential id)``; in the state file,
the status and the API its entry is keyed ``campaign/credential``. Both forms are built
here only. A mailbox shared by campaigns (top-level ``mailboxes``) is one sender behind
several such pairs: where one thing per mailbox is kept (its limits within a tick, its
SMTP backoff, its IMAP poll), it is the pair ``("", mailbox id)``, which no campaign's
credential can be (a campaign id is never empty). Pure.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = [
    "CredentialRef",
    "credential_key",
    "is_shared",
    "mailbox_ref",
    "parse_credential_key",
    "sender_ref",
]

CredentialRef: TypeAlias = tuple[str, str]
"""A credential: ``(campaign id, credential id)``."""


def credential_key(campaign_id: str, credential_id: str) -> str:
    """The key of a credential in the state file: ``campaign/credential``."""
    return f"{campaign_id}/{credential_id}"


def parse_credential_key(key: str) -> CredentialRef:
    """The credential a state-file key names (``campaign/credential``).

    A campaign id holds no ``/``, so the first one splits the key.
    """
    campaign_id, _, credential_id = key.partition("/")
    return campaign_id, credential_id


def mailbox_ref(mailbox_id: str) -> CredentialRef:
    """The one pair that stands for a shared mailbox wherever it is used."""
    return ("", mailbox_id)


def is_shared(ref: CredentialRef) -> bool:
    """Tell whether ``ref`` stands for a shared mailbox (see ``mailbox_ref``)."""
    return ref[0] == ""


def sender_ref(key: CredentialRef, shared_as: str | None) -> CredentialRef:
    """Who sends for a campaign's credential: its shared mailbox if it names one, else itself.

    Args:
        key: The campaign's credential.
        shared_as: The id of the shared mailbox it names (``Credential.shared_as``), if any.
    """
    return key if shared_as is None else mailbox_ref(shared_as)

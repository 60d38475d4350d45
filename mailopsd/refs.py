"""How a credential is named across mailopsd: by its campaign and its own id.

In memory a credential is the pair ``(campaign id, credential id)``; in the state file,
the status and the API its entry is keyed ``campaign/credential``. Both forms are built
here only. Pure.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["CredentialRef", "credential_key", "parse_credential_key"]

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

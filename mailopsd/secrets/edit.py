"""Changing the plaintext of a SOPS file by a function, as ``mailopsd secrets edit`` does.

The file is decrypted, the function edits its plaintext, and the result is encrypted
again with the file's own data key, recipients, rule and MAC scope (and its encrypted
comments kept): new values under keys the rule covers are sealed, and ``sops`` opens the
result. The HTTP API changes credentials this way, with the text edits of
``mailopsd.config.edits``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailopsd.secrets import age
from mailopsd.secrets.sopsfile import decrypt_text, encrypt_text, is_encrypted_text

__all__ = ["edit_sops_file"]


def edit_sops_file(
    text: str,
    identities: age.IdentitySet,
    where: str,
    edit: Callable[[str], str],
    *,
    now: datetime,
) -> str:
    """Return ``text`` with ``edit`` applied to its plaintext, encrypted again as it was.

    A plaintext (non-SOPS) file is edited as it is. When ``edit`` changes nothing, the
    file's text is returned unchanged (no new ``lastmodified`` or MAC).

    Args:
        text: The file's text: SOPS-encrypted (YAML or JSON) or plaintext.
        identities: The age identities that open the file's data key.
        where: The file name (``.json`` selects JSON), for messages.
        edit: Changes a plaintext file's text; its errors propagate.
        now: The time written as ``lastmodified``.

    Returns:
        The new file text.

    Raises:
        SecretError: The file cannot be opened (no identity for it, a MAC mismatch) or
            the edited plaintext cannot be encrypted.
    """
    if not is_encrypted_text(text, where):
        return edit(text)
    decrypted = decrypt_text(text, identities, where)
    edited = edit(decrypted.text)
    if edited == decrypted.text:
        return text
    return encrypt_text(
        edited,
        decrypted.options(),
        where,
        now=now,
        data_key=decrypted.data_key,
        comment_aads=decrypted.comment_aads,
    )

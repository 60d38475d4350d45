"""Keys of the credentials API: made once, shown once, stored only as their sha256.

The config declares each key by name with its account and the hex sha256 of the key's
UTF-8 text; whoever holds the key sends it as ``Authorization: Bearer <key>``. A
leaked config therefore gives no key, and a key is never written anywhere by mailopsd.
Pure: randomness is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping

from mailopsd.config.models import ApiKey

__all__ = ["KEY_BYTES", "KEY_PREFIX", "find_api_key", "generate_api_key", "hash_api_key"]

KEY_PREFIX = "mk_"
KEY_BYTES = 32


def generate_api_key(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """Make a new key: ``mk_`` and 32 random bytes in URL-safe base64 (no padding).

    Args:
        random_bytes: The source of randomness (tests pass a fixed one).

    Returns:
        The key, to be shown once and stored by its holder only.
    """
    encoded = base64.urlsafe_b64encode(random_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")
    return KEY_PREFIX + encoded


def hash_api_key(key: str) -> str:
    """The value of ``api_keys.<name>.sha256`` for ``key``: its sha256, lowercase hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def find_api_key(keys: Mapping[str, ApiKey], presented: str) -> str | None:
    """Find which declared key ``presented`` is, comparing hashes in constant time.

    Args:
        keys: The config's ``api_keys``, by name.
        presented: The key a client sent (the text after ``Bearer``).

    Returns:
        The name of the matching key, or ``None``.
    """
    digest = hash_api_key(presented)
    found = None
    for name, declared in keys.items():
        # Every entry is compared, so the time taken does not tell which one matched.
        if hmac.compare_digest(digest, declared.sha256):
            found = name
    return found

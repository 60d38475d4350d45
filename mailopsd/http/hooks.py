"""The git webhook's signature: HMAC-SHA256 of the body with the shared secret.

GitHub sends ``X-Hub-Signature-256: sha256=<hex>``; Gitea and Forgejo send
``X-Gitea-Signature: <hex>`` (and the GitHub header too); Gogs sends
``X-Gogs-Signature: <hex>``. Any one that matches is enough. Compared in constant time.
Pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["PATH", "is_signed"]

PATH = "/hooks/git"
"""Where the webhook is posted."""

_HEADERS = (
    ("HTTP_X_HUB_SIGNATURE_256", "sha256="),
    ("HTTP_X_GITEA_SIGNATURE", ""),
    ("HTTP_X_GOGS_SIGNATURE", ""),
)


def is_signed(secret: bytes, body: bytes, environ: Mapping[str, object]) -> bool:
    """Tell whether a signature header of the request is the body's HMAC under ``secret``."""
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    for header, prefix in _HEADERS:
        given = environ.get(header)
        if (
            isinstance(given, str)
            and given.startswith(prefix)
            and hmac.compare_digest(given[len(prefix) :].strip().lower(), expected)
        ):
            return True
    return False

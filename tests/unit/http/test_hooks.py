"""The git webhook's signature, as GitHub, Gitea/Forgejo and Gogs send it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mailopsd.http.hooks import is_signed

SECRET = b"shared-secret"
BODY = b'{"ref": "refs/heads/main"}'
MAC = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_HUB_SIGNATURE_256": f"sha256={MAC}"},  # GitHub, Gitea, Forgejo
        {"HTTP_X_GITEA_SIGNATURE": MAC},  # Gitea, Forgejo
        {"HTTP_X_GOGS_SIGNATURE": MAC.upper()},  # Gogs (hex in either case)
        {"HTTP_X_GITEA_SIGNATURE": "0" * 64, "HTTP_X_HUB_SIGNATURE_256": f"sha256={MAC}"},
    ],
)
def test_a_signature_of_the_body_is_accepted(headers: dict[str, str]) -> None:
    assert is_signed(SECRET, BODY, headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_HUB_SIGNATURE_256": MAC},  # the prefix is part of GitHub's header
        {"HTTP_X_HUB_SIGNATURE": "sha1=" + hmac.new(SECRET, BODY, "sha1").hexdigest()},
        {"HTTP_X_GITEA_SIGNATURE": hmac.new(b"other", BODY, hashlib.sha256).hexdigest()},
        {"HTTP_X_GITEA_SIGNATURE": ""},
    ],
)
def test_anything_else_is_refused(headers: dict[str, str]) -> None:
    """No header, SHA-1 only, another secret, an empty one: refused."""
    assert not is_signed(SECRET, BODY, headers)


def test_the_signature_covers_the_whole_body() -> None:
    assert not is_signed(SECRET, BODY + b" ", {"HTTP_X_GITEA_SIGNATURE": MAC})

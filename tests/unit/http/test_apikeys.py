"""API keys: made with the given randomness, declared by hash, found in constant time."""

from __future__ import annotations

import hashlib

from mailopsd.config.models import ApiKey
from mailopsd.http import apikeys


def _fixed(size: int) -> bytes:
    return bytes(range(size))


class TestGenerate:
    """generate_api_key."""

    def test_format(self) -> None:
        """A key is mk_ and 32 bytes of URL-safe base64 without padding."""
        key = apikeys.generate_api_key(_fixed)
        assert key == "mk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
        assert apikeys.generate_api_key() != apikeys.generate_api_key()


class TestHashAndFind:
    """hash_api_key and find_api_key."""

    def test_hash_is_sha256_hex(self) -> None:
        """The declared hash is the sha256 of the key's text, lowercase hex."""
        assert apikeys.hash_api_key("mk_x") == hashlib.sha256(b"mk_x").hexdigest()

    def test_finds_the_matching_name(self) -> None:
        """The key presented is found by its hash; an unknown key finds nothing."""
        keys = {
            "ops": ApiKey(account="default", sha256=apikeys.hash_api_key("mk_ops")),
            "bi": ApiKey(account="other", sha256=apikeys.hash_api_key("mk_bi")),
        }
        assert apikeys.find_api_key(keys, "mk_bi") == "bi"
        assert apikeys.find_api_key(keys, "mk_ops") == "ops"
        assert apikeys.find_api_key(keys, "mk_nope") is None
        assert apikeys.find_api_key({}, "mk_ops") is None

"""A credential's two names: the pair in memory and the ``campaign/credential`` key."""

from __future__ import annotations

from mailopsd.refs import credential_key, parse_credential_key


class TestCredentialKey:
    """Building and reading the state-file key of a credential."""

    def test_key_joins_campaign_and_credential(self) -> None:
        """The key is the campaign id, a slash, the credential id."""
        assert credential_key("acme", "primary") == "acme/primary"

    def test_parse_gives_back_the_pair(self) -> None:
        """Reading a key gives the pair it was built from."""
        assert parse_credential_key(credential_key("acme-2", "box-1")) == ("acme-2", "box-1")

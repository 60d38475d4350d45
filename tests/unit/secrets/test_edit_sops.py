"""Editing a SOPS-encrypted config through its plaintext, re-encrypted with its own key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd import goyaml, secrets
from mailopsd.config import edits, load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.errors import SecretError
from mailopsd.secrets.edit import edit_sops_file
from tests.configs import BASE, CANARY, LEADS
from tests.sops_tools import AgeKey, make_key, run_sops

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
NEW_CANARY = "canary-New-0123-7e1d"
NEW = {
    "smtp_host": "smtp.new.example.com",
    "smtp_port": 465,
    "smtp_username": "0123",
    "smtp_password": NEW_CANARY,
    "from_name": "Bob",
    "from_email": "bob@example.com",
    "daily_limit": 50,
}
PLAIN = BASE.replace("      primary:\n", "      # the main mailbox\n      primary:\n")


def encrypted(path: Path, key: AgeKey, *, mac_only_encrypted: bool) -> str:
    """Write PLAIN encrypted for ``key`` (as ``secrets encrypt`` does) beside its leads."""
    options = secrets.EncryptOptions(
        (key.recipient,),
        secrets.secret_fields_rule(SECRET_FIELDS),
        mac_only_encrypted=mac_only_encrypted,
    )
    text = secrets.encrypt_text(PLAIN, options, str(path), now=NOW)
    path.write_text(text)
    (path.parent / "leads.csv").write_text(LEADS)
    return text


def add_new(where: str) -> Callable[[str], str]:
    """The edit that adds credential ``second`` to acme-q4."""
    return lambda text: edits.add_credential(text, "acme-q4", "second", NEW, where)


class TestEditSopsFile:
    @pytest.mark.parametrize("mac_only_encrypted", [True, False])
    def test_new_secret_sealed_and_sops_opens_it(
        self, tmp_path: Path, key: AgeKey, mac_only_encrypted: bool
    ) -> None:
        """A new password is stored sealed; sops and mailopsd open the file; same data key."""
        path = tmp_path / "c.yaml"
        before = encrypted(path, key, mac_only_encrypted=mac_only_encrypted)
        after = edit_sops_file(before, key.identities(), str(path), add_new(str(path)), now=NOW)
        assert NEW_CANARY not in after
        assert CANARY not in after
        data = goyaml.parse_yaml(after).data
        second = data["campaigns"]["acme-q4"]["smtp_credentials"]["second"]
        assert str(second["smtp_password"]).startswith("ENC[AES256_GCM,")
        assert second["smtp_host"] == "smtp.new.example.com"  # outside the rule: in clear
        assert data["sops"].get("mac_only_encrypted", False) is mac_only_encrypted
        path.write_text(after)

        result = run_sops(["decrypt", str(path)], key.path)
        assert result.returncode == 0, result.stderr
        opened = goyaml.parse_yaml(result.stdout).data["campaigns"]["acme-q4"]["smtp_credentials"]
        assert opened["second"]["smtp_password"] == NEW_CANARY
        assert opened["second"]["smtp_username"] == "0123"
        assert opened["primary"]["smtp_password"] == CANARY
        assert "# the main mailbox" in result.stdout

        loaded = load_config(path, LoadOptions(identities=key.identities))
        credential = loaded.config.campaigns["acme-q4"].smtp_credentials["second"]
        assert credential.smtp_password.get_secret_value() == NEW_CANARY
        assert credential.smtp_port == 465

        old = secrets.decrypt_text(before, key.identities(), str(path))
        new = secrets.decrypt_text(after, key.identities(), str(path))
        assert new.data_key == old.data_key
        assert new.meta.recipients == old.meta.recipients
        assert new.meta.rule == old.meta.rule
        assert new.meta.mac_only_encrypted == old.meta.mac_only_encrypted

    def test_only_the_edit_changes_the_plaintext(self, tmp_path: Path, key: AgeKey) -> None:
        """The decrypted result is the decrypted original with the edit made."""
        path = tmp_path / "c.yaml"
        before = encrypted(path, key, mac_only_encrypted=True)
        after = edit_sops_file(before, key.identities(), str(path), add_new(str(path)), now=NOW)
        plain_after = secrets.decrypt_text(after, key.identities(), str(path)).text
        assert plain_after == edits.add_credential(PLAIN, "acme-q4", "second", NEW, str(path))

    def test_no_change_keeps_the_file(self, tmp_path: Path, key: AgeKey) -> None:
        """An edit that changes nothing leaves the file's text as it was."""
        path = tmp_path / "c.yaml"
        before = encrypted(path, key, mac_only_encrypted=True)
        assert edit_sops_file(before, key.identities(), str(path), str, now=NOW) == before

    def test_plaintext_file_edited_as_is(self, tmp_path: Path, key: AgeKey) -> None:
        """A file that is not SOPS-encrypted gets the edit alone."""
        after = edit_sops_file(PLAIN, key.identities(), "c.yaml", add_new("c.yaml"), now=NOW)
        assert after == edits.add_credential(PLAIN, "acme-q4", "second", NEW, "c.yaml")

    def test_other_key_refused(self, tmp_path: Path, key: AgeKey) -> None:
        """A file the identities do not open is refused, the text untouched."""
        path = tmp_path / "c.yaml"
        before = encrypted(path, key, mac_only_encrypted=True)
        other = make_key(tmp_path, "other.txt")
        with pytest.raises(SecretError):
            edit_sops_file(before, other.identities(), str(path), add_new(str(path)), now=NOW)

    def test_edit_errors_propagate(self, tmp_path: Path, key: AgeKey) -> None:
        """The edit's own error (an existing id) reaches the caller; nothing is encrypted."""
        path = tmp_path / "c.yaml"
        before = encrypted(path, key, mac_only_encrypted=True)

        def add_primary(text: str) -> str:
            return edits.add_credential(text, "acme-q4", "primary", NEW, str(path))

        with pytest.raises(edits.CredentialEditError, match="already exists"):
            edit_sops_file(before, key.identities(), str(path), add_primary, now=NOW)

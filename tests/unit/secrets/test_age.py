"""Finding age identities in the documented order, and reading key files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailopsd.errors import SecretError
from mailopsd.secrets import find_identities, parse_identities
from tests.sops_tools import make_key


class TestDiscovery:
    """--age-key-file, then the environment, then ~/.config/sops/age/keys.txt."""

    def test_order(self, tmp_path: Path) -> None:
        """Each place wins over every place after it."""
        keys = {
            name: make_key(tmp_path, f"{name}.txt")
            for name in ("flag", "ours", "cred", "sops", "inline", "home")
        }
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "age-key").write_text(keys["cred"].path.read_text())
        (credentials / "age-key").chmod(0o600)
        home = tmp_path / "home"
        (home / ".config" / "sops" / "age").mkdir(parents=True)
        (home / ".config" / "sops" / "age" / "keys.txt").write_text(keys["home"].path.read_text())
        (home / ".config" / "sops" / "age" / "keys.txt").chmod(0o600)
        inline = keys["inline"].path.read_text().splitlines()[-1]
        environ = {
            "MAILOPSD_AGE_KEY_FILE": str(keys["ours"].path),
            "CREDENTIALS_DIRECTORY": str(credentials),
            "SOPS_AGE_KEY_FILE": str(keys["sops"].path),
            "SOPS_AGE_KEY": inline,
        }
        found = find_identities(key_file=keys["flag"].path, environ=environ, home=home)
        assert found.where == str(keys["flag"].path)
        expected = [
            ("MAILOPSD_AGE_KEY_FILE", str(keys["ours"].path)),
            ("CREDENTIALS_DIRECTORY", str(credentials / "age-key")),
            ("SOPS_AGE_KEY_FILE", str(keys["sops"].path)),
            ("SOPS_AGE_KEY", "$SOPS_AGE_KEY"),
        ]
        for name, where in expected:
            assert find_identities(key_file=None, environ=environ, home=home).where == where
            del environ[name]
        found = find_identities(key_file=None, environ=environ, home=home)
        assert found.where == str(home / ".config" / "sops" / "age" / "keys.txt")

    def test_nothing_found(self, tmp_path: Path) -> None:
        """Without any identity the message lists where it looked and what to do."""
        with pytest.raises(SecretError) as caught:
            find_identities(key_file=None, environ={}, home=tmp_path)
        assert str(caught.value) == (
            "no age identity found (looked at --age-key-file, $MAILOPSD_AGE_KEY_FILE, "
            "$CREDENTIALS_DIRECTORY/age-key, $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, "
            "~/.config/sops/age/keys.txt); give one with --age-key-file"
        )

    def test_readable_key_file_warns(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A key file readable by group or others gets a warning that says how to fix it."""
        key = make_key(tmp_path)
        key.path.chmod(0o644)
        with caplog.at_level(logging.WARNING):
            find_identities(key_file=key.path, environ={}, home=tmp_path)
        assert caplog.messages == [
            f"age key file readable by others path={key.path} mode=0o644; run: chmod 600 {key.path}"
        ]

    def test_private_key_file_is_quiet(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 0600 key file raises no warning."""
        key = make_key(tmp_path)
        with caplog.at_level(logging.WARNING):
            find_identities(key_file=key.path, environ={}, home=tmp_path)
        assert caplog.messages == []


class TestKeyFiles:
    """Key files as age-keygen writes them."""

    def test_several_identities_with_comments(self, tmp_path: Path) -> None:
        """Comments and blank lines are skipped; every identity is kept."""
        first, second = make_key(tmp_path, "a.txt"), make_key(tmp_path, "b.txt")
        text = first.path.read_text() + "\n\n" + second.path.read_text()
        assert len(parse_identities(text, "both").identities) == 2

    def test_bad_line_named_not_shown(self) -> None:
        """A line that is no identity is named by number; its text is never shown."""
        with pytest.raises(SecretError) as caught:
            parse_identities("# comment\nAGE-SECRET-KEY-1NOTVALIDATALL\n", "keys.txt")
        assert str(caught.value) == "keys.txt: line 2 is not a valid age identity"
        with pytest.raises(SecretError) as caught:
            parse_identities("hunter2-password\n", "keys.txt")
        assert "hunter2" not in str(caught.value)
        assert str(caught.value).startswith("keys.txt: line 1 is not an age identity")

    def test_empty_file(self) -> None:
        """A file without identities is an error."""
        with pytest.raises(SecretError, match=r"keys\.txt: holds no age identity"):
            parse_identities("# nothing here\n", "keys.txt")

    def test_repr_hides_keys(self, tmp_path: Path) -> None:
        """The identity set never shows key material."""
        key = make_key(tmp_path)
        shown = repr(key.identities())
        assert "AGE-SECRET-KEY" not in shown
        assert shown == f"IdentitySet(1 identities from {key.path})"

"""Weak passwords in clear text, about to be encrypted: validate and secrets encrypt warn.

Every command test also checks that the weak password itself is never printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd import secrets
from mailopsd.config.clear_passwords import weak_clear_passwords
from tests.commands import run_cli
from tests.configs import BASE, CANARY, Writer, traces_in
from tests.sops_tools import AgeKey, make_key

WEAK = "Canary2024!"  # about 46 bits: a word and a year
WEAK_BASE = BASE.replace(CANARY, WEAK)
REASON = (
    "about 46 bits of estimated entropy, under 64: use a longer random password "
    "(e.g. 20 random letters and digits)"
)
PRIMARY = "campaigns.acme-q4.smtp_credentials.primary"
WARNING = f"warning: c.yaml:15:24: {PRIMARY}.smtp_password: {REASON}\n"
CLEAR_TEXT_ERROR = (
    f"c.yaml:14:24: {PRIMARY}.smtp_username: 2 secret fields are stored in clear text; "
)
# A mailbox added in clear to an encrypted file, as a person writes it before encrypting.
BACKUP = f"""\
      backup:
        smtp_host: smtp.example.com
        smtp_port: 587
        smtp_username: backup@example.com
        smtp_password: {WEAK}
        from_name: Ada
        from_email: backup@example.com
        daily_limit: 100
"""
SHARED = f"""\
mailboxes:
  team:
    smtp_host: smtp.example.com
    smtp_port: 587
    smtp_username: team@example.com
    smtp_password: xkqvbmtrwplzhfjd
    imap_host: imap.example.com
    imap_port: 993
    imap_username: team@example.com
    imap_password: {WEAK}
campaigns:
  c:
    smtp_credentials:
      own:
        smtp_password: {WEAK}
      shared: {{mailbox: team}}
      sealed:
        smtp_password: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]
"""


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    (tmp_path / "keys").mkdir()
    return make_key(tmp_path / "keys")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command; the weak password is in none of what it prints."""
    code, out, err = run_cli(capsys, *argv)
    assert traces_in(WEAK, [out, err]) == []
    return code, out, err


def _encrypted(path: Path, recipient: str) -> str:
    """``path``'s text encrypted with mailopsd's default rule (the secret fields)."""
    rule = secrets.secret_fields_rule(["smtp_username", "smtp_password"])
    options = secrets.EncryptOptions((recipient,), rule, mac_only_encrypted=True)
    return secrets.encrypt_text(path.read_text(), options, str(path), now=datetime.now(UTC))


class TestWeakClearPasswords:
    def test_plaintext_file(self, tmp_path: Path) -> None:
        """Each weak password of mailboxes and credentials is found at its value; not a
        strong one, an encrypted one, or an entry naming a shared mailbox."""
        issues = weak_clear_passwords(Path("s.yaml"), SHARED)
        assert [str(issue) for issue in issues] == [
            f"s.yaml:10:20: mailboxes.team.imap_password: {REASON}",
            f"s.yaml:15:24: campaigns.c.smtp_credentials.own.smtp_password: {REASON}",
        ]

    def test_rule_given_for_a_plaintext_file(self) -> None:
        """A password that the rule to encrypt with leaves in clear is not warned of."""
        rule = secrets.secret_fields_rule(["imap_password"])
        issues = weak_clear_passwords(Path("s.yaml"), SHARED, rule=rule)
        assert [issue.path for issue in issues] == ["mailboxes.team.imap_password"]

    def test_sops_file_new_clear_value(self, tmp_path: Path, key: AgeKey) -> None:
        """In an encrypted file, a clear password its rule covers is warned of; one the
        rule leaves in clear is not."""
        path = tmp_path / "c.yaml"
        path.write_text(BASE)
        text = _encrypted(path, key.recipient).replace("\nsops:\n", f"\n{BACKUP}sops:\n")
        assert [str(issue) for issue in weak_clear_passwords(path, text)] == [
            f"{path}:23:24: campaigns.acme-q4.smtp_credentials.backup.smtp_password: {REASON}"
        ]
        outside = text.replace("smtp_password: Canary", "smtp_password_unencrypted: Canary")
        assert weak_clear_passwords(path, outside) == []

    @pytest.mark.parametrize(
        "text", ["campaigns: [\n", "- a\n", "", "campaigns: 3\n", "sops: {}\ncampaigns: {}\n"]
    )
    def test_not_a_config(self, text: str) -> None:
        """A text that is not a config mailopsd can read gives no warning (nor error)."""
        assert weak_clear_passwords(Path("x.yaml"), text) == []


class TestValidateWarns:
    def test_weak_clear_password(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The warning comes first, at the password's value; the exit status is the clear
        secrets' error's, as before."""
        write_config(WEAK_BASE)
        code, out, err = _run(capsys, "validate", "c.yaml")
        assert (code, out) == (1, "")
        lines = err.splitlines(keepends=True)
        assert lines[0] == WARNING
        assert lines[1].startswith(CLEAR_TEXT_ERROR)
        assert lines[2:] == ["invalid: 1 error\n"]

    def test_strong_clear_password(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A strong password in clear is only the clear secrets' error."""
        write_config()
        code, _, err = _run(capsys, "validate", "c.yaml")
        assert code == 1
        assert "warning:" not in err

    def test_sandbox_demo_is_quiet(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --allow-plaintext-secrets the clear passwords stay clear: no warning."""
        write_config(WEAK_BASE)
        assert _run(capsys, "validate", "c.yaml", "--allow-plaintext-secrets") == (
            0,
            "ok: 1 campaign, 1 credential (0 with reply detection)\n",
            "",
        )

    def test_json_format_is_errors_only(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format json prints the errors, and no warning."""
        write_config(WEAK_BASE)
        code, _, err = _run(capsys, "validate", "c.yaml", "--format", "json")
        assert (code, err) == (1, "")

    def test_new_clear_value_in_encrypted_file(
        self, write_config: Writer, key: AgeKey, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A mailbox added in clear to an encrypted file: its weak password is warned of,
        with or without decrypting."""
        path = write_config()
        path.write_text(_encrypted(path, key.recipient).replace("\nsops:\n", f"\n{BACKUP}sops:\n"))
        warning = (
            "warning: c.yaml:23:24: campaigns.acme-q4.smtp_credentials.backup.smtp_password: "
            f"{REASON}\n"
        )
        assert _run(capsys, "validate", "c.yaml", "--age-key-file", str(key.path)) == (
            1,
            "",
            f"{warning}c.yaml:22:24: campaigns.acme-q4.smtp_credentials.backup.smtp_username: "
            "2 new secret values are in clear text; encrypt them with the file's key: "
            "mailopsd secrets encrypt -i c.yaml\ninvalid: 1 error\n",
        )
        assert _run(capsys, "validate", "c.yaml", "--no-decrypt") == (
            0,
            "ok: 1 campaign, 2 credentials (0 with reply detection)\n",
            warning,
        )

    def test_encrypted_password_is_not_estimated(
        self, write_config: Writer, key: AgeKey, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An encrypted weak password is not decrypted to be estimated: no warning."""
        path = write_config(WEAK_BASE)
        path.write_text(_encrypted(path, key.recipient))
        assert _run(capsys, "validate", "c.yaml", "--age-key-file", str(key.path)) == (
            0,
            "ok: 1 campaign, 1 credential (0 with reply detection)\n",
            "",
        )


class TestEncryptWarns:
    def test_plaintext_file(
        self, write_config: Writer, key: AgeKey, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Encrypting a file warns of its weak passwords, and encrypts them all the same."""
        path = write_config(WEAK_BASE)
        argv = ("secrets", "encrypt", "--age", key.recipient)
        assert _run(capsys, *argv, "-i", "c.yaml") == (0, "", WARNING)
        assert "smtp_password: ENC[AES256_GCM," in path.read_text()

    def test_strong_password_is_quiet(
        self, write_config: Writer, key: AgeKey, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A strong password is encrypted without a word."""
        write_config()
        assert _run(capsys, "secrets", "encrypt", "--age", key.recipient, "-i", "c.yaml") == (
            0,
            "",
            "",
        )

    def test_new_clear_value_in_encrypted_file(
        self, write_config: Writer, key: AgeKey, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Sealing a mailbox added in clear warns of its weak password, then says what it
        encrypted."""
        path = write_config()
        path.write_text(_encrypted(path, key.recipient).replace("\nsops:\n", f"\n{BACKUP}sops:\n"))
        argv = ("secrets", "encrypt", "-i", "c.yaml", "--age-key-file", str(key.path))
        assert _run(capsys, *argv) == (
            0,
            "",
            "warning: c.yaml:23:24: campaigns.acme-q4.smtp_credentials.backup.smtp_password: "
            f"{REASON}\nc.yaml: encrypted 2 new values\n",
        )
        assert WEAK not in path.read_text()

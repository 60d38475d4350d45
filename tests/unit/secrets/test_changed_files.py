"""Encrypted files changed without the key: each error names what happened and the fix.

A typo in a secret field's name, a renamed campaign or credential id, a new mailbox with
its password in clear: each is told at its file:line:col with the one command that fixes
it, and that command works when copied as printed (the key is where people keep it).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from mailopsd.secrets import decrypt_text
from tests.configs import CANARY, Writer
from tests.sops_tools import AgeKey, CliRun, run_sops

PRIMARY = "campaigns.acme-q4.smtp_credentials.primary"
BACKUP = f"""\
      backup:
        smtp_host: smtp.example.com
        smtp_port: 587
        smtp_username: backup@example.com
        smtp_password: {CANARY}-backup
        from_name: Ada
        from_email: ada.backup@example.com
        daily_limit: 50
"""


@pytest.fixture
def encrypted(
    write_config: Writer, key: AgeKey, run: CliRun, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """BASE encrypted with mailopsd's default rule; the key is found through the environment."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
    path = write_config()
    assert run("secrets", "encrypt", "--age", key.recipient, "-i", str(path)) == (0, "", "")
    return path


def _edit(path: Path, old: str, new: str) -> None:
    """Change the file as a person does in a plain editor, without the key."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _run_suggestion(run: CliRun, err: str) -> tuple[int, str, str]:
    """Run the command that ends the first line of an error, as printed."""
    line = err.splitlines()[0]
    argv = shlex.split(line[line.rindex("mailopsd ") :])
    assert argv[0] == "mailopsd"
    return run(*argv[1:])


def _git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Ada", "-c", "user.email=ada@example.com", *args],  # noqa: S607
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_typo_in_a_secret_fields_name(encrypted: Path, run: CliRun) -> None:
    """smtp_pasword is an unknown field with a did-you-mean at its line, not a MAC mismatch."""
    _edit(encrypted, "smtp_password:", "smtp_pasword:")
    message = (
        f"c.yaml:15:9: {PRIMARY}.smtp_pasword: unknown field; did you mean smtp_password? "
        "(its value was encrypted as smtp_password: rename the key back)"
    )
    assert run("validate", "c.yaml") == (1, "", f"{message}\ninvalid: 1 error\n")
    assert run("secrets", "decrypt", "c.yaml") == (1, "", f"error: {message}\n")


def test_renamed_credential_id_found_in_history(
    encrypted: Path, key: AgeKey, run: CliRun, tmp_path: Path
) -> None:
    """A renamed id is named with its old name; encrypt -i re-encrypts its values; sops agrees."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "c.yaml")
    _git(tmp_path, "commit", "-q", "-m", "encrypted config")
    _edit(encrypted, "      primary:\n", "      main:\n")
    code, out, err = run("validate", "c.yaml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "c.yaml:11:7: campaigns.acme-q4.smtp_credentials.main: renamed from primary after its "
        "secrets were encrypted, which binds them to the old name; re-encrypt them under the "
        "new name with: mailopsd secrets encrypt -i c.yaml",
        "invalid: 1 error",
    ]
    before = encrypted.read_text()
    assert _run_suggestion(run, err) == (
        0,
        "",
        "c.yaml: re-encrypted 2 values under their new names\n",
    )
    assert run("validate", "c.yaml")[0] == 0
    body = before.split("sops:\n")[0].splitlines()
    changed = [
        (number, line.split(":")[0].strip())
        for number, (old, line) in enumerate(
            zip(body, encrypted.read_text().splitlines(), strict=False), start=1
        )
        if old != line
    ]
    assert changed == [(14, "smtp_username"), (15, "smtp_password")]
    result = run_sops(["decrypt", "c.yaml"], key.path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    credentials = yaml.safe_load(result.stdout)["campaigns"]["acme-q4"]["smtp_credentials"]
    assert list(credentials) == ["main"]
    assert credentials["main"]["smtp_password"] == CANARY


def test_renamed_campaign_id_without_history(encrypted: Path, run: CliRun) -> None:
    """Without an earlier version, a renamed id is still named as the likely cause."""
    _edit(encrypted, "  acme-q4:\n", "  acme-q1:\n")
    code, out, err = run("validate", "c.yaml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "c.yaml:14:24: campaigns.acme-q1.smtp_credentials.primary.smtp_username: cannot be "
        "decrypted under this path (nor can 1 more value): a key on its path (a campaign or "
        "credential id?) was renamed after it was encrypted, or it is corrupted; rename the key "
        "back, then rename it with: mailopsd secrets edit c.yaml",
        "invalid: 1 error",
    ]


def test_renaming_with_secrets_edit_works(
    encrypted: Path, key: AgeKey, run: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented way to rename an id, secrets edit, saves a file both tools open."""
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/^  acme-q4:$/  acme-q1:/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert run("secrets", "edit", "c.yaml") == (0, "", "c.yaml: saved\n")
    assert run("validate", "c.yaml")[0] == 0
    result = run_sops(["decrypt", "c.yaml"], key.path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "    acme-q1:\n" in result.stdout


def test_new_mailbox_with_clear_password(encrypted: Path, key: AgeKey, run: CliRun) -> None:
    """New clear secrets are found; encrypt -i seals just those with the file's data key."""
    data_key = decrypt_text(encrypted.read_text(), key.identities(), "c.yaml").data_key
    _edit(encrypted, "sops:\n", BACKUP + "sops:\n")
    code, out, err = run("validate", "c.yaml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "c.yaml:22:24: campaigns.acme-q4.smtp_credentials.backup.smtp_username: 2 new secret "
        "values are in clear text; encrypt them with the file's key: "
        "mailopsd secrets encrypt -i c.yaml",
        "invalid: 1 error",
    ]
    before = encrypted.read_text()
    assert _run_suggestion(run, err) == (0, "", "c.yaml: encrypted 2 new values\n")
    after = encrypted.read_text()
    assert CANARY not in after
    assert after.splitlines()[:18] == before.splitlines()[:18]
    assert "        smtp_password: ENC[AES256_GCM," in after.splitlines()[22]
    assert decrypt_text(after, key.identities(), "c.yaml").data_key == data_key
    assert run("validate", "c.yaml") == (
        0,
        "ok: 1 campaign, 2 credentials (0 with reply detection)\n",
        "",
    )
    result = run_sops(["decrypt", "c.yaml"], key.path, cwd=encrypted.resolve().parent)
    assert result.returncode == 0, result.stderr
    assert f"{CANARY}-backup" in result.stdout


def test_new_values_in_a_file_whose_mac_covers_everything(
    write_config: Writer, key: AgeKey, run: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the MAC covers every value, encrypt -i refuses and says how to add values."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {key.recipient}\n"
        "    encrypted_regex: ^(smtp_username|smtp_password)$\n"
    )
    path = write_config()
    assert run("secrets", "encrypt", "-i", "c.yaml")[0] == 0
    _edit(path, "sops:\n", BACKUP + "sops:\n")
    before = path.read_text()
    assert run("secrets", "encrypt", "-i", "c.yaml") == (
        1,
        "",
        "error: c.yaml: MAC mismatch: the file was changed without its key (its MAC covers "
        "every value, not only the secrets: undo the change, then make it with: mailopsd "
        "secrets edit c.yaml), or it is corrupted\n",
    )
    assert path.read_text() == before


def test_nothing_new_to_encrypt(encrypted: Path, run: CliRun) -> None:
    """encrypt -i on an encrypted file with nothing new says so and changes nothing."""
    before = encrypted.read_text()
    assert run("secrets", "encrypt", "-i", "c.yaml") == (
        0,
        "",
        "c.yaml: already encrypted; no new clear-text secret or renamed key to encrypt\n",
    )
    assert encrypted.read_text() == before

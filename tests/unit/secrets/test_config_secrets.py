"""Encrypted configs through validate: keys, --no-decrypt, plaintext refusal, tampering.

Every test also checks that the canary password appears in no output and no log line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.errors import ConfigError
from tests.configs import BASE, CANARY, Writer
from tests.sops_tools import AgeKey, CliRun, make_key, run_sops

SECRET_LINES = {  # line numbers of the secret values in BASE
    "smtp_username": 14,
    "smtp_password": 15,
}


@pytest.fixture
def encrypted(write_config: Writer, key: AgeKey, run) -> Path:
    path = write_config()
    code, _, err = run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
    assert (code, err) == (0, "")
    return path


def test_encrypted_config_validates_with_key(encrypted: Path, key: AgeKey, run: CliRun) -> None:
    """With the key the config validates, and the secrets are really encrypted on disk."""
    text = encrypted.read_text()
    assert CANARY not in text
    assert "smtp_password: ENC[AES256_GCM," in text
    assert "daily_limit: 100" in text
    assert run("validate", str(encrypted), "--age-key-file", str(key.path)) == (
        0,
        "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        "",
    )
    loaded = load_config(encrypted, LoadOptions(identities=key.identities))
    credential = loaded.config.campaigns["acme-q4"].smtp_credentials["primary"]
    assert credential.smtp_password.get_secret_value() == CANARY


def test_without_key_fails_clearly(
    encrypted: Path,
    run,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Without any key: one clear line and exit 1; --no-decrypt still checks the rest."""
    for name in (
        "MAILOPSD_AGE_KEY_FILE",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "CREDENTIALS_DIRECTORY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    code, out, err = run("validate", str(encrypted))
    assert (code, out) == (1, "")
    assert err.startswith("c.yaml: no age identity found (looked at --age-key-file, ")
    assert run("validate", str(encrypted), "--no-decrypt") == (
        0,
        "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        "",
    )


def test_wrong_key(encrypted: Path, key: AgeKey, run: CliRun, tmp_path: Path) -> None:
    """A key the file is not encrypted for is named, with the file's recipients."""
    other = make_key(tmp_path / "keys", "other.txt")
    code, _, err = run("validate", str(encrypted), "--age-key-file", str(other.path))
    assert code == 1
    assert err.splitlines()[0] == (
        f"c.yaml: none of the age identities in {other.path} can open c.yaml; "
        f"it is encrypted for {key.recipient}"
    )


def test_plaintext_secrets_refused(write_config: Writer, run: CliRun, key: AgeKey) -> None:
    """Secrets in clear text are refused with the command that encrypts them for the key."""
    path = write_config()
    code, out, err = run("validate", str(path), "--age-key-file", str(key.path))
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == (
        "c.yaml:14:24: campaigns.acme-q4.smtp_credentials.primary.smtp_username: "
        "2 secret fields are stored in clear text; encrypt them with: "
        f"mailopsd secrets encrypt --age {key.recipient} --in-place c.yaml (or pass "
        "--allow-plaintext-secrets for a local demo)"
    )
    assert run("validate", str(path), "--allow-plaintext-secrets")[0] == 0


def test_plain_field_editable_without_key(encrypted: Path, key: AgeKey, run: CliRun) -> None:
    """By default only secrets are in the MAC: a person edits daily_limit without the key."""
    encrypted.write_text(encrypted.read_text().replace("daily_limit: 100", "daily_limit: 250"))
    assert run("validate", str(encrypted), "--age-key-file", str(key.path))[0] == 0
    assert run_sops(["decrypt", str(encrypted)], key.path).returncode == 0
    loaded = load_config(encrypted, LoadOptions(identities=key.identities))
    assert loaded.config.campaigns["acme-q4"].smtp_credentials["primary"].daily_limit == 250


def test_moved_ciphertext_is_located(encrypted: Path, key: AgeKey, run: CliRun) -> None:
    """A ciphertext moved to another key fails at its own line, naming where it belongs."""
    lines = encrypted.read_text().splitlines(keepends=True)
    user, password = (SECRET_LINES[name] - 1 for name in ("smtp_username", "smtp_password"))
    user_value = lines[user].split(": ", 1)[1]
    lines[user] = lines[user].split(": ", 1)[0] + ": " + lines[password].split(": ", 1)[1]
    lines[password] = lines[password].split(": ", 1)[0] + ": " + user_value
    encrypted.write_text("".join(lines))
    code, _, err = run("validate", str(encrypted), "--age-key-file", str(key.path))
    assert code == 1
    assert err.splitlines()[0] == (
        "c.yaml:14:24: campaigns.acme-q4.smtp_credentials.primary.smtp_username: "
        "holds the value encrypted as campaigns.acme-q4.smtp_credentials.primary.smtp_password: "
        "it was moved here without the key; move it back, or make such changes with: "
        "mailopsd secrets edit c.yaml"
    )


def test_mac_protects_whole_file_under_sops_default(
    write_config: Writer,
    key: AgeKey,
    run,
    tmp_path: Path,
) -> None:
    """With a .sops.yaml asking for sops's default rule, any edit is a MAC mismatch."""
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {key.recipient}\n"
        "    unencrypted_regex: ^(name|leads|subject|body|delay|smtp_host|smtp_port"
        "|from_name|from_email|daily_limit)$\n"
    )
    path = write_config()
    assert run("secrets", "encrypt", "--in-place", str(path))[0] == 0
    assert "unencrypted_regex:" in path.read_text()
    assert run("validate", str(path), "--age-key-file", str(key.path))[0] == 0
    path.write_text(path.read_text().replace("daily_limit: 100", "daily_limit: 101"))
    code, _, err = run("validate", str(path), "--age-key-file", str(key.path))
    assert (code, err.splitlines()[0]) == (
        1,
        "c.yaml: MAC mismatch: the file was changed without its key, or is corrupted",
    )


def test_no_decrypt_names_encrypted_plain_fields(
    write_config: Writer,
    key: AgeKey,
    run,
    tmp_path: Path,
) -> None:
    """--no-decrypt cannot check a non-secret field that is encrypted, and says so."""
    path = write_config()
    made = run_sops(
        [
            "encrypt",
            "--age",
            key.recipient,
            "--encrypted-regex",
            "^(smtp_password|daily_limit)$",
            str(path),
        ],
        key.path,
    )
    assert made.returncode == 0, made.stderr
    path.write_text(made.stdout)
    code, _, err = run("validate", str(path), "--no-decrypt", "--allow-plaintext-secrets")
    assert code == 1
    assert err.splitlines() == [
        "c.yaml:18:30: campaigns.acme-q4.smtp_credentials.primary.daily_limit: "
        "is encrypted, so --no-decrypt cannot check it",
        "invalid: 1 error",
    ]
    assert (
        run("validate", str(path), "--age-key-file", str(key.path), "--allow-plaintext-secrets")[0]
        == 0
    )


def test_sops_made_config_loads(write_config: Writer, key: AgeKey, run: CliRun) -> None:
    """A config encrypted by the real sops (its default rule: everything) validates."""
    path = write_config()
    made = run_sops(["encrypt", "--age", key.recipient, str(path)], key.path)
    assert made.returncode == 0, made.stderr
    path.write_text(made.stdout)
    assert run("validate", str(path), "--age-key-file", str(key.path)) == (
        0,
        "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        "",
    )


def test_revision_follows_ciphertext(
    encrypted: Path, key: AgeKey, write_config: Writer, run
) -> None:
    """A changed secret is a changed revision (the revision hashes the bytes as stored)."""
    options = LoadOptions(identities=key.identities)
    first = load_config(encrypted, options).revision
    assert load_config(encrypted, options).revision == first
    write_config(BASE.replace(CANARY, CANARY + "-rotated"))
    assert run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(encrypted))[0] == 0
    assert load_config(encrypted, options).revision != first


def test_invalid_encrypted_config_hides_secret(encrypted: Path, key: AgeKey, run: CliRun) -> None:
    """Errors in an encrypted config are shown; the decrypted secrets are not."""
    encrypted.write_text(encrypted.read_text().replace("daily_limit: 100", "daily_limit: 0"))
    code, out, _ = run(
        "validate", str(encrypted), "--age-key-file", str(key.path), "--format", "json"
    )
    assert code == 1
    assert json.loads(out) == [
        {
            "file": "c.yaml",
            "line": 18,
            "column": 22,
            "path": "campaigns.acme-q4.smtp_credentials.primary.daily_limit",
            "message": "must be an integer ≥ 1 (got 0)",
        }
    ]


def test_library_default_never_skips_decryption(encrypted: Path) -> None:
    """Loading an encrypted file without identities is an error, never opaque secrets."""
    with pytest.raises(ConfigError) as caught:
        load_config(encrypted)
    assert [str(issue) for issue in caught.value.issues] == [
        "c.yaml: is encrypted, and no age identity was given"
    ]


SIGNING_KEY = f"{CANARY}-signing-0123456789"
HTTP = (
    "http:\n"
    "  listen: 127.0.0.1:8025\n"
    "  public_base_url: https://mail.example.com\n"
    f"  signing_key: {SIGNING_KEY}\n"
)
OLD_RULE = "^(imap_password|imap_username|smtp_password|smtp_username)$"


def test_signing_key_encrypted_by_default(write_config: Writer, key: AgeKey, run: CliRun) -> None:
    """secrets encrypt seals http.signing_key like the passwords; it loads with the key."""
    path = write_config(add=HTTP)
    assert run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))[0] == 0
    text = path.read_text()
    assert SIGNING_KEY not in text
    assert "  signing_key: ENC[AES256_GCM," in text
    assert "  public_base_url: https://mail.example.com\n" in text
    http = load_config(path, LoadOptions(identities=key.identities)).config.http
    assert http is not None
    assert http.signing_key.get_secret_value() == SIGNING_KEY
    code, out, _ = run("validate", str(path), "--no-decrypt")
    assert (code, out.startswith("ok: 1 campaign, 1 credential")) == (0, True)


def test_signing_key_outside_the_files_rule(
    write_config: Writer, key: AgeKey, run: CliRun, tmp_path: Path
) -> None:
    """A clear signing key added to a file whose rule does not cover it is refused."""
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {key.recipient}\n    encrypted_regex: {OLD_RULE}\n"
        "    mac_only_encrypted: true\n"
    )
    path = write_config()
    assert run("secrets", "encrypt", "--in-place", str(path))[0] == 0
    sealed = path.read_text()
    path.write_text(sealed + HTTP)
    line = sealed.count("\n") + 4  # after the sops metadata, at the signing key
    code, _, err = run("validate", str(path), "--age-key-file", str(key.path))
    assert code == 1
    assert err.splitlines()[0] == (
        f"c.yaml:{line}:16: http.signing_key: this secret field is stored in clear text; "
        "the file's encryption rule does not cover it: move it to a new file and encrypt "
        "that with: mailopsd secrets encrypt --in-place FILE, or decrypt this file and "
        "encrypt it again with a rule that covers it (or pass --allow-plaintext-secrets for "
        "a local demo)"
    )

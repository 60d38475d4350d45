"""mailopsd secrets: keygen, encrypt, decrypt, edit, rotate, updatekeys, as a person uses them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailopsd import goyaml
from mailopsd.secrets import decrypt_text, read_metadata
from tests.configs import BASE, CANARY, Writer
from tests.sops_tools import KEYS, VECTORS, AgeKey, CliRun, make_key, run_sops


def _editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    """Set $EDITOR to a program that replaces ``old`` by ``new`` in the file it edits."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        f"p.write_text(p.read_text().replace({old!r}, {new!r}))\n"
    )
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")


class TestKeygen:
    """secrets keygen."""

    def test_writes_private_file(self, tmp_path: Path, run: CliRun) -> None:
        """-o writes a 0600 identity file and prints the recipient."""
        path = tmp_path / "new.txt"
        code, out, _ = run("secrets", "keygen", "-o", str(path))
        assert code == 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert out.startswith("age1")
        assert out.strip() in path.read_text()
        assert run("secrets", "keygen", "-o", str(path))[0] == 1

    def test_creates_private_parent_directories(self, tmp_path: Path, run: CliRun) -> None:
        """Missing parent directories are made 0700, the key 0600; the recipient is printed."""
        path = tmp_path / "home" / ".config" / "sops" / "age" / "keys.txt"
        code, out, err = run("secrets", "keygen", "-o", str(path))
        assert code == 0
        assert out.startswith("age1")
        assert err == f"wrote a new age identity to {path} (mode 0600)\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for directory in (path.parent, *path.parents[:4]):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        assert "AGE-SECRET-KEY-1" in path.read_text()

    def test_refuses_to_overwrite_without_force(self, tmp_path: Path, run: CliRun) -> None:
        """An existing key file stays unless --force; then a new 0600 key replaces it."""
        path = tmp_path / "keys.txt"
        first = run("secrets", "keygen", "-o", str(path))[1]
        code, out, err = run("secrets", "keygen", "-o", str(path))
        assert (code, out) == (1, "")
        assert err == (
            f"error: {path} exists: not overwriting an age key (files encrypted for it "
            "could no longer be opened); pass --force to replace it\n"
        )
        assert first.strip() in path.read_text()
        code, out, _ = run("secrets", "keygen", "-o", str(path), "--force")
        assert code == 0
        assert out.strip() in path.read_text()
        assert first.strip() not in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_io_errors_are_one_line(self, tmp_path: Path, run: CliRun) -> None:
        """A path that cannot be written gives one line naming it and the cause, exit 1."""
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory\n")
        code, out, err = run("secrets", "keygen", "-o", str(blocker / "age" / "keys.txt"))
        assert (code, out) == (1, "")
        assert err == (
            f"error: cannot write the age key to {blocker / 'age' / 'keys.txt'}: "
            f"{blocker} is not a directory; choose another path with -o\n"
        )
        code, out, err = run("secrets", "keygen", "-o", str(tmp_path), "--force")
        assert (code, out) == (1, "")
        assert err == (
            f"error: cannot write the age key to {tmp_path}: it is a directory; "
            "give a file name with -o, such as ~/.config/sops/age/keys.txt\n"
        )

    def test_readme_keygen_line_works(self, tmp_path: Path) -> None:
        """The README's keygen line, run by a shell in a fresh home, writes the key."""
        readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
        line = next(row for row in readme.splitlines() if row.startswith("mailopsd secrets keygen"))
        command = line.split("#")[0].strip().replace("mailopsd", "python3 -m mailopsd", 1)
        home = tmp_path / "fresh-home"
        home.mkdir()
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            env={
                "HOME": str(home),
                "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
            },
            check=False,
            timeout=60,
        )
        assert (result.returncode, result.stderr) == (
            0,
            f"wrote a new age identity to {home}/.config/sops/age/keys.txt (mode 0600)\n",
        )
        key = home / ".config" / "sops" / "age" / "keys.txt"
        assert result.stdout.strip() in key.read_text()
        assert stat.S_IMODE((home / ".config").stat().st_mode) == 0o700

    def test_prints_identity(self, run: CliRun) -> None:
        """Without -o the identity goes to stdout and the recipient to stderr."""
        code, out, err = run("secrets", "keygen")
        assert code == 0
        assert out.splitlines()[-1].startswith("AGE-SECRET-KEY-1")
        assert err.startswith("Public key: age1")


class TestEncryptDecrypt:
    """secrets encrypt and secrets decrypt."""

    def test_stdout_leaves_file(self, write_config: Writer, key: AgeKey, run: CliRun) -> None:
        """Without --in-place the file is untouched and the SOPS file is printed."""
        path = write_config()
        code, out, _ = run("secrets", "encrypt", "--age", key.recipient, str(path))
        assert code == 0
        assert path.read_text() == BASE
        assert "sops:" in out
        assert CANARY not in out

    def test_default_rule_is_secrets_only(
        self, write_config: Writer, key: AgeKey, run: CliRun
    ) -> None:
        """Without .sops.yaml only the secret fields are encrypted, MAC over them only
        (a ledger file's ledger_password among them)."""
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        meta = read_metadata(path.read_text(), "c.yaml")
        assert meta.mac_only_encrypted
        assert meta.rule.pattern == (
            "^(imap_password|imap_username|ledger_password|signing_key|smtp_password|"
            "smtp_username)$"
        )
        result = run_sops(["decrypt", "--output-type", "json", str(path)], key.path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == goyaml.parse_yaml(BASE).data

    def test_honours_sops_yaml(
        self,
        write_config: Writer,
        key: AgeKey,
        run,
        tmp_path: Path,
    ) -> None:
        """The first matching creation rule, found upward from the file, is used."""
        other = make_key(tmp_path / "keys", "other.txt")
        (tmp_path / ".sops.yaml").write_text(
            "creation_rules:\n"
            "  - path_regex: ^elsewhere/\n"
            f"    age: {other.recipient}\n"
            "  - path_regex: conf/.*\\.yaml$\n"
            f"    age: {key.recipient},{other.recipient}\n"
            "    encrypted_suffix: _password\n"
        )
        (tmp_path / "conf").mkdir()
        path = write_config(name="conf/c.yaml")
        assert run("secrets", "encrypt", "--in-place", str(path))[0] == 0
        meta = read_metadata(path.read_text(), "c.yaml")
        assert meta.recipients == [key.recipient, other.recipient]
        assert (meta.rule.kind, meta.rule.pattern) == ("encrypted_suffix", "_password")
        assert "smtp_username: user@example.com" in path.read_text()
        assert run_sops(["decrypt", str(path)], other.path).returncode == 0

    def test_decrypt_outputs(self, tmp_path: Path, run: CliRun) -> None:
        """decrypt prints YAML (comments kept) or typed JSON, or writes a 0600 file."""
        vector = VECTORS / "basic.enc.yaml"
        key = str(KEYS / "visible-a.txt")
        code, out, _ = run("secrets", "decrypt", str(vector), "--age-key-file", key)
        assert code == 0
        assert "# a full-line comment inside a map" in out
        code, out, _ = run(
            "secrets", "decrypt", str(vector), "--age-key-file", key, "--output-type", "json"
        )
        assert json.loads(out) == json.loads((VECTORS / "basic.expected.json").read_text())
        target = tmp_path / "plain.yaml"
        assert run(
            "secrets", "decrypt", str(vector), "--age-key-file", key, "--output", str(target)
        )[:2] == (0, "")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600

    def test_unwritable_output_is_one_line(self, tmp_path: Path, run: CliRun) -> None:
        """--output in a missing directory fails in one line naming it, nothing written."""
        target = tmp_path / "missing" / "plain.yaml"
        code, out, err = run(
            "secrets",
            "decrypt",
            str(VECTORS / "basic.enc.yaml"),
            "--age-key-file",
            str(KEYS / "visible-a.txt"),
            "--output",
            str(target),
        )
        assert (code, out) == (1, "")
        assert err == (
            f"error: cannot write {target}: No such file or directory; "
            "check the path, then run the command again\n"
        )
        assert not target.parent.exists()

    def test_errors_are_one_line(self, run: CliRun) -> None:
        """Tampered files and wrong keys fail with a one-line message, exit 1."""
        key = str(KEYS / "visible-a.txt")
        code, out, err = run(
            "secrets",
            "decrypt",
            str(VECTORS / "tampered-plain-value.enc.yaml"),
            "--age-key-file",
            key,
        )
        assert (code, out) == (1, "")
        assert err == (
            f"error: {VECTORS / 'tampered-plain-value.enc.yaml'}: MAC mismatch: "
            "the file was changed without its key, or is corrupted\n"
        )
        code, _, err = run(
            "secrets",
            "decrypt",
            str(VECTORS / "basic.enc.yaml"),
            "--age-key-file",
            str(KEYS / "visible-b.txt"),
        )
        assert code == 1
        assert err.startswith(
            f"error: none of the age identities in {KEYS / 'visible-b.txt'} can open"
        )

    def test_already_encrypted(self, write_config: Writer, key: AgeKey, run: CliRun) -> None:
        """Encrypting twice for --age is refused, with the command for new values."""
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        code, _, err = run("secrets", "encrypt", "--age", key.recipient, str(path))
        assert (code, err) == (
            1,
            "error: c.yaml: is already encrypted (it has a sops: block), so --age does not "
            "apply; to encrypt new values in it, run: mailopsd secrets encrypt -i c.yaml (its "
            "recipients change with: mailopsd secrets updatekeys c.yaml)\n",
        )

    def test_no_recipient(self, write_config: Writer, run: CliRun) -> None:
        """Without --age or .sops.yaml there is no one to encrypt for; --age is suggested."""
        code, _, err = run("secrets", "encrypt", str(write_config()))
        assert code == 1
        assert err.startswith("error: c.yaml: no age recipient to encrypt for; ")
        assert "run: mailopsd secrets encrypt --age " in err


class TestEdit:
    """secrets edit: decrypt to a private file, $EDITOR, refuse invalid, re-encrypt."""

    @pytest.fixture
    def encrypted(self, write_config: Writer, key: AgeKey, run) -> Path:
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        return path

    def test_valid_change_saved_same_data_key(
        self,
        encrypted: Path,
        key: AgeKey,
        run,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A valid edit is saved, encrypted with the same data key; sops reads it."""
        before = decrypt_text(encrypted.read_text(), key.identities(), "c.yaml")
        _editor(tmp_path, monkeypatch, CANARY, CANARY + "-2")
        code, _, err = run("secrets", "edit", str(encrypted), "--age-key-file", str(key.path))
        assert (code, err) == (0, "c.yaml: saved\n")
        after = decrypt_text(encrypted.read_text(), key.identities(), "c.yaml")
        assert after.data_key == before.data_key
        assert f"smtp_password: {CANARY}-2" in after.text
        assert CANARY not in encrypted.read_text()
        assert run_sops(["decrypt", str(encrypted)], key.path).returncode == 0

    def test_invalid_config_not_saved(
        self,
        encrypted: Path,
        key: AgeKey,
        run,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An edit that breaks the config is refused and the file stays as it was."""
        original = encrypted.read_text()
        _editor(tmp_path, monkeypatch, "daily_limit: 100", "daily_limit: 0")
        code, _, err = run("secrets", "edit", str(encrypted), "--age-key-file", str(key.path))
        assert code == 1
        assert err.splitlines() == [
            "c.yaml:18:22: campaigns.acme-q4.smtp_credentials.primary.daily_limit: "
            "must be an integer ≥ 1 (got 0)",
            "c.yaml: not saved; the file is unchanged",
        ]
        assert encrypted.read_text() == original

    def test_no_change(
        self,
        encrypted: Path,
        key: AgeKey,
        run,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Closing the editor without a change writes nothing."""
        original = encrypted.read_text()
        _editor(tmp_path, monkeypatch, "nothing-to-find", "x")
        assert run("secrets", "edit", str(encrypted), "--age-key-file", str(key.path)) == (
            0,
            "",
            "c.yaml: no changes\n",
        )
        assert encrypted.read_text() == original


class TestRotateAndUpdateKeys:
    """secrets rotate and secrets updatekeys."""

    def test_rotate_changes_data_key(self, write_config: Writer, key: AgeKey, run: CliRun) -> None:
        """rotate gives a new data key; values and recipients stay; sops reads it."""
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        before = decrypt_text(path.read_text(), key.identities(), "c.yaml")
        assert run("secrets", "rotate", str(path), "--age-key-file", str(key.path))[0] == 0
        after = decrypt_text(path.read_text(), key.identities(), "c.yaml")
        assert after.data_key != before.data_key
        assert after.text == before.text
        assert after.meta.recipients == before.meta.recipients
        assert run_sops(["decrypt", str(path)], key.path).returncode == 0

    def test_updatekeys_adds_recipient(
        self,
        write_config: Writer,
        key: AgeKey,
        run,
        tmp_path: Path,
    ) -> None:
        """updatekeys wraps the same data key for the recipients .sops.yaml now lists."""
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        newcomer = make_key(tmp_path / "keys", "newcomer.txt")
        (tmp_path / ".sops.yaml").write_text(
            f"creation_rules:\n  - age: {key.recipient}, {newcomer.recipient}\n"
        )
        assert run("secrets", "updatekeys", str(path), "--age-key-file", str(key.path))[0] == 0
        opened = decrypt_text(path.read_text(), newcomer.identities(), "c.yaml")
        assert f"smtp_password: {CANARY}" in opened.text
        assert run_sops(["decrypt", str(path)], newcomer.path).returncode == 0

    def test_json_file_lifecycle(self, key: AgeKey, run: CliRun, tmp_path: Path) -> None:
        """A JSON file goes through encrypt, rotate and updatekeys; sops reads each step."""
        path = tmp_path / "s.json"
        path.write_text(json.dumps({"smtp_password": CANARY, "port": 587}))
        assert run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))[0] == 0
        assert CANARY not in path.read_text()
        assert run("secrets", "rotate", str(path), "--age-key-file", str(key.path))[0] == 0
        newcomer = make_key(tmp_path / "keys", "newcomer.txt")
        (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {newcomer.recipient}\n")
        assert run("secrets", "updatekeys", str(path), "--age-key-file", str(key.path))[0] == 0
        result = run_sops(["decrypt", str(path)], newcomer.path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"smtp_password": CANARY, "port": 587}


class TestEditSigningKey:
    """secrets edit adding the http section: saved sealed, or refused if it would not be."""

    SIGNING_KEY = f"{CANARY}-signing-0123456789"
    HTTP = (
        "daily_limit: 100\n"
        "http:\n"
        "  listen: 127.0.0.1:8025\n"
        "  public_base_url: https://mail.example.com\n"
        f"  signing_key: {SIGNING_KEY}\n"
    )

    def test_saved_encrypted(
        self,
        write_config: Writer,
        key: AgeKey,
        run: CliRun,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Under mailopsd's rule the new signing key is saved encrypted."""
        path = write_config()
        run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
        _editor(tmp_path, monkeypatch, "daily_limit: 100\n", self.HTTP)
        code, _, err = run("secrets", "edit", str(path), "--age-key-file", str(key.path))
        assert (code, err) == (0, "c.yaml: saved\n")
        assert self.SIGNING_KEY not in path.read_text()
        assert "  signing_key: ENC[AES256_GCM," in path.read_text()

    def test_refused_when_the_rule_misses_it(
        self,
        write_config: Writer,
        key: AgeKey,
        run: CliRun,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A file whose rule predates the signing key is not saved with it in clear."""
        (tmp_path / ".sops.yaml").write_text(
            f"creation_rules:\n  - age: {key.recipient}\n    encrypted_regex: "
            "^(imap_password|imap_username|smtp_password|smtp_username)$\n"
        )
        path = write_config()
        run("secrets", "encrypt", "--in-place", str(path))
        original = path.read_text()
        _editor(tmp_path, monkeypatch, "daily_limit: 100\n", self.HTTP)
        code, _, err = run("secrets", "edit", str(path), "--age-key-file", str(key.path))
        assert code == 1
        assert err.splitlines() == [
            "c.yaml:22:16: http.signing_key: this secret field is stored in clear text; the "
            "file's encryption rule does not cover it: move it to a new file and encrypt "
            "that with: mailopsd secrets encrypt --in-place FILE, or decrypt this file and "
            "encrypt it again with a rule that covers it (or pass --allow-plaintext-secrets "
            "for a local demo)",
            "c.yaml: not saved; the file is unchanged",
        ]
        assert path.read_text() == original

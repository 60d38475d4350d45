"""Every command an error or hint suggests works when pasted as printed, where it is printed."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailopsd import cli
from mailopsd.state.statefile import load_state
from tests.configs import BASE, LEADS
from tests.dispatch_setup import credential, run_once, write_campaign
from tests.printed import REPO, names_a_key_or_config, run_as_printed, suggested_commands
from tests.servers.smtp import start_smtp
from tests.servers.tlsca import TestCA
from tests.sops_tools import AgeKey, make_key

EXAMPLE = REPO / "config" / "campaigns.example.yaml"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home for this test, the cwd its parent; no variable names a key."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if names_a_key_or_config(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def _own_key(home: Path) -> AgeKey:
    """The operator's key where mailopsd looks by default (~/.config/sops/age/keys.txt)."""
    directory = home / ".config" / "sops" / "age"
    directory.mkdir(parents=True)
    return make_key(directory, "keys.txt")


def _clear_config(directory: Path) -> Path:
    """A config with its secrets in clear text, as a person first writes it."""
    directory.mkdir()
    (directory / "leads.csv").write_text(LEADS)
    (directory / "c.yaml").write_text(BASE)
    return directory


def _the_command(text: str, verb: str) -> str:
    """The one suggested command of ``text`` that starts with ``mailopsd VERB``."""
    (command,) = [c for c in suggested_commands(text) if c.startswith(f"mailopsd {verb}")]
    return command


class TestClearSecrets:
    """validate on secrets stored in clear text names the command that encrypts them."""

    def test_no_rule(self, home: Path, tmp_path: Path) -> None:
        """Without a .sops.yaml, the command encrypts for the operator's own key, and works."""
        key = _own_key(home)
        _clear_config(tmp_path / "conf")
        shown = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        assert shown.returncode == 1
        command = _the_command(shown.stderr, "secrets encrypt")
        assert command == f"mailopsd secrets encrypt --age {key.recipient} --in-place conf/c.yaml"
        assert run_as_printed(command, cwd=tmp_path, home=home).returncode == 0
        checked = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        assert (checked.returncode, checked.stdout) == (
            0,
            "ok: 1 campaign, 1 credential (0 with reply detection)\n",
        )

    def test_rule_for_someone_else(self, home: Path, tmp_path: Path) -> None:
        """Beside a .sops.yaml for another key (the demo's, say), the command still encrypts
        for the operator's key, so that the daemon can read the file."""
        key = _own_key(home)
        stranger = make_key(tmp_path, "stranger.txt")
        conf = _clear_config(tmp_path / "conf")
        (conf / ".sops.yaml").write_text(f"creation_rules:\n  - age: {stranger.recipient}\n")
        shown = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        command = _the_command(shown.stderr, "secrets encrypt")
        assert f"--age {key.recipient}" in command
        assert run_as_printed(command, cwd=tmp_path, home=home).returncode == 0
        assert run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home).returncode == 0

    def test_own_rule(self, home: Path, tmp_path: Path) -> None:
        """Beside a .sops.yaml that encrypts for the operator's key, the command follows it."""
        key = _own_key(home)
        conf = _clear_config(tmp_path / "conf")
        (conf / ".sops.yaml").write_text(f"creation_rules:\n  - age: {key.recipient}\n")
        shown = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        command = _the_command(shown.stderr, "secrets encrypt")
        assert command == "mailopsd secrets encrypt --in-place conf/c.yaml"
        assert run_as_printed(command, cwd=tmp_path, home=home).returncode == 0
        assert run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home).returncode == 0

    def test_no_key_yet(self, home: Path, tmp_path: Path) -> None:
        """Without any key, the message says how to make one; checking again then names the
        encrypt command; each works as printed."""
        _clear_config(tmp_path / "conf")
        # Creating missing parent directories is keygen's own case; here they exist.
        (home / ".config" / "sops" / "age").mkdir(parents=True)
        shown = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        keygen = _the_command(shown.stderr, "secrets keygen")
        assert keygen == "mailopsd secrets keygen -o ~/.config/sops/age/keys.txt"
        assert run_as_printed(keygen, cwd=tmp_path, home=home).returncode == 0
        again = run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home)
        encrypt = _the_command(again.stderr, "secrets encrypt")
        assert run_as_printed(encrypt, cwd=tmp_path, home=home).returncode == 0
        assert run_as_printed("mailopsd validate conf", cwd=tmp_path, home=home).returncode == 0

    def test_plaintext_flag_where_offered(self, home: Path, tmp_path: Path) -> None:
        """secrets edit refusing a config for another file's clear secrets offers
        --allow-plaintext-secrets and the encrypt command; both work with it."""
        key = _own_key(home)
        conf = _clear_config(tmp_path / "conf")
        (conf / "b.yaml").write_text(BASE.replace("acme-q4", "other"))
        cli.main(["secrets", "encrypt", "--age", key.recipient, "-i", str(conf / "c.yaml")])
        editor = tmp_path / "editor.sh"
        editor.write_text("#!/bin/sh\nsed -i 's/daily_limit: 100/daily_limit: 90/' \"$1\"\n")
        editor.chmod(0o755)
        edit = f"EDITOR={editor} mailopsd secrets edit conf/c.yaml </dev/null"
        refused = run_as_printed(edit, cwd=tmp_path, home=home)
        assert refused.returncode == 1
        assert "(or pass --allow-plaintext-secrets for a local demo)" in refused.stderr
        allowed = run_as_printed(f"{edit} --allow-plaintext-secrets", cwd=tmp_path, home=home)
        assert (allowed.returncode, allowed.stderr) == (0, "conf/c.yaml: saved\n")
        encrypt = _the_command(refused.stderr, "secrets encrypt")
        assert encrypt.endswith("--in-place conf/b.yaml")
        assert run_as_printed(encrypt, cwd=tmp_path, home=home).returncode == 0
        editor.write_text("#!/bin/sh\nsed -i 's/daily_limit: 90/daily_limit: 80/' \"$1\"\n")
        assert run_as_printed(edit, cwd=tmp_path, home=home).returncode == 0


class TestMissingKey:
    """A command that needs the key and finds none offers only options it accepts."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["validate", "enc/c.yaml"],
            ["plan", "--config", "enc/c.yaml", "--state-dir", "st"],
            ["reenable", "acme-q4", "primary", "--config", "full/c.yaml"],
            ["secrets", "decrypt", "enc/c.yaml"],
            ["secrets", "edit", "enc/c.yaml"],
            ["secrets", "rotate", "enc/c.yaml"],
        ],
        ids=lambda argv: " ".join(argv[:2]),
    )
    def test_every_offered_option_works(
        self,
        argv: list[str],
        home: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Each --option the message offers, added to the same command, makes it succeed."""
        key = make_key(tmp_path)
        for name in ("enc", "full"):
            _clear_config(tmp_path / name)
        (tmp_path / "full" / ".sops.yaml").write_text(
            f"creation_rules:\n  - age: {key.recipient}\n"
            "    encrypted_regex: ^smtp_(username|password)$\n"
        )
        for path in ("enc/c.yaml", "full/c.yaml"):
            assert cli.main(["secrets", "encrypt", "--age", key.recipient, "-i", path]) == 0
        monkeypatch.setenv("EDITOR", "true")  # an edit that changes nothing
        capsys.readouterr()
        assert cli.main(argv) == 1
        message = capsys.readouterr().err
        offered = re.findall(r"--[a-z][a-z-]+", message)
        assert "--age-key-file" in offered
        values = {"--age-key-file": [str(key.path)], "--no-decrypt": []}
        for option in offered:
            assert option in values, f"{option} offered in: {message}"
            code = cli.main([*argv, option, *values[option]])
            assert code in (0, 2 if argv[0] == "plan" else 0), capsys.readouterr().err
        assert ("--no-decrypt" in offered) == (argv[0] == "validate")


def test_example_commands_in_its_header(home: Path) -> None:
    """The commands at the top of the example config work from the checkout's root."""
    header = EXAMPLE.read_text().split("\n\n")[0]
    commands = suggested_commands(header.replace("\n#   ", " "))
    assert [command.split()[1] for command in commands] == ["validate", "secrets"]
    for command in commands:
        result = run_as_printed(command, cwd=REPO, home=home)
        assert result.returncode == 0, (command, result.stderr)


def test_key_file_readable_by_others_suggests_chmod(home: Path, tmp_path: Path) -> None:
    """The warning on a key file others can read names a chmod that silences it."""
    keys = tmp_path / "my keys"  # a space: the printed command must quote the path
    keys.mkdir()
    key = make_key(keys)
    key.path.chmod(0o644)
    conf = _clear_config(tmp_path / "conf")
    cli.main(["secrets", "encrypt", "--age", key.recipient, "-i", str(conf / "c.yaml")])
    validate = f"mailopsd validate conf --age-key-file '{key.path}'"
    warned = run_as_printed(validate, cwd=tmp_path, home=home)
    assert warned.returncode == 0
    (chmod,) = [line.split("run: ", 1)[1] for line in warned.stderr.splitlines() if "run: " in line]
    assert run_as_printed(chmod, cwd=tmp_path, home=home).returncode == 0
    assert run_as_printed(validate, cwd=tmp_path, home=home).stderr == ""


def test_duplicate_api_key_suggests_apikey_new(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two api_keys with one hash: the suggested apikey command works as printed."""
    conf = _clear_config(tmp_path / "conf")
    digest = "0" * 64
    entry = f"{{account: default, sha256: '{digest}'}}"
    (conf / "keys.yaml").write_text(
        f"api_keys:\n  a: {entry}\n  b: {entry}\nhttp:\n  listen: 127.0.0.1:0\n"
        "  public_base_url: https://mail.example.com\n"
        "  signing_key: 0123456789abcdef0123456789abcdef0123\n"
    )
    assert cli.main(["validate", str(conf), "--allow-plaintext-secrets"]) == 1
    command = _the_command(capsys.readouterr().err, "apikey")
    result = run_as_printed(command, cwd=tmp_path, home=home)
    assert result.returncode == 0
    assert result.stdout.startswith("mk_")


def test_reenable_suggested_by_the_disable_log(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    """The log line that reports an auto-disable names a reenable command that works from
    any directory, and the mailbox sends again after it."""
    rules = {f"lead000{i}@example.net": ("RCPT", "550 5.1.1 No such user") for i in (1, 2, 3)}
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules=rules)
    try:
        settings = {"bounce_threshold": "50%", "bounce_min_sends": 4}
        config = tmp_path / "config"
        config.mkdir()
        path = write_campaign(
            config, {"a": credential(server, "ada")}, leads=4, steps=1, **settings
        )
        state = tmp_path / "state"
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        capsys.readouterr()
        run_once(path, state, start.isoformat())
        (line,) = [e for e in capsys.readouterr().err.splitlines() if "credential disabled" in e]
        command = _the_command(line, "reenable")
        assert run_as_printed(command, cwd=home, home=home).returncode == 0
        assert "reenabled_at:" in path.read_text()
        run_once(path, state, (start + timedelta(hours=2)).isoformat())
        assert load_state(state).credential("camp/a").disabled_at is None
    finally:
        server.controller.stop()

"""The command line as a person uses it: output, exit codes, JSON, help."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailopsd import __version__, cli
from tests.configs import BASE, CANARY, CANARY_NON_ASCII, LEADS, Writer, traces_in

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "campaigns.example.yaml"
DEMO_KEY = REPO / "config" / "demo-age-key.txt"


class TestValidate:
    """mailopsd validate."""

    def test_ok_summary(self, write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
        """A valid config prints a one-line summary and exits 0."""
        assert cli.main(["validate", str(write_config()), "--allow-plaintext-secrets"]) == 0
        out, err = capsys.readouterr()
        assert out == "ok: 1 campaign, 1 credential (0 with reply detection)\n"
        assert err == ""

    def test_errors_on_stderr(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every error goes to stderr, then a count; exit 1."""
        path = write_config(
            BASE.replace("daily_limit: 100", "daily_limit: 0").replace(
                "smtp_port: 587", "smtp_port: 99999"
            )
        )
        assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.splitlines() == [
            "c.yaml:13:20: campaigns.acme-q4.smtp_credentials.primary.smtp_port: "
            "must be a port number from 1 to 65535 (got 99999)",
            "c.yaml:18:22: campaigns.acme-q4.smtp_credentials.primary.daily_limit: "
            "must be an integer ≥ 1 (got 0)",
            "invalid: 2 errors",
        ]

    def test_json_format(self, write_config: Writer, capsys: pytest.CaptureFixture[str]) -> None:
        """--format json prints a list of {file, line, column, path, message}."""
        path = write_config(BASE.replace("daily_limit: 100", "daily_limit: 0"))
        assert (
            cli.main(["validate", str(path), "--format", "json", "--allow-plaintext-secrets"]) == 1
        )
        assert json.loads(capsys.readouterr().out) == [
            {
                "file": "c.yaml",
                "line": 18,
                "column": 22,
                "path": "campaigns.acme-q4.smtp_credentials.primary.daily_limit",
                "message": "must be an integer ≥ 1 (got 0)",
            }
        ]

    def test_json_when_valid(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A valid config in JSON mode is an empty list."""
        assert (
            cli.main(
                ["validate", str(write_config()), "--format", "json", "--allow-plaintext-secrets"]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out) == []

    def test_default_path_from_environment(
        self,
        write_config: Writer,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without PATH, $MAILOPSD_CONFIG is used."""
        monkeypatch.setenv("MAILOPSD_CONFIG", str(write_config()))
        assert cli.main(["validate", "--allow-plaintext-secrets"]) == 0
        assert capsys.readouterr().out.startswith("ok: ")

    def test_default_path_is_config_dir(
        self,
        write_config: Writer,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without PATH or $MAILOPSD_CONFIG, ./config is used."""
        monkeypatch.delenv("MAILOPSD_CONFIG", raising=False)
        Path("config").mkdir()
        Path("leads.csv").rename("config/leads.csv")  # leads live in the config tree
        write_config(BASE, name="config/main.yaml")
        assert cli.main(["validate", "--allow-plaintext-secrets"]) == 0
        assert capsys.readouterr().out.startswith("ok: 1 campaign")

    def test_secret_never_printed(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A secret in a wrong place or shape never appears in any output."""
        path = write_config(
            BASE.replace(f"smtp_password: {CANARY}", f"smtp_password: [{CANARY}]").replace(
                "smtp_username: user@example.com", f"smtp_pasword: {CANARY}"
            )
        )
        for extra in ([], ["--format", "json"]):
            assert cli.main(["validate", str(path), "--allow-plaintext-secrets", *extra]) == 1
            out, err = capsys.readouterr()
            assert CANARY not in out + err
            assert "smtp_password" in out + err

    def test_non_ascii_login_is_said_where_it_is(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A password beyond ASCII is valid; validate says at its place how it is sent and
        what the server must offer, and shows nothing of it."""
        path = write_config(
            replace=(f"smtp_password: {CANARY}", f"smtp_password: {CANARY_NON_ASCII}"),
            add="        imap_host: imap.example.com\n        imap_port: 993\n"
            "        imap_username: ada-ü\n        imap_password: pw-ascii\n",
        )
        assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 0
        out, err = capsys.readouterr()
        assert out == "ok: 1 campaign, 1 credential (1 with reply detection)\n"
        assert err.splitlines() == [
            "warning: c.yaml:15:24: campaigns.acme-q4.smtp_credentials.primary.smtp_password: "
            "has non-ASCII characters: mailopsd logs in with AUTH PLAIN in UTF-8 (RFC 4616), "
            "so the SMTP server must offer AUTH PLAIN; if it does not, this credential sends "
            "nothing and its status says why (an ASCII password avoids this)",
            "warning: c.yaml:21:24: campaigns.acme-q4.smtp_credentials.primary.imap_username: "
            "has non-ASCII characters: mailopsd logs in with AUTHENTICATE PLAIN in UTF-8 "
            "(RFC 4616), so the IMAP server must offer AUTH=PLAIN; if it does not, this "
            "mailbox's replies and bounces are not read and its status says why (an ASCII "
            "username avoids this)",
        ]
        assert not traces_in(CANARY_NON_ASCII, [out, err])


class TestUsage:
    """Usage errors, help and version."""

    def test_usage_error_exit_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown option is a usage error: exit 2 with a message."""
        assert cli.main(["validate", "--colour"]) == 2
        assert "unrecognized arguments: --colour" in capsys.readouterr().err

    def test_no_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A command is required."""
        assert cli.main([]) == 2
        assert "required: COMMAND" in capsys.readouterr().err

    def test_bad_format_choice(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--format only takes text or json."""
        assert cli.main(["validate", "--format", "xml"]) == 2
        assert "invalid choice: 'xml'" in capsys.readouterr().err

    @pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"]])
    def test_help(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """--help works on the program and on every command."""
        assert cli.main(argv) == 0
        assert "usage: mailopsd" in capsys.readouterr().out

    def test_every_option_has_help(self) -> None:
        """Every option and argument of every command says what it is in --help."""
        missing = [
            f"{command}: {'/'.join(action.option_strings) or action.dest}"
            for command, parser in _parsers(cli._build_parser(), "mailopsd")
            for action in parser._actions
            if not (action.help or "").strip()
        ]
        assert missing == []

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--version prints the version."""
        assert cli.main(["--version"]) == 0
        assert capsys.readouterr().out == f"mailopsd {__version__}\n"


def _parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every sub-command's parser below it, with the command they read."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_installed_command_validates_example(tmp_path: Path) -> None:
    """The installed program decrypts and validates the shipped example and exits 0."""
    key = tmp_path / "demo-age-key.txt"  # a private copy: a checkout leaves the file 0644
    key.write_text(DEMO_KEY.read_text())
    key.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "mailopsd", "validate", str(EXAMPLE), "--age-key-file", str(key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "ok: 1 campaign, 3 credentials (1 with reply detection), 1 shared mailbox, "
        "1 suppression list for 1 "
        "account; http on 127.0.0.1:8025 for https://mail.example.com, 1 API key\n"
    )


def test_validate_shows_a_template_over_the_limit(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate reports {{ 'x' * 3000000000 }} as one located line and exits 1."""
    path = write_config(BASE.replace('body: "Following up"', "body: \"{{ 'x' * 3000000000 }}\""))
    assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "c.yaml:9:15: campaigns.acme-q4.sequence.1.body: the template would make a text of "
        "3,000,000,000 characters, over the limit of 2,097,152 characters: make the template "
        "or what it repeats shorter",
        "invalid: 1 error",
    ]


def test_validate_shows_a_body_file_out_of_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate reports a body_file reaching the age key as one located line, key unshown."""
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.chdir(config)
    (tmp_path / "age-key.txt").write_text("AGE-SECRET-KEY-1NEVERSHOWN\n")
    Path("leads.csv").write_text(LEADS)
    Path("c.yaml").write_text(BASE.replace('body: "Following up"', "body_file: ../age-key.txt"))
    assert cli.main(["validate", ".", "--allow-plaintext-secrets"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file: template file ../age-key.txt is "
        f"outside the config directory {config.resolve()}; put the file in that directory or "
        "below it and give its path relative to the config file",
        "invalid: 1 error",
    ]
    assert "AGE-SECRET-KEY" not in out + err
